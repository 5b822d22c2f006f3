"""Operators' console for pipeds: who is online, which version, which keys exist (never the keys)."""

from django.contrib import admin
from django.db.models import Count

from apps.core.admin import ReadOnlyInline, ReadOnlyModelAdmin, register

from .models import Piped, PipedKey


class PipedKeyInline(ReadOnlyInline):
    model = PipedKey
    fields = ["id", "creator", "created_at"]
    readonly_fields = fields


@register(Piped)
class PipedAdmin(ReadOnlyModelAdmin):
    list_display = [
        "name",
        "project",
        "online",
        "version",
        "last_heartbeat_at",
        "key_count",
        "disabled",
        "created_at",
    ]
    list_filter = ["disabled", "project"]
    search_fields = ["name", "id", "description", "version"]
    inlines = [PipedKeyInline]
    exclude = ["fetch_requests"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(key_total=Count("keys"))

    @admin.display(description="Status")
    def online(self, piped: Piped) -> str:
        return piped.status

    @admin.display(description="Keys", ordering="key_total")
    def key_count(self, piped: Piped) -> int:
        return piped.key_total
