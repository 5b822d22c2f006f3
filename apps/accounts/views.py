"""Login pages: pick the project, then SSO buttons and the static admin form; SSO callbacks; My account."""

import logging
import time

import requests
from allauth.socialaccount.providers.base.constants import AuthProcess
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from onelogin.saml2.errors import OneLogin_Saml2_Error

from apps.core.errors import DomainError
from apps.projects.models import Project

from . import services, sso
from .adapters import SSO_LOGIN_KEY
from .models import PortalSession
from .providers import PortalGitHubAdapter, PortalOpenIDConnectAdapter

logger = logging.getLogger(__name__)


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
                response["Location"] += f"?{urlencode({'next': next_url})}"
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
        "sso_buttons": sso_buttons(project, request),
        "sso_missing": sso.configs_for_project(project, request)[1],
    }
    return render(request, "accounts/project_login.html", context, status=status)


def sso_buttons(project: Project, request: HttpRequest | None = None) -> list[dict]:
    """[{name, url, kind}] for the SSO configs attached to the project: each a POST form to sso_login."""
    configs, _ = sso.configs_for_project(project, request)
    return [
        {
            "name": config.label,
            "kind": sso.KIND_LABELS[config.kind],
            "url": reverse(
                "accounts:sso_login", kwargs={"project_id": project.id, "config_name": config.name}
            ),
        }
        for config in configs
    ]


@require_POST
def sso_login(request: HttpRequest, project_id: str, config_name: str) -> HttpResponse:
    """Remember the project and config in the session, then send the browser to the identity provider."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return render(
            request,
            "accounts/choose_project.html",
            {"error": f"There is no project named {project_id!r}.", "project_id": project_id},
            status=404,
        )
    configs, _ = sso.configs_for_project(project, request)
    app = sso.find_app(config_name, request) if config_name in {c.name for c in configs} else None
    if app is None:
        return render(
            request,
            "accounts/sso_error.html",
            {
                "message": f"Project {project.id} does not use an SSO config named {config_name!r}.",
                "project_id": project.id,
            },
            status=404,
        )
    next_url = _safe_next(request)
    request.session[SSO_LOGIN_KEY] = {
        "project": project.id,
        "config": config_name,
        "next": next_url,
        "at": time.time(),
    }
    provider = app.get_provider(request)
    try:
        return provider.redirect(
            request,
            AuthProcess.LOGIN,
            next_url=next_url,
            data={"project": project.id, "config": config_name},
        )
    except (requests.RequestException, ValueError, KeyError, OneLogin_Saml2_Error) as exc:
        # The provider's discovery document or metadata cannot be fetched or read: say so, not a 500.
        logger.warning("SSO config %s cannot start a login: %r", config_name, exc)
        return render(
            request,
            "accounts/sso_error.html",
            {
                "message": f"The portal cannot reach or read {app.name or config_name}'s configuration, so the "
                "login cannot start. Try again later, or ask an operator to check the SSO config.",
                "detail": str(exc)[:500],
                "project_id": project.id,
            },
            status=502,
        )


def _pending_config(request: HttpRequest) -> str:
    return (request.session.get(SSO_LOGIN_KEY) or {}).get("config", "")


@require_GET
def oidc_callback(request: HttpRequest, provider_id: str = "") -> HttpResponse:
    """The OpenID Connect callback, also answering on the path of a configured `redirectUri`.

    On a `redirectUri` path the provider is the one this browser's login was sent to; the token request
    then carries the same redirect_uri the authorization request did.
    """
    provider_id = provider_id or _pending_config(request)
    app = sso.find_app(provider_id, request) if provider_id else None
    if app is None or app.provider != sso.OIDC:
        return render(
            request,
            "accounts/sso_error.html",
            {
                "message": "No OpenID Connect login is in progress in this browser. Start again from your "
                "project's login page."
            },
            status=400,
        )
    view = OAuth2CallbackView.adapter_view(PortalOpenIDConnectAdapter(request, provider_id))
    return view(request)


@require_GET
def github_callback(request: HttpRequest) -> HttpResponse:
    """allauth's one GitHub callback URL, for whichever GitHub config this browser's login went to."""
    config_name = _pending_config(request) or "github"
    view = OAuth2CallbackView.adapter_view(PortalGitHubAdapter(request, config_name))
    return view(request)


def provider_login_elsewhere(request: HttpRequest, **kwargs) -> HttpResponse:
    """allauth's own "log in with X" pages: a login starts from a project's page, which knows the project."""
    return redirect("accounts:login")


@require_GET
def my_account(request: HttpRequest) -> HttpResponse:
    """Who the portal thinks you are: the role, the groups it came from, and the session."""
    if request.principal is None:
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': request.path})}")
    data = request.session.get(services.SESSION_KEY) or {}
    portal_session = PortalSession.objects.filter(session_key=request.session.session_key).first()
    return render(
        request,
        "accounts/my_account.html",
        {
            "method": data.get("method", ""),
            "portal_session": portal_session,
            "sso_config": sso.list_configs(request).get(data.get("method", "")),
        },
    )


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    project_id = request.principal.project_id if request.principal else ""
    services.logout(request)
    if project_id:
        return redirect("accounts:project_login", project_id=project_id)
    return redirect("accounts:login")
