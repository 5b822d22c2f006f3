"""Portal sessions: starting one for a person in a project with a role, ending them, static admin login."""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.module_loading import import_string

from apps.core.errors import Forbidden, InvalidInput, NotFound, Throttled
from apps.core.http import client_ip
from apps.projects import audit
from apps.projects.choices import ActorKind, Role
from apps.projects.models import Project
from apps.projects.principal import Principal
from apps.projects.roles import Action, Resource
from apps.projects.services import check_static_admin_password

from .models import PortalSession
from .resolution import Resolution, resolve_role

logger = logging.getLogger(__name__)

SESSION_KEY = "portal"
STATIC_ADMIN_METHOD = "static_admin"


def _session_store(session_key: str) -> SessionBase:
    engine = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    return engine(session_key)


def static_admin_fingerprint(username: str, password_hash: str) -> str:
    """What a static admin's session remembers of the credentials it was opened with.

    A new password (or username) changes it, so the sessions opened with the old one end at their next
    request — the point of resetting a password that leaked. Keyed with SECRET_KEY: the session holds no
    part of the hash itself.
    """
    return salted_hmac("pipeportal.static-admin-session", f"{username}\0{password_hash}").hexdigest()


def start_portal_session(
    request: HttpRequest,
    project: Project,
    *,
    username: str,
    role: str,
    groups: list[str] | tuple[str, ...] = (),
    method: str,
    ttl_seconds: int | None = None,
    audit_details: dict | None = None,
) -> Principal:
    """Log a person in to a project with a role. SSO calls this once the identity provider has answered.

    `audit_details` adds to the login's audit row (SSO adds every group the identity provider sent).
    """
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}")
    ttl = ttl_seconds or settings.SESSION_COOKIE_AGE
    # A new session key at every login: a key planted before login is worth nothing after it. A session
    # that was already logged in (another project, another person) ends with its row.
    previous_key = request.session.session_key
    request.session.cycle_key()
    if previous_key:
        PortalSession.objects.filter(session_key=previous_key).delete()
    kind = ActorKind.STATIC_ADMIN if method == STATIC_ADMIN_METHOD else ActorKind.USER
    request.session[SESSION_KEY] = {
        "project": project.id,
        "username": username,
        "role": role,
        "groups": list(groups),
        "method": method,
        "kind": kind,
    }
    if kind == ActorKind.STATIC_ADMIN:
        request.session[SESSION_KEY]["credentials"] = static_admin_fingerprint(
            project.static_admin_username, project.static_admin_password
        )
    request.session.set_expiry(ttl)
    request.session.save()
    principal = Principal(
        project_id=project.id,
        kind=kind,
        name=username,
        role=role,
        groups=tuple(groups),
        source_ip=client_ip(request),
    )
    with transaction.atomic():
        PortalSession.objects.update_or_create(
            session_key=request.session.session_key,
            defaults={
                "project": project,
                "username": username,
                "role": role,
                "groups": list(groups),
                "method": method,
                "source_ip": principal.source_ip,
                "expires_at": timezone.now() + timedelta(seconds=ttl),
            },
        )
        audit.record(
            principal,
            "login.success",
            obj=project,
            details={"method": method, "role": role, "groups": list(groups), **(audit_details or {})},
        )
    return principal


def _static_admin_still_valid(data: dict) -> bool:
    """A static admin's session lasts while the static admin is enabled with the same credentials."""
    row = (
        Project.objects.filter(pk=data.get("project"))
        .values("static_admin_username", "static_admin_password", "static_admin_disabled")
        .first()
    )
    if row is None or row["static_admin_disabled"]:
        return False
    expected = static_admin_fingerprint(row["static_admin_username"], row["static_admin_password"])
    return constant_time_compare(data.get("credentials") or "", expected)


def keep_static_admin_session(request: HttpRequest, project: Project) -> None:
    """After the static admin changed its own credentials, keep the session that changed them.

    Every other session opened with the old credentials still ends (like Django's
    update_session_auth_hash). A call from anyone else's session changes nothing.
    """
    data = request.session.get(SESSION_KEY)
    if not data or data.get("kind") != ActorKind.STATIC_ADMIN or data.get("project") != project.id:
        return
    project.refresh_from_db(fields=["static_admin_username", "static_admin_password"])
    data["username"] = project.static_admin_username
    data["credentials"] = static_admin_fingerprint(
        project.static_admin_username, project.static_admin_password
    )
    request.session[SESSION_KEY] = data
    PortalSession.objects.filter(session_key=request.session.session_key).update(username=data["username"])


