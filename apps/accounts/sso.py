"""SSO configs: where they come from (control-plane config, environment, admin) and which a project uses.

Every source becomes an allauth `SocialApp` (unsaved for the first two), so allauth drives the protocol
for all of them. The portal-specific knobs live in the app's `settings` JSON:

    roles_claim_key      OIDC claim holding the groups (default "groups")
    groups_attribute     SAML attribute(s) holding the groups
    redirect_uri         OIDC redirect URI sent to the provider (PipeCD's `redirectUri`)
    session_ttl_seconds  how long a portal session lasts (PipeCD's `sessionTtl`, in hours there)
    base_url, org        GitHub Enterprise address; only teams of this organisation count
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

from django.conf import settings

logger = logging.getLogger(__name__)

OIDC = "openid_connect"
SAML = "saml"
GITHUB = "github"
KIND_LABELS = {OIDC: "OpenID Connect", SAML: "SAML 2.0", GITHUB: "GitHub"}

DEFAULT_ROLES_CLAIM_KEY = "groups"
DEFAULT_OIDC_SCOPES = ["openid", "profile", "email"]
# Where SAML identity providers usually put group membership: plain, Entra ID's groups and roles, LDAP.
DEFAULT_SAML_GROUP_ATTRIBUTES = [
    "groups",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    "memberOf",
]
GITHUB_DEFAULT_SCOPES = ["read:org"]
PIPECD_DEFAULT_SESSION_TTL_HOURS = 7 * 24


@dataclass(frozen=True)
class SSOConfig:
    """One way to log in, as the login page and the role resolution see it."""

    name: str  # what Project.shared_sso_config holds
    kind: str  # OIDC, SAML or GITHUB (allauth's provider id)
    label: str  # shown as "Login with <label>"
    source: str  # "control-plane config", "environment" or "admin"
    session_ttl: int  # seconds
    redirect_uri: str = ""
    roles_claim_key: str = DEFAULT_ROLES_CLAIM_KEY
    groups_attributes: tuple[str, ...] = ()
    github_org: str = ""

    @property
    def lookup(self) -> str:
        """What allauth's `get_provider()` takes to find this config's app."""
        return self.name

    @property
    def redirect_path(self) -> str:
        return urlparse(self.redirect_uri).path if self.redirect_uri else ""


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Read a field from the config engineer's pydantic models, or from a plain dict."""
    if obj is None:
        return default
    value = obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)
    return default if value is None else value


def _enum_name(value: Any) -> str:
    value = getattr(value, "value", value)
    return str(value or "").upper()


def _ttl_seconds(value: Any) -> int:
    """PipeCD's sessionTtl is in hours; 0 or unset means the default of 7 days."""
    if isinstance(value, timedelta):
        return int(value.total_seconds()) or PIPECD_DEFAULT_SESSION_TTL_HOURS * 3600
    try:
        hours = int(value or 0)
    except (TypeError, ValueError):
        hours = 0
    return (hours or PIPECD_DEFAULT_SESSION_TTL_HOURS) * 3600


def _new_app(kind: str, name: str, *, client_id: str = "", secret: str = "", app_settings: dict):
    from allauth.socialaccount.models import SocialApp

    return SocialApp(
        provider=kind,
        provider_id=name,
        name=name,
        client_id=client_id or "",
        secret=secret or "",
        settings=app_settings,
    )


def _oidc_app(name: str, oidc: Any, *, source: str, ttl: int):
    overrides = {
        key: _get(oidc, attr)
        for key, attr in (
            ("authorization_endpoint", "authorization_endpoint"),
            ("token_endpoint", "token_endpoint"),
            ("userinfo_endpoint", "user_info_endpoint"),
        )
        if _get(oidc, attr)
    }
    app_settings = {
        "server_url": str(_get(oidc, "issuer", "")).rstrip("/"),
        "scope": list(_get(oidc, "scopes", None) or DEFAULT_OIDC_SCOPES),
        "redirect_uri": str(_get(oidc, "redirect_uri", "")),
        "roles_claim_key": str(_get(oidc, "roles_claim_key", "") or DEFAULT_ROLES_CLAIM_KEY),
        "session_ttl_seconds": ttl,
        "oauth_pkce_enabled": True,
        "source": source,
    }
    if overrides:
        app_settings["openid_configuration_overrides"] = overrides
    if _get(oidc, "token_auth_method"):
        app_settings["token_auth_method"] = _get(oidc, "token_auth_method")
    return _new_app(
        OIDC,
        name,
        client_id=str(_get(oidc, "client_id", "")),
        secret=str(_get(oidc, "client_secret", "")),
        app_settings=app_settings,
    )


def _saml_app(name: str, saml: Any, *, source: str, ttl: int):
    idp: dict[str, Any] = {"entity_id": _get(saml, "idp_entity_id", "")}
    if _get(saml, "idp_metadata_url"):
        idp["metadata_url"] = _get(saml, "idp_metadata_url")
    else:
        idp["sso_url"] = _get(saml, "idp_sso_url", "")
        idp["x509cert"] = _get(saml, "idp_x509_cert", "")
    groups_attribute = _get(saml, "groups_attribute", "")
    app_settings: dict[str, Any] = {
        "idp": idp,
        "groups_attribute": groups_attribute or list(DEFAULT_SAML_GROUP_ATTRIBUTES),
        "session_ttl_seconds": ttl,
        "source": source,
        # Nothing signed by the IdP, nothing accepted: the response or the assertion must carry a signature
        # (python3-saml insists on one of them), and an unsolicited response is refused.
        # Internal host names without a dot (http://portal:8000) are fine for the portal's own URLs.
        "advanced": {"strict": True, "reject_idp_initiated_sso": True, "allow_single_label_domains": True},
    }
    if _get(saml, "sp_entity_id"):
        app_settings["sp"] = {"entity_id": _get(saml, "sp_entity_id")}
    return _new_app(SAML, name, client_id=name, app_settings=app_settings)


