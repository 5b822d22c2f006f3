"""Operators' console for portal sessions: who is logged in where (a project's Admins end sessions in
the portal's settings).

A session key is a bearer credential: it is never shown, so rows link nowhere and carry no checkbox
(both would put the key in the page).
"""

from apps.core.admin import ReadOnlyModelAdmin, register

from .models import PortalSession


@register(PortalSession)
class PortalSessionAdmin(ReadOnlyModelAdmin):
    list_display = ["username", "project", "role", "method", "source_ip", "created_at", "expires_at"]
    list_display_links = None
    list_filter = ["role", "method", "project"]
    search_fields = ["username", "source_ip"]
    list_select_related = ["project"]
    actions = None

    def has_view_permission(self, request, obj=None) -> bool:
        # The list only: a detail page would be addressed by the session key.
        return obj is None and super().has_view_permission(request, obj)
