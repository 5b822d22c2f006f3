"""Operators' console for applications: where each one's config lives and how it is synced."""

from apps.core.admin import ReadOnlyModelAdmin, register

from .models import Application


@register(Application)
class ApplicationAdmin(ReadOnlyModelAdmin):
    list_display = [
        "name",
        "project",
        "kind",
        "piped",
        "sync_status",
        "repo_id",
        "path",
        "disabled",
        "deleted",
        "updated_at",
    ]
    list_filter = ["kind", "sync_status", "disabled", "deleted", "project"]
    search_fields = ["name", "id", "repo_id", "path", "platform_provider"]
    list_select_related = ["project", "piped"]
    raw_id_fields = ["most_recent_deployment", "most_recent_successful_deployment"]