def _github_app(name: str, github: Any, *, source: str, ttl: int):
    app_settings = {
        "base_url": str(_get(github, "base_url", "")),
        "org": str(_get(github, "org", "")),
        "scope": list(GITHUB_DEFAULT_SCOPES),
        "session_ttl_seconds": ttl,
        "source": source,
    }
    return _new_app(
        GITHUB,
        name,
        client_id=str(_get(github, "client_id", "")),
        secret=str(_get(github, "client_secret", "")),
        app_settings=app_settings,
    )


def control_plane_config():
    """The loaded control-plane config (issue 3's loader sets it in settings), or None."""
    return getattr(settings, "PIPEPORTAL_CONTROL_PLANE_CONFIG", None)


def apps_from_control_plane_config() -> list:
    config = control_plane_config()
    if config is None:
        return []
    spec = _get(config, "spec", config)
    apps = []
    for entry in _get(spec, "shared_sso_configs", None) or []:
        name = str(_get(entry, "name", ""))
        provider = _enum_name(_get(entry, "provider"))
        ttl = _ttl_seconds(_get(entry, "session_ttl"))
        source = "control-plane config"
        if provider == "OIDC":
            apps.append(_oidc_app(name, _get(entry, "oidc"), source=source, ttl=ttl))
        elif provider == "GITHUB":
            apps.append(_github_app(name, _get(entry, "github"), source=source, ttl=ttl))
        elif provider == "SAML" and _get(entry, "saml") is not None:
            apps.append(_saml_app(name, _get(entry, "saml"), source=source, ttl=ttl))
        else:
            # The config loader reports unknown providers; here we only skip what we cannot run.
            logger.warning("sharedSSOConfigs %r: provider %s is not supported; skipped", name, provider)
    return apps


def apps_from_environment() -> list:
    ttl = settings.SESSION_COOKIE_AGE
    source = "environment"
    builders = {OIDC: _oidc_app, SAML: _saml_app, GITHUB: _github_app}
    apps = []
    for entry in getattr(settings, "PIPEPORTAL_SSO_FROM_ENV", []):
        builder = builders[entry["kind"]]
        apps.append(builder(entry["name"], entry, source=source, ttl=ttl))
    return apps


def config_name(app) -> str:
    """The name a project refers to: the provider id (SAML: the organisation slug in its URLs)."""
    if app.provider == SAML:
        return app.client_id or app.provider_id
    return app.provider_id or app.provider


def describe(app) -> SSOConfig:
    app_settings = app.settings or {}
    groups_attribute = app_settings.get("groups_attribute") or DEFAULT_SAML_GROUP_ATTRIBUTES
    if isinstance(groups_attribute, str):
        groups_attribute = [groups_attribute]
    name = config_name(app)
    return SSOConfig(
        name=name,
        kind=app.provider,
        label=app.name or name,
        source=app_settings.get("source", "admin"),
        session_ttl=int(app_settings.get("session_ttl_seconds") or settings.SESSION_COOKIE_AGE),
        redirect_uri=app_settings.get("redirect_uri", "") if app.provider == OIDC else "",
        roles_claim_key=app_settings.get("roles_claim_key") or DEFAULT_ROLES_CLAIM_KEY,
        groups_attributes=tuple(groups_attribute),
        github_org=app_settings.get("org", "") if app.provider == GITHUB else "",
    )


def list_configs(request=None) -> dict[str, SSOConfig]:
    """Every SSO config the portal knows, by name (first source wins on a clash)."""
    from allauth.socialaccount.adapter import get_adapter

    configs: dict[str, SSOConfig] = {}
    for app in get_adapter().list_apps(request):
        if app.provider in KIND_LABELS:
            config = describe(app)
            configs.setdefault(config.name, config)
    return configs


def attached_names(project) -> list[str]:
    """The SSO configs a project uses: Project.shared_sso_config, one name or several separated by commas."""
    return [name.strip() for name in (project.shared_sso_config or "").split(",") if name.strip()]


def configs_for_project(project, request=None) -> tuple[list[SSOConfig], list[str]]:
    """(the project's SSO configs the portal knows, the attached names it does not know)."""
    names = attached_names(project)
    if not names:
        return [], []
    known = list_configs(request)
    return [known[n] for n in names if n in known], [n for n in names if n not in known]


def oidc_redirect_paths() -> set[str]:
    """Paths of the `redirectUri`s configured in settings-backed sources, answered as OIDC callbacks."""
    paths = set()
    for app in apps_from_control_plane_config() + apps_from_environment():
        if app.provider == OIDC and app.settings.get("redirect_uri"):
            paths.add(urlparse(app.settings["redirect_uri"]).path)
    return paths


def find_app(name: str, request=None):
    """The allauth app behind the SSO config `name`, or None."""
    from allauth.socialaccount.adapter import get_adapter

    for app in get_adapter().list_apps(request):
        if app.provider in KIND_LABELS and config_name(app) == name:
            return app
    return None
