"""Operators' console for projects: create one (its static admin's password is shown once), manage its
user groups inline, reset a lost static admin password; API keys and the audit log read-only."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.views.decorators.debug import sensitive_variables

from apps.core.admin import ReadOnlyModelAdmin, console_principal, register
from apps.core.errors import DomainError
from apps.core.keys import new_secret

from . import services
from .models import APIKey, AuditEvent, Project, UserGroup

# Set on the request while one admin request runs: the credentials to show once, or the refusal that
# stopped a save (the admin has no other channel from save_model to the response).
CREDENTIALS_ATTR = "_pipeportal_new_credentials"
REFUSED_ATTR = "_pipeportal_refused"


class ProjectAddForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["id", "description", "shared_sso_config"]


class ProjectChangeForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["description", "shared_sso_config", "allow_stray_as_viewer"]


class UserGroupInline(admin.TabularInline):
    """Groups are added and removed (through the services, so each change is audited), not edited."""

    model = UserGroup
    extra = 1
    fields = ["sso_group", "role", "created_at"]
    readonly_fields = ["created_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        # Existing rows are shown read-only; new rows can still be filled in.
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return True


@register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "description",
        "static_admin_username",
        "static_admin_disabled",
        "shared_sso_config",
        "allow_stray_as_viewer",
        "group_count",
        "created_at",
    ]
    list_filter = ["static_admin_disabled", "allow_stray_as_viewer"]
    search_fields = ["id", "description", "shared_sso_config"]
    readonly_fields = ["id", "static_admin_username", "static_admin_disabled", "created_at", "updated_at"]
    inlines = [UserGroupInline]
    actions = ["reset_static_admin_password"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(group_total=Count("user_groups"))

    @admin.display(description="User groups", ordering="group_total")
    def group_count(self, project: Project) -> int:
        return project.group_total

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ProjectChangeForm if obj is not None else ProjectAddForm
        kwargs["fields"] = list(kwargs["form"]._meta.fields)
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["id", "description", "shared_sso_config"]})]
        return [
            (None, {"fields": ["id", "description", "shared_sso_config", "allow_stray_as_viewer"]}),
            ("Static admin", {"fields": ["static_admin_username", "static_admin_disabled"]}),
            ("Record", {"fields": ["created_at", "updated_at"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    @sensitive_variables("password")
    def save_model(self, request: HttpRequest, obj: Project, form, change: bool) -> None:
        data = form.cleaned_data
        try:
            if change:
                current = Project.objects.get(pk=obj.pk)
                services.update_project(
                    console_principal(request, obj.pk),
                    current,
                    description=data["description"],
                    allow_stray_as_viewer=data["allow_stray_as_viewer"],
                    shared_sso_config=data["shared_sso_config"],
                )
                return
            project, username, password = services.create_project(
                console_principal(request),
                data["id"],
                description=data["description"],
                shared_sso_config=data["shared_sso_config"],
            )
        except DomainError as exc:
            setattr(request, REFUSED_ATTR, exc.message)
            return
        # The admin keeps using `obj` (the inline formsets hang off it): make it the created row.
        for field in Project._meta.concrete_fields:
            setattr(obj, field.attname, getattr(project, field.attname))
        obj._state.adding = False
        obj._state.db = project._state.db
        setattr(request, CREDENTIALS_ATTR, (username, password))

    def save_formset(self, request, form, formset, change):
        if formset.model is not UserGroup:
            return super().save_formset(request, form, formset, change)
        # Unsaved: the admin reads new/deleted objects from the formset for its change message.
        formset.save(commit=False)
        if getattr(request, REFUSED_ATTR, None):
            return None
        project = form.instance
        principal = console_principal(request, project.pk)
        try:
            for group in formset.deleted_objects:
                services.delete_user_group(principal, project, group.pk)
            for group in formset.new_objects:
                services.add_user_group(principal, project, sso_group=group.sso_group, role=group.role)
        except DomainError as exc:
            messages.error(request, exc.message)
        return None

    def response_add(self, request, obj, post_url_continue=None):
        refused = getattr(request, REFUSED_ATTR, None)
        if refused:
            self.message_user(request, refused, messages.ERROR)
            return self._redirect_to_self(request)
        return self._show_credentials(request, obj, *getattr(request, CREDENTIALS_ATTR), created=True)

    def response_change(self, request, obj):
        refused = getattr(request, REFUSED_ATTR, None)
        if refused:
            self.message_user(request, refused, messages.ERROR)
            return self._redirect_to_self(request)
        return super().response_change(request, obj)

    @staticmethod
    def _redirect_to_self(request) -> HttpResponseRedirect:
        return HttpResponseRedirect(request.get_full_path())

    @sensitive_variables("password")
    def _show_credentials(self, request, project, username, password, *, created) -> HttpResponse:
        """The static admin's password, once: rendered in this response, never stored or logged."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "project": project,
            "username": username,
            "password": password,
            "created": created,
            "title": f"Project {project.pk} created" if created else f"New password for {project.pk}",
        }
        response = TemplateResponse(request, "admin/projects/project/credentials.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Reset the static admin's password (shown once)")
    @sensitive_variables("password")
    def reset_static_admin_password(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one project.", messages.ERROR)
            return None
        project = queryset.get()
        password = new_secret(18)
        try:
            services.set_static_admin(
                console_principal(request, project.pk),
                project,
                username=project.static_admin_username,
                password=password,
            )
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return None
        return self._show_credentials(
            request, project, project.static_admin_username, password, created=False
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting a project takes every record with it; that is a database operation, not a click.
        return False


@register(APIKey)
class APIKeyAdmin(ReadOnlyModelAdmin):
    list_display = ["name", "project", "role", "disabled", "creator", "created_at", "last_used_at"]
    list_filter = ["role", "disabled", "project"]
    search_fields = ["name", "id", "creator"]
    exclude = ["key_hash"]


@register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    list_display = [
        "created_at",
        "project",
        "actor",
        "actor_kind",
        "verb",
        "object_type",
        "object_id",
        "source_ip",
    ]
    list_filter = ["actor_kind", "project", "verb"]
    search_fields = ["actor", "verb", "object_id", "source_ip"]
    show_full_result_count = False
