"""Settings: the project, pipeds and their keys, user groups, API keys, static admin, audit log, sessions.

Secrets (a piped key, an API key) are rendered once in the POST response itself, never carried through
a redirect, the session or a message, and the response is marked no-store.
"""

from urllib.parse import urlencode

from django.conf import settings as django_settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.services import end_user_sessions, keep_static_admin_session
from apps.core.errors import DomainError
from apps.pipeds import services as piped_services
from apps.pipeds.choices import MAX_PIPED_KEYS
from apps.pipeds.models import Piped
from apps.projects import services as project_services
from apps.projects.models import APIKey, UserGroup
from apps.projects.principal import Principal
from apps.projects.roles import Action, Resource

from .. import queries
from ..forms import (
    APIKeyForm,
    AuditFilterForm,
    EndSessionsForm,
    PipedForm,
    ProjectForm,
    StaticAdminForm,
    UserGroupForm,
    apply_domain_error,
)
from ..pipeds import health_summary, piped_state, repository_health, suggestions_of
from .common import current_project, form_status, portal_view, render_page


def piped_config_snippet(project_id: str, piped_id: str, key_base64: str) -> str:
    """The piped-config.yaml a person pastes: identity and key filled in, the rest as an example."""
    return (
        "apiVersion: pipecd.dev/v1beta1\n"
        "kind: Piped\n"
        "spec:\n"
        f"  projectID: {project_id}\n"
        f"  pipedID: {piped_id}\n"
        f"  pipedKeyData: {key_base64}\n"
        f"  apiAddress: {django_settings.PIPEPORTAL_BASE_URL}\n"
        "  # Below: an example to adapt.\n"
        "  repositories:\n"
        "    - repoId: manifests\n"
        "      remote: git@github.com:your-org/manifests.git\n"
        "      branch: main\n"
        "  platformProviders:\n"
        "    - name: ecs-dev\n"
        "      type: ECS\n"
        "      config:\n"
        "        region: ap-northeast-1\n"
    )


# --- Project --------------------------------------------------------------------------------------------


@portal_view
@require_http_methods(["GET", "POST"])
def project_settings(request: HttpRequest, principal: Principal) -> HttpResponse:
    principal.authorize(Resource.PROJECT, Action.GET)
    project = current_project(principal)
    status = 200
    if request.method == "POST":
        principal.authorize(Resource.PROJECT, Action.UPDATE, project.id)
        form = ProjectForm(request.POST)
        if form.is_valid():
            try:
                project_services.update_project(principal, project, **form.cleaned_data)
            except DomainError as exc:
                apply_domain_error(form, exc)
                status = exc.status_code
            else:
                messages.success(request, "Project settings saved.")
                return redirect("webui:settings_project")
        else:
            status = 400
    else:
        form = ProjectForm(
            initial={
                "description": project.description,
                "shared_sso_config": project.shared_sso_config,
                "allow_stray_as_viewer": project.allow_stray_as_viewer,
            }
        )
    webhook_url = (
        f"{django_settings.PIPEPORTAL_BASE_URL}{reverse('git-webhook')}?{urlencode({'project': project.id})}"
    )
    context = {"project": project, "form": form, "webhook_url": webhook_url, "tab": "project"}
    return render_page(request, "webui/settings/project.html", context, status=status, no_store=True)


@portal_view
@require_POST
def webhook_secret_rotate(request: HttpRequest, principal: Principal) -> HttpResponse:
    project = current_project(principal)
    project_services.rotate_webhook_secret(principal, project)
    messages.success(request, "New webhook secret generated: update it at your Git host.")
    return redirect("webui:settings_project")


# --- Pipeds ---------------------------------------------------------------------------------------------


@portal_view
@require_GET
def piped_list(request: HttpRequest, principal: Principal) -> HttpResponse:
    principal.authorize(Resource.PIPED, Action.LIST)
    rows = [
        {"piped": piped, "state": piped_state(piped), "health": health_summary(piped)}
        for piped in queries.list_pipeds(principal.project_id)
    ]
    context = {"rows": rows, "tab": "pipeds"}
    return render_page(request, "webui/settings/pipeds.html", context)