def principal_from_session(request: HttpRequest) -> Principal | None:
    data = request.session.get(SESSION_KEY)
    if not data:
        return None
    if data.get("kind") == ActorKind.STATIC_ADMIN and not _static_admin_still_valid(data):
        # The password was reset or the static admin disabled since this session began: it ends here.
        logout(request)
        return None
    return Principal(
        project_id=data["project"],
        kind=data.get("kind", ActorKind.USER),
        name=data["username"],
        role=data["role"],
        groups=tuple(data.get("groups", ())),
        source_ip=client_ip(request),
    )


def logout(request: HttpRequest) -> None:
    if request.session.session_key:
        PortalSession.objects.filter(session_key=request.session.session_key).delete()
    request.session.flush()


@transaction.atomic
def end_user_sessions(principal: Principal, project: Project, username: str) -> int:
    """An Admin logs a person out of the project everywhere. Returns the number of sessions ended."""
    principal.authorize(Resource.PROJECT, Action.UPDATE, project.id)
    sessions = list(PortalSession.objects.filter(project=project, username=username))
    if not sessions:
        raise NotFound(f"{username} has no session in this project.")
    for portal_session in sessions:
        _session_store(portal_session.session_key).delete()
        portal_session.delete()
    audit.record(
        principal, "session.end", obj=project, details={"username": username, "count": len(sessions)}
    )
    return len(sessions)


def _failure_key(project_id: str, ip: str) -> str:
    return f"login-failures:{project_id}:{ip}"


def count_attempt(key: str) -> int:
    """Add one to the attempts counted under `key` (atomically: Redis INCR) and answer the new count."""
    window = settings.PIPEPORTAL_LOGIN_FAILURE_WINDOW
    if cache.add(key, 1, timeout=window):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        return 1


def login_static_admin(request: HttpRequest, project: Project, username: str, password: str) -> Principal:
    """Check the static admin's credentials, throttled per project and client address.

    The attempt is counted before the password is checked, in one atomic step: a burst of parallel
    attempts cannot all read "4 failures so far" and all get a guess in.
    """
    ip = client_ip(request)
    key = _failure_key(project.id, ip)
    if project.static_admin_disabled:
        raise InvalidInput("The static admin is disabled for this project; log in with SSO.")

    def audit_login(verb: str, details: dict) -> None:
        actor = username[:200] or "anonymous"
        audit.record(
            None,
            verb,
            project_id=project.id,
            actor=actor,
            actor_kind=ActorKind.STATIC_ADMIN,
            source_ip=ip,
            details=details,
        )

    attempt = count_attempt(key)
    if attempt > settings.PIPEPORTAL_LOGIN_MAX_FAILURES:
        # Audited once, when the throttle engages: a client hammering on would otherwise write a row per try.
        if attempt == settings.PIPEPORTAL_LOGIN_MAX_FAILURES + 1:
            audit_login("login.throttled", {"window_seconds": settings.PIPEPORTAL_LOGIN_FAILURE_WINDOW})
        logger.warning("static admin login to project %s throttled for %s", project.id, ip)
        minutes = max(settings.PIPEPORTAL_LOGIN_FAILURE_WINDOW // 60, 1)
        raise Throttled(f"Too many failed logins from your address. Try again in {minutes} minutes.")
    if not check_static_admin_password(project, username, password):
        audit_login("login.failure", {"method": STATIC_ADMIN_METHOD})
        raise InvalidInput("Wrong username or password.")
    cache.delete(key)
    return start_portal_session(
        request, project, username=username, role=Role.ADMIN, method=STATIC_ADMIN_METHOD
    )


class SSORefused(Forbidden):
    """The identity provider vouched for the person, but none of their groups gives a role in the project."""

    def __init__(self, message: str, *, identity: str, config_name: str, resolution: Resolution):
        super().__init__(message)
        self.identity = identity
        self.config_name = config_name
        self.resolution = resolution


def login_sso_user(
    request: HttpRequest,
    project: Project,
    *,
    config_name: str,
    identity: str,
    groups: list[str] | tuple[str, ...],
    ttl_seconds: int,
) -> Principal:
    """Start the portal session of someone the identity provider vouched for, with the role worked out afresh.

    The role comes only from the groups sent at this login, so a person removed from a group loses its role
    at their next login.
    """
    identity = identity[:200]
    resolution = resolve_role(project, groups)
    if resolution.role is None:
        audit.record(
            None,
            "login.refused",
            project_id=project.id,
            actor=identity,
            actor_kind=ActorKind.USER,
            source_ip=client_ip(request),
            details={"method": config_name, "received_groups": list(resolution.received)},
        )
        raise SSORefused(
            f"None of the groups {config_name} sent for {identity} is mapped to a role in project "
            f"{project.id}.",
            identity=identity,
            config_name=config_name,
            resolution=resolution,
        )
    return start_portal_session(
        request,
        project,
        username=identity,
        role=resolution.role,
        groups=list(resolution.matched),
        method=config_name,
        ttl_seconds=ttl_seconds,
        audit_details={"received_groups": list(resolution.received), "stray": resolution.stray},
    )
