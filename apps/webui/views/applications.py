"""Applications: the list, adding one, its page, and the actions on it (sync, edit, disable, delete)."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.applications import services
from apps.applications.models import Application
from apps.core.errors import DomainError
from apps.projects.principal import Principal
from apps.projects.roles import Action, Resource

from .. import livestate, queries
from ..forms import (
    ApplicationEditForm,
    ApplicationFilterForm,
    ApplicationForm,
    SyncForm,
    application_form_initial,
    apply_domain_error,
    labels_text,
)
from ..pipeds import suggestions_of
from .common import current_project, form_status, portal_view, render_page

PAGE_SIZE = 50
# The services name some fields as the API does; the forms use shorter names.
FIELD_ALIASES = {"piped_id": "piped", "sync_strategy": "strategy"}


def _form_error(form, exc: DomainError) -> int:
    exc.field = FIELD_ALIASES.get(exc.field or "", exc.field)
    apply_domain_error(form, exc)
    return exc.status_code


@portal_view
@require_GET
def home(request: HttpRequest, principal: Principal) -> HttpResponse:
    return redirect("webui:applications")


@portal_view
@require_GET
def application_list(request: HttpRequest, principal: Principal) -> HttpResponse:
    principal.authorize(Resource.APPLICATION, Action.LIST)
    form = ApplicationFilterForm(request.GET)
    page = None
    if form.is_valid():
        data = form.cleaned_data
        applications = queries.list_applications(
            principal.project_id,
            kind=data["kind"],
            sync_status=data["sync_status"],
            labels=data["labels"],
            name=data["name"].strip(),
        )
        page = Paginator(applications, PAGE_SIZE).get_page(request.GET.get("page"))
        page.object_list = queries.applications_by_id(list(page.object_list))
    waiting = queries.waiting_for_approval([app.most_recent_deployment_id for app in page or []])
    filtered = any(request.GET.get(name) for name in form.fields)
    suggestions = []
    if principal.can(Resource.APPLICATION, Action.CREATE):
        # App configs the pipeds found in Git that nobody added yet: two queries, whatever their number.
        suggestions = suggestions_of(
            queries.pipeds_for_application_form(principal.project_id, with_suggestions=True)
        )
    context = {
        "form": form,
        "page": page,
        "filtered": filtered,
        "waiting": waiting,
        "suggestion_count": len(suggestions),
    }
    return render_page(request, "webui/applications/list.html", context, status=form_status(form))


@portal_view
@require_http_methods(["GET", "POST"])
def application_add(request: HttpRequest, principal: Principal) -> HttpResponse:
    principal.authorize(Resource.APPLICATION, Action.CREATE)
    project = current_project(principal)
    pipeds = queries.pipeds_for_application_form(project.id, with_suggestions=True)
    suggestions = suggestions_of(pipeds)
    status, note = 200, ""
    if request.method == "POST":
        form = ApplicationForm(request.POST, pipeds=pipeds, suggestions=suggestions)
        if form.is_valid():
            data = form.cleaned_data
            try:
                app = services.add_application(
                    principal,
                    project,
                    name=data["name"],
                    piped_id=data["piped"],
                    kind=data["kind"],
                    platform_provider=data["platform_provider"],
                    repo_id=data["repo_id"],
                    path=data["path"],
                    config_filename=data["config_filename"],
                    description=data["description"],
                    labels=data["labels"],
                )
            except DomainError as exc:
                status = _form_error(form, exc)
            else:
                messages.success(request, f"Application {app.name} added.")
                return redirect("webui:application", app_id=app.id)
        else:
            status = 400
    else:
        # htmx re-renders the form when the piped or the suggestion changes, sending what was typed so far:
        # keep it. Links from a piped's page and the applications list pick a suggestion the same way.
        initial, note = application_form_initial(request.GET, pipeds, suggestions)
        form = ApplicationForm(initial=initial, pipeds=pipeds, suggestions=suggestions)
    context = {"form": form, "pipeds": pipeds, "note": note}
    return render_page(request, "webui/applications/add.html", context, status=status)


def _application_page(
    request: HttpRequest,
    app: Application,
    *,
    sync_form: SyncForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    deployments = queries.recent_deployments(app)
    context = {
        "app": app,
        "deployments": deployments,
        "waiting": queries.waiting_for_approval([d.id for d in deployments]),
        "running": app.most_recent_successful_deployment,
        "sync_form": sync_form or SyncForm(),
        "error": error,
        # ECS live state and drift (apps/webui/livestate.py); the live state card refreshes by itself.
        **livestate.application_context(app),
    }
    if request.GET.get("fragment") == "live-state" and request.method == "GET":
        return render_page(request, "webui/applications/_live_state.html", context, status=status)
    return render_page(request, "webui/applications/detail.html", context, status=status)


@portal_view
@require_GET
def application_detail(request: HttpRequest, principal: Principal, app_id) -> HttpResponse:
    app = services.get_application(principal, app_id)
    return _application_page(request, app)


@portal_view
@require_POST
def application_sync(request: HttpRequest, principal: Principal, app_id) -> HttpResponse:
    app = services.get_application(principal, app_id, Action.UPDATE)
    form = SyncForm(request.POST)
    if not form.is_valid():
        return _application_page(request, app, sync_form=form, status=400)
    try:
        command = services.sync_application(principal, app, form.cleaned_data["strategy"])
    except DomainError as exc:
        return _application_page(request, app, sync_form=form, error=exc.message, status=exc.status_code)
    messages.success(
        request,
        f"Sync requested ({form.cleaned_data['strategy']}); the piped picks it up within seconds "
        f"(command {command.id}).",
    )
    return redirect("webui:application", app_id=app.id)


@portal_view
@require_http_methods(["GET", "POST"])
def application_edit(request: HttpRequest, principal: Principal, app_id) -> HttpResponse:
    app = services.get_application(principal, app_id, Action.UPDATE)
    pipeds = queries.pipeds_for_application_form(app.project_id)
    status = 200
    if request.method == "POST":
        form = ApplicationEditForm(request.POST, pipeds=pipeds)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.update_application(
                    principal,
                    app,
                    name=data["name"],
                    piped_id=data["piped"],
                    platform_provider=data["platform_provider"],
                    description=data["description"],
                    labels=data["labels"],
                )
            except DomainError as exc:
                status = _form_error(form, exc)
            else:
                messages.success(request, f"Application {app.name} saved.")
                return redirect("webui:application", app_id=app.id)
        else:
            status = 400
    else:
        form = ApplicationEditForm(
            initial={
                "name": app.name,
                "piped": str(app.piped_id),
                "platform_provider": app.platform_provider,
                "labels": labels_text(app.labels),
                "description": app.description,
            },
            pipeds=pipeds,
        )
    return render_page(request, "webui/applications/edit.html", {"form": form, "app": app}, status=status)


def _set_disabled(request: HttpRequest, principal: Principal, app_id, disabled: bool) -> HttpResponse:
    app = services.get_application(principal, app_id, Action.UPDATE)
    try:
        services.set_application_disabled(principal, app, disabled)
    except DomainError as exc:
        return _application_page(request, app, error=exc.message, status=exc.status_code)
    messages.success(request, f"Application {app.name} {'disabled' if disabled else 'enabled'}.")
    return redirect("webui:application", app_id=app.id)


@portal_view
@require_POST
def application_disable(request: HttpRequest, principal: Principal, app_id) -> HttpResponse:
    return _set_disabled(request, principal, app_id, True)


@portal_view
@require_POST
def application_enable(request: HttpRequest, principal: Principal, app_id) -> HttpResponse:
    return _set_disabled(request, principal, app_id, False)


@portal_view
@require_POST
def application_delete(request: HttpRequest, principal: Principal, app_id) -> HttpResponse:
    app = services.get_application(principal, app_id, Action.DELETE)
    try:
        services.delete_application(principal, app)
    except DomainError as exc:
        return _application_page(request, app, error=exc.message, status=exc.status_code)
    messages.success(request, f"Application {app.name} deleted; its deployment history stays.")
    return redirect("webui:applications")