@sensitive_variables("key", "key_base64")
def _render_piped_key(
    request: HttpRequest, piped: Piped, key: str, *, first: bool, status: int = 200
) -> HttpResponse:
    key_base64 = piped_services.encode_key(key)
    context = {
        "piped": piped,
        "key_base64": key_base64,
        "first": first,
        "snippet": piped_config_snippet(piped.project_id, str(piped.id), key_base64),
        "tab": "pipeds",
    }
    return render_page(request, "webui/settings/piped_key.html", context, status=status, no_store=True)


@portal_view
@require_http_methods(["GET", "POST"])
@sensitive_variables("key")
def piped_add(request: HttpRequest, principal: Principal) -> HttpResponse:
    principal.authorize(Resource.PIPED, Action.CREATE)
    status = 200
    if request.method == "POST":
        form = PipedForm(request.POST)
        if form.is_valid():
            try:
                piped, key = piped_services.register_piped(
                    principal, current_project(principal), **form.cleaned_data
                )
            except DomainError as exc:
                apply_domain_error(form, exc)
                status = exc.status_code
            else:
                return _render_piped_key(request, piped, key, first=True, status=201)
        else:
            status = 400
    else:
        form = PipedForm()
    return render_page(
        request, "webui/settings/piped_add.html", {"form": form, "tab": "pipeds"}, status=status
    )


def _piped_page(
    request: HttpRequest, piped: Piped, *, form: PipedForm | None = None, error: str = "", status: int = 200
) -> HttpResponse:
    keys = list(piped.keys.all())
    context = {
        "piped": piped,
        "state": piped_state(piped),
        "repositories": repository_health(piped),
        "suggestions": suggestions_of([piped]),
        "keys": keys,
        "can_add_key": len(keys) < MAX_PIPED_KEYS,
        "max_keys": MAX_PIPED_KEYS,
        "form": form or PipedForm(initial={"name": piped.name, "description": piped.description}),
        "error": error,
        "tab": "pipeds",
    }
    return render_page(request, "webui/settings/piped.html", context, status=status)


@portal_view
@require_http_methods(["GET", "POST"])
def piped_detail(request: HttpRequest, principal: Principal, piped_id) -> HttpResponse:
    if request.method == "GET":
        return _piped_page(request, piped_services.get_piped(principal, piped_id))
    piped = piped_services.get_piped(principal, piped_id, Action.UPDATE)
    form = PipedForm(request.POST)
    if not form.is_valid():
        return _piped_page(request, piped, form=form, status=400)
    try:
        piped_services.update_piped(principal, piped, **form.cleaned_data)
    except DomainError as exc:
        apply_domain_error(form, exc)
        return _piped_page(request, piped, form=form, status=exc.status_code)
    messages.success(request, f"Piped {piped.name} saved.")
    return redirect("webui:settings_piped", piped_id=piped.id)


@portal_view
@require_POST
@sensitive_variables("key")
def piped_key_add(request: HttpRequest, principal: Principal, piped_id) -> HttpResponse:
    piped = piped_services.get_piped(principal, piped_id, Action.UPDATE)
    try:
        key = piped_services.add_piped_key(principal, piped)
    except DomainError as exc:
        return _piped_page(request, piped, error=exc.message, status=exc.status_code)
    return _render_piped_key(request, piped, key, first=False, status=201)


@portal_view
@require_POST
def piped_key_delete(request: HttpRequest, principal: Principal, piped_id, key_id: int) -> HttpResponse:
    piped = piped_services.get_piped(principal, piped_id, Action.UPDATE)
    try:
        piped_services.delete_piped_key(principal, piped, key_id)
    except DomainError as exc:
        return _piped_page(request, piped, error=exc.message, status=exc.status_code)
    messages.success(request, "Key deleted: a piped still using it can no longer connect.")
    return redirect("webui:settings_piped", piped_id=piped.id)


def _set_piped_disabled(request: HttpRequest, principal: Principal, piped_id, disabled: bool) -> HttpResponse:
    piped = piped_services.get_piped(principal, piped_id, Action.UPDATE)
    piped_services.set_piped_disabled(principal, piped, disabled)
    messages.success(request, f"Piped {piped.name} {'disabled' if disabled else 'enabled'}.")
    return redirect("webui:settings_piped", piped_id=piped.id)


