"""What the operators' console shares: read-only model admins, and the principal operators act as.

The Django admin is PipePortal's "ops" console. Everything it changes goes through the same services as
the portal, so the audit log names the operator (`ops:<username>`). Nothing here imports the admin's
models (LogEntry), so these modules load even when PIPEPORTAL_ADMIN_ENABLED=false leaves the admin out.
"""

from django.apps import apps as django_apps
from django.contrib import admin
from django.http import HttpRequest

from apps.projects.principal import Principal, system_principal


def console_enabled() -> bool:
    return django_apps.is_installed("django.contrib.admin")


def register(*models):
    """`admin.register`, or nothing when the console is off: `admin.site` needs the admin app."""

    def wrapper(admin_class):
        if console_enabled():
            admin.site.register(models, admin_class)
        return admin_class

    return wrapper


if console_enabled():
    admin.site.site_header = "PipePortal operators' console"
    admin.site.site_title = "PipePortal console"
    admin.site.index_title = "Projects, pipeds and what they deploy"


def console_principal(request: HttpRequest, project_id: str | None = None) -> Principal:
    return system_principal(project_id, name=f"ops:{request.user.get_username()}")


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """A list and a detail page to look at; changes happen through the portal, the API or the piped."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
