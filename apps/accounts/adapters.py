"""The allauth adapter: where SSO configs come from, and what happens once an identity provider has answered.

allauth proves who someone is. Then, instead of logging a Django user in, `pre_social_login` checks that
the answer belongs to the login this browser started (project and config), works out the role from the
groups, starts the portal session and redirects — or shows a page that says why not.
"""

from __future__ import annotations

import logging
import time

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.providers.base.constants import AuthError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from apps.projects.models import Project

from . import services, sso
from .providers import GITHUB_GROUPS_KEY, SAML_NAMEID_KEY
from .resolution import groups_from_claims, groups_from_saml

logger = logging.getLogger(__name__)

# The login this browser started: {"project", "config", "next", "at"}. Checked when the provider answers.
SSO_LOGIN_KEY = "sso_login"
# A login must come back within this long (allauth's own state expires after 10 minutes too).
SSO_LOGIN_MAX_AGE = 15 * 60

# Where the person's name comes from, first present wins (DESIGN.md: preferred_username, else email).
COGNITO_GROUPS_CLAIM = "cognito:groups"
OIDC_IDENTITY_CLAIMS = ("preferred_username", "email", "username", "cognito:username", "sub")

# SAML failures python3-saml reports, in words a person can act on.
SAML_REASONS = (
    (
        "Signature validation failed",
        "The signature on the SAML response does not verify: the response was altered on the way, or it "
        "was signed with a certificate other than the one configured for this identity provider.",
    ),
    (
        "No Signature found",
        "The SAML response carries no signature. Configure the identity provider to sign the response or "
        "the assertion.",
    ),
    (
        "is not a valid audience",
        "The SAML assertion is meant for another service (its audience is not this portal's entity ID). "
        "Check the Identifier (Entity ID) registered at the identity provider.",
    ),
    (
        "Could not validate timestamp: expired",
        "The SAML assertion has expired. Log in again; if it keeps happening, check the clocks of the "
        "identity provider and of the portal.",
    ),
    (
        "Could not validate timestamp: not yet valid",
        "The SAML assertion is not valid yet: the clocks of the identity provider and the portal disagree.",
    ),
    (
        "is not a valid issuer",
        "The SAML response comes from another identity provider than the one configured (issuer mismatch).",
    ),
    (
        "is not a valid Destination",
        "The SAML response was sent to another address than this portal's assertion consumer service.",
    ),
)


def _render_error(
    request: HttpRequest, message: str, *, detail: str = "", status: int = 400, project_id: str = ""
) -> HttpResponse:
    pending = request.session.get(SSO_LOGIN_KEY) or {}
    return render(
        request,
        "accounts/sso_error.html",
        {"message": message, "detail": detail, "project_id": project_id or pending.get("project", "")},
        status=status,
    )


def _saml_message(reason: str) -> str:
    for needle, message in SAML_REASONS:
        if needle.lower() in reason.lower():
            return message
    return "The identity provider's SAML response was refused."


def _identity_and_groups(sociallogin, config: sso.SSOConfig) -> tuple[str, list[str]]:
    extra = sociallogin.account.extra_data or {}
    if config.kind == sso.OIDC:
        claim_sets = [extra.get("userinfo") or {}, extra.get("id_token") or {}]
        if not extra.get("userinfo") and not extra.get("id_token"):
            claim_sets = [extra]
        identity = next(
            (str(c[k]) for k in OIDC_IDENTITY_CLAIMS for c in claim_sets if c.get(k)),
            "",
        )
        keys = [config.roles_claim_key]
        if config.roles_claim_key == sso.DEFAULT_ROLES_CLAIM_KEY:
            # Cognito calls its groups `cognito:groups`: a config that names no claim (the seed's) still
            # finds them.
            keys.append(COGNITO_GROUPS_CLAIM)
        return identity, groups_from_claims(claim_sets, keys)
    if config.kind == sso.SAML:
        return str(extra.get(SAML_NAMEID_KEY) or sociallogin.account.uid), groups_from_saml(
            extra, config.groups_attributes
        )
    return str(extra.get("login", "")), list(extra.get(GITHUB_GROUPS_KEY, []))


def _safe_next(request: HttpRequest, url: str | None) -> str:
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return "/"


class PortalSocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request, provider=None, client_id=None):
        """The control-plane config's and the environment's configs, then the admin's (first name wins)."""
        apps = []
        for app in sso.apps_from_control_plane_config() + sso.apps_from_environment():
            if provider and provider not in (app.provider, app.provider_id):
                continue
            if client_id and app.client_id != client_id:
                continue
            apps.append(app)
        seen = {(app.provider, sso.config_name(app)) for app in apps}
        for app in super().list_apps(request, provider=provider, client_id=client_id):
            key = (app.provider, sso.config_name(app))
            if key in seen:
                logger.warning("SSO config %r is defined twice; the admin's copy is ignored", key[1])
                continue
            seen.add(key)
            apps.append(app)
        return apps

    def is_open_for_signup(self, request, sociallogin) -> bool:
        # SSO logins end in pre_social_login; nothing should ever reach allauth's signup.
        return False

    def on_authentication_error(self, request, provider, error=None, exception=None, extra_context=None):
        extra_context = extra_context or {}
        name = getattr(getattr(provider, "app", None), "name", "") or getattr(provider, "name", "SSO")
        logger.warning("SSO login through %s failed: %s %s %s", name, error, exception, extra_context)
        if extra_context.get("saml_errors"):
            reason = str(extra_context.get("saml_last_error_reason") or "")
            response = _render_error(request, _saml_message(reason), detail=reason, status=401)
        elif error == AuthError.CANCELLED:
            response = _render_error(request, f"The login at {name} was cancelled.", status=401)
        elif exception is not None:
            response = _render_error(
                request,
                f"{name} did not confirm who you are, so you are not logged in.",
                detail=str(exception)[:500],
                status=401,
            )
        elif request.GET.get("error"):
            # The provider answered the authorization request with an error of its own.
            response = _render_error(
                request,
                f"{name} refused the login.",
                detail=f"{request.GET['error']}: {request.GET.get('error_description', '')}"[:500],
                status=401,
            )
        else:
            # No state to match (allauth's is gone, or a SAML answer nobody asked for: IdP-initiated).
            response = _render_error(
                request,
                f"The answer from {name} does not match a login started in this browser. It may have "
                "taken more than 10 minutes, or the browser did not send the portal's cookie back. "
                "Start again from your project's login page.",
                status=400,
            )
        raise ImmediateHttpResponse(response)

    def pre_social_login(self, request, sociallogin) -> None:
        raise ImmediateHttpResponse(finish_sso_login(request, sociallogin))


def finish_sso_login(request: HttpRequest, sociallogin) -> HttpResponse:
    """The identity provider has vouched for someone: check it is the login we started, then log them in."""
    pending = request.session.get(SSO_LOGIN_KEY)
    state_data = (sociallogin.state or {}).get("data") or {}
    if not pending or time.time() - pending.get("at", 0) > SSO_LOGIN_MAX_AGE:
        return _render_error(
            request,
            "No login was in progress in this browser, or it took too long. Start again from your "
            "project's login page.",
        )
    if state_data.get("project") != pending["project"] or state_data.get("config") != pending["config"]:
        return _render_error(
            request,
            "The identity provider's answer belongs to another login than the one in progress in this "
            "browser. Start again from your project's login page.",
        )
    project = Project.objects.filter(pk=pending["project"]).first()
    configs, _ = sso.configs_for_project(project, request) if project else ([], [])
    config = next((c for c in configs if c.name == pending["config"]), None)
    if project is None or config is None:
        return _render_error(
            request,
            f"Project {pending['project']!r} no longer uses the SSO config {pending['config']!r}.",
            status=403,
        )
    app = sso.find_app(config.name, request)
    if app is None or sociallogin.account.provider != (app.provider_id or app.provider):
        return _render_error(
            request, f"The answer did not come from {config.label}, where this login was sent.", status=403
        )
    identity, groups = _identity_and_groups(sociallogin, config)
    if not identity:
        return _render_error(
            request, f"{config.label} did not say who you are (no user name, e-mail or NameID).", status=403
        )
    del request.session[SSO_LOGIN_KEY]
    try:
        services.login_sso_user(
            request,
            project,
            config_name=config.name,
            identity=identity,
            groups=groups,
            ttl_seconds=config.session_ttl,
        )
    except services.SSORefused as refused:
        return render(
            request,
            "accounts/sso_refused.html",
            {
                "project": project,
                "config": config,
                "identity": refused.identity,
                "received": refused.resolution.received,
            },
            status=403,
        )
    return redirect(_safe_next(request, pending.get("next")))