@portal_view
@require_POST
def piped_disable(request: HttpRequest, principal: Principal, piped_id) -> HttpResponse:
    return _set_piped_disabled(request, principal, piped_id, True)


@portal_view
@require_POST
def piped_enable(request: HttpRequest, principal: Principal, piped_id) -> HttpResponse:
    return _set_piped_disabled(request, principal, piped_id, False)


# --- User groups ----------------------------------------------------------------------------------------


@portal_view
@require_http_methods(["GET", "POST"])
def user_groups(request: HttpRequest, principal: Principal) -> HttpResponse:
    principal.authorize(Resource.PROJECT, Action.GET)
    project = current_project(principal)
    status = 200
    if request.method == "POST":
        principal.authorize(Resource.PROJECT, Action.UPDATE, project.id)
        form = UserGroupForm(request.POST)
        if form.is_valid():
            try:
                group = project_services.add_user_group(principal, project, **form.cleaned_data)
            except DomainError as exc:
                apply_domain_error(form, exc)
                status = exc.status_code
            else:
                messages.success(request, f"Members of {group.sso_group} are now {group.role}s.")
                return redirect("webui:settings_user_groups")
        else:
            status = 400
    else:
        form = UserGroupForm()
    context = {
        "groups": list(UserGroup.objects.filter(project=project).order_by("sso_group")),
        "form": form,
        "project": project,
        "tab": "user_groups",
    }
    return render_page(request, "webui/settings/user_groups.html", context, status=status)


@portal_view
@require_POST
def user_group_delete(request: HttpRequest, principal: Principal, group_id: int) -> HttpResponse:
    project = current_project(principal)
    project_services.delete_user_group(principal, project, group_id)
    messages.success(
        request, "User group removed. People already logged in keep their role until they log in again."
    )
    return redirect("webui:settings_user_groups")


# --- API keys -------------------------------------------------------------------------------------------


@portal_view
@require_http_methods(["GET", "POST"])
@sensitive_variables("raw_key")
def api_keys(request: HttpRequest, principal: Principal) -> HttpResponse:
    principal.authorize(Resource.API_KEY, Action.LIST)
    project = current_project(principal)
    status, new_key, raw_key = 200, None, ""
    if request.method == "POST":
        principal.authorize(Resource.API_KEY, Action.CREATE, project.id)
        form = APIKeyForm(request.POST)
        if form.is_valid():
            try:
                new_key, raw_key = project_services.create_api_key(principal, project, **form.cleaned_data)
            except DomainError as exc:
                apply_domain_error(form, exc)
                status = exc.status_code
            else:
                status, form = 201, APIKeyForm()
        else:
            status = 400
    else:
        form = APIKeyForm()
    context = {
        "keys": list(APIKey.objects.filter(project=project).defer("key_hash").order_by("-created_at")),
        "form": form,
        "new_key": new_key,
        "raw_key": raw_key,
        "tab": "api_keys",
    }
    return render_page(request, "webui/settings/api_keys.html", context, status=status, no_store=True)


def _api_key_action(request: HttpRequest, principal: Principal, key_id: str, action: str) -> HttpResponse:
    project = current_project(principal)
    if action == "delete":
        project_services.delete_api_key(principal, project, key_id)
        messages.success(request, "API key deleted.")
    else:
        api_key = project_services.set_api_key_disabled(principal, project, key_id, action == "disable")
        messages.success(request, f"API key {api_key.name} {action}d.")
    return redirect("webui:settings_api_keys")


@portal_view
@require_POST
def api_key_disable(request: HttpRequest, principal: Principal, key_id: str) -> HttpResponse:
    return _api_key_action(request, principal, key_id, "disable")


@portal_view
@require_POST
def api_key_enable(request: HttpRequest, principal: Principal, key_id: str) -> HttpResponse:
    return _api_key_action(request, principal, key_id, "enable")


@portal_view
@require_POST
def api_key_delete(request: HttpRequest, principal: Principal, key_id: str) -> HttpResponse:
    return _api_key_action(request, principal, key_id, "delete")


