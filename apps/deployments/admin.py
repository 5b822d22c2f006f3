"""Operators' console for deployments (with their stages) and the commands pipeds pick up."""

from django.contrib import admin

from apps.core.admin import ReadOnlyInline, ReadOnlyModelAdmin, register

from .models import Command, Deployment, Stage


class StageInline(ReadOnlyInline):
    model = Stage
    fields = [
        "index",
        "stage_id",
        "name",
        "status",
        "status_reason",
        "rollback",
        "retried_count",
        "started_at",
        "completed_at",
    ]
    readonly_fields = fields
    ordering = ["index"]


@register(Deployment)
class DeploymentAdmin(ReadOnlyModelAdmin):
    list_display = [
        "application_name",
        "project",
        "status",
        "short_commit",
        "commander",
        "sync_strategy",
        "created_at",
        "completed_at",
    ]
    list_filter = ["status", "sync_strategy", "kind", "project"]
    search_fields = ["=id", "application_name", "commit_hash", "commander"]
    list_select_related = ["project"]
    raw_id_fields = ["application", "piped"]
    inlines = [StageInline]
    # A million rows: counting them again for every filter is not worth it.
    show_full_result_count = False

    @admin.display(description="Commit")
    def short_commit(self, deployment: Deployment) -> str:
        return deployment.short_commit


@register(Command)
class CommandAdmin(ReadOnlyModelAdmin):
    list_display = ["type", "status", "project", "piped", "commander", "stage_id", "created_at", "handled_at"]
    list_filter = ["status", "type", "project"]
    search_fields = ["=id", "commander", "stage_id"]
    list_select_related = ["project", "piped"]
    raw_id_fields = ["application", "deployment", "piped"]
    show_full_result_count = False
