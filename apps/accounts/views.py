"""Login pages: pick the project, then the static admin form (and SSO buttons once configured)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.errors import DomainError
from apps.projects.models import Project

from . import services


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/"
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/"


@require_http_methods(["GET", "POST"])
def choose_project(request: HttpRequest) -> HttpResponse:
    error = ""
    project_id = (request.POST.get("project") or request.GET.get("project") or "").strip().lower()
    if project_id:
        if Project.objects.filter(pk=project_id).exists():
            response = redirect("accounts:project_login", project_id=project_id)
            next_url = _safe_next(request)
            if next_url != "/":
                response["Location"] += f"?next={next_url}"
            return response
        error = f"There is no project named {project_id!r}. Check the spelling, or ask your administrator."
    return render(
        request,
        "accounts/choose_project.html",
        {"error": error, "project_id": project_id, "next": _safe_next(request)},
        status=404 if error else 200,
    )


@require_http_methods(["GET", "POST"])
def project_login(request: HttpRequest, project_id: str) -> HttpResponse:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return render(
            request,
            "accounts/choose_project.html",
            {"error": f"There is no project named {project_id!r}.", "project_id": project_id},
            status=404,
        )
    error, status = "", 200
    username = ""
    if request.method == "POST":
        username = request.POST.get("username", "").strip()
        try:
            services.login_static_admin(request, project, username, request.POST.get("password", ""))
        except DomainError as exc:
            error, status = exc.message, exc.status_code
        else:
            return redirect(_safe_next(request))
    context = {
        "project": project,
        "error": error,
        "username": username,
        "next": _safe_next(request),
        "sso_buttons": sso_buttons(project),
    }
    return render(request, "accounts/project_login.html", context, status=status)


def sso_buttons(project: Project) -> list[dict]:
    """[{name, url}] for the SSO configs attached to the project; filled in by the SSO integration."""
    return []


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    project_id = request.principal.project_id if request.principal else ""
    services.logout(request)
    if project_id:
        return redirect("accounts:project_login", project_id=project_id)
    return redirect("accounts:login")