# --- Static admin ---------------------------------------------------------------------------------------


def _static_admin_page(
    request: HttpRequest, project, *, form: StaticAdminForm | None = None, error: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "project": project,
        "form": form or StaticAdminForm(initial={"username": project.static_admin_username}),
        "error": error,
        "tab": "static_admin",
    }
    return render_page(request, "webui/settings/static_admin.html", context, status=status)


@portal_view
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters("password", "password_again")
def static_admin(request: HttpRequest, principal: Principal) -> HttpResponse:
    principal.authorize(Resource.PROJECT, Action.GET)
    project = current_project(principal)
    if request.method == "GET":
        return _static_admin_page(request, project)
    principal.authorize(Resource.PROJECT, Action.UPDATE, project.id)
    form = StaticAdminForm(request.POST)
    if not form.is_valid():
        return _static_admin_page(request, project, form=form, status=400)
    try:
        project_services.set_static_admin(
            principal, project, username=form.cleaned_data["username"], password=form.cleaned_data["password"]
        )
    except DomainError as exc:
        apply_domain_error(form, exc)
        return _static_admin_page(request, project, form=form, status=exc.status_code)
    # The other sessions opened with the old credentials end; the one that changed them stays.
    keep_static_admin_session(request, project)
    messages.success(request, "Static admin saved. Use the new password at the next login.")
    return redirect("webui:settings_static_admin")


def _set_static_admin_disabled(request: HttpRequest, principal: Principal, disabled: bool) -> HttpResponse:
    project = current_project(principal)
    try:
        project_services.set_static_admin_disabled(principal, project, disabled)
    except DomainError as exc:
        return _static_admin_page(request, project, error=exc.message, status=exc.status_code)
    messages.success(request, f"Static admin {'disabled' if disabled else 'enabled'}.")
    return redirect("webui:settings_static_admin")


@portal_view
@require_POST
def static_admin_disable(request: HttpRequest, principal: Principal) -> HttpResponse:
    return _set_static_admin_disabled(request, principal, True)


@portal_view
@require_POST
def static_admin_enable(request: HttpRequest, principal: Principal) -> HttpResponse:
    return _set_static_admin_disabled(request, principal, False)


# --- Audit log and sessions (Admins) --------------------------------------------------------------------


@portal_view
@require_GET
def audit_log(request: HttpRequest, principal: Principal) -> HttpResponse:
    principal.authorize(Resource.AUDIT, Action.LIST)
    form = AuditFilterForm(request.GET)
    events, next_before = [], None
    if form.is_valid():
        data = form.cleaned_data
        events, next_before = queries.list_audit_events(
            principal.project_id,
            verb=data["verb"].strip(),
            actor=data["actor"].strip(),
            before_id=data["before"],
        )
    context = {
        "form": form,
        "events": events,
        "next_before": next_before,
        "first_page": not request.GET.get("before"),
        "tab": "audit",
    }
    return render_page(request, "webui/settings/audit.html", context, status=form_status(form))


@portal_view
@require_GET
def sessions(request: HttpRequest, principal: Principal) -> HttpResponse:
    # Ending sessions is a project update; seeing who is logged in goes with it.
    principal.authorize(Resource.PROJECT, Action.UPDATE)
    context = {"sessions": queries.list_sessions(principal.project_id), "tab": "sessions"}
    return render_page(request, "webui/settings/sessions.html", context)


@portal_view
@require_POST
def sessions_end(request: HttpRequest, principal: Principal) -> HttpResponse:
    project = current_project(principal)
    principal.authorize(Resource.PROJECT, Action.UPDATE, project.id)
    form = EndSessionsForm(request.POST)
    if not form.is_valid():
        context = {"sessions": queries.list_sessions(project.id), "tab": "sessions", "form": form}
        return render_page(request, "webui/settings/sessions.html", context, status=400)
    username = form.cleaned_data["username"]
    count = end_user_sessions(principal, project, username)
    messages.success(request, f"Ended {count} session{'s' if count != 1 else ''} of {username}.")
    return redirect("webui:settings_sessions")
