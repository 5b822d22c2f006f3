"""Template helpers for permissions: `{% if principal|can:"deployment.update" %}`."""

from django import template

register = template.Library()


@register.filter
def can(principal, permission: str) -> bool:
    """True when the principal may do `resource.action`; templates never compare role names."""
    if principal is None:
        return False
    resource, _, action = permission.partition(".")
    return principal.can(resource, action)
