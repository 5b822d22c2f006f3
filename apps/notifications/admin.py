"""Operators' console: the notification events and delivery attempts, read only."""

from apps.core.admin import ReadOnlyInline, ReadOnlyModelAdmin, register

from .models import NotificationAttempt, NotificationEvent


class AttemptInline(ReadOnlyInline):
    model = NotificationAttempt
    fields = ["receiver", "kind", "attempt", "outcome", "status_code", "error", "duration_ms", "attempted_at"]
    readonly_fields = fields


@register(NotificationEvent)
class NotificationEventAdmin(ReadOnlyModelAdmin):
    list_display = ["occurred_at", "type", "summary", "piped", "project", "source"]
    list_filter = ["type", "source", "project"]
    search_fields = ["id", "summary", "type"]
    list_select_related = ["piped", "project"]
    inlines = [AttemptInline]


@register(NotificationAttempt)
class NotificationAttemptAdmin(ReadOnlyModelAdmin):
    list_display = ["attempted_at", "receiver", "kind", "attempt", "outcome", "status_code", "error", "piped"]
    list_filter = ["outcome", "kind"]
    search_fields = ["receiver", "error", "event__id"]
    list_select_related = ["piped", "event"]
