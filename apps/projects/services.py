"""Business rules for projects, user groups, the static admin and API keys.

Every function takes the acting Principal, checks it may act, changes state and writes the audit row
in one transaction.
"""

import secrets
from datetime import timedelta

from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.core.keys import hash_key, key_matches, new_secret

from . import audit
from .choices import APIKeyRole, Role
from .models import APIKey, Project, UserGroup, project_id_validator
from .principal import Principal
from .roles import Action, Resource


def _check_length(value: str, model, field: str, what: str) -> str:
    """Refuse text longer than its column: MySQL in strict mode would fail the write with a DataError."""
    limit = model._meta.get_field(field).max_length
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters.", field=field)
    return value


def _validate_project_id(project_id: str) -> None:
    try:
        project_id_validator(project_id)
    except ValidationError as exc:
        raise InvalidInput(f"{project_id!r}: {exc.messages[0]}", field="id") from exc


@transaction.atomic
def create_project(
    principal: Principal, project_id: str, *, description: str = "", shared_sso_config: str = ""
) -> tuple[Project, str, str]:
    """Create a project with a generated static admin. Returns (project, username, password)."""
    _validate_project_id(project_id)
    _check_length(shared_sso_config, Project, "shared_sso_config", "The shared SSO config name")
    exists = Conflict(f"Project {project_id!r} already exists.", field="id")
    if Project.objects.filter(pk=project_id).exists():
        raise exists
    username = f"admin-{secrets.token_hex(3)}"
    password = new_secret(18)
    try:
        with transaction.atomic():
            project = Project.objects.create(
                id=project_id,
                description=description,
                static_admin_username=username,
                static_admin_password=make_password(password),
                shared_sso_config=shared_sso_config,
                git_webhook_secret=new_secret(24),
            )
    except IntegrityError:  # created by someone else since the check above
        raise exists from None
    audit.record(
        principal,
        "project.create",
        project_id=project.id,
        obj=project,
        details={"shared_sso_config": shared_sso_config},
    )
    return project, username, password


def get_project(project_id: str) -> Project:
    try:
        return Project.objects.get(pk=project_id)
    except Project.DoesNotExist:
        raise NotFound(f"Project {project_id!r} not found.") from None


@transaction.atomic
def update_project(
    principal: Principal,
    project: Project,
    *,
    description: str | None = None,
    allow_stray_as_viewer: bool | None = None,
    shared_sso_config: str | None = None,
) -> Project:
    principal.authorize(Resource.PROJECT, Action.UPDATE, project.id)
    changes = {}
    if description is not None:
        changes["description"] = description
    if allow_stray_as_viewer is not None:
        changes["allow_stray_as_viewer"] = allow_stray_as_viewer
    if shared_sso_config is not None:
        if not shared_sso_config and project.static_admin_disabled:
            raise Conflict("Enable the static admin before detaching the SSO config: it is the last way in.")
        _check_length(shared_sso_config, Project, "shared_sso_config", "The shared SSO config name")
        if project.static_admin_disabled and shared_sso_config != project.shared_sso_config:
            _refuse_unknown_sso(shared_sso_config)
        changes["shared_sso_config"] = shared_sso_config
    for name, value in changes.items():
        setattr(project, name, value)
    project.save()
    audit.record(principal, "project.update", obj=project, details=changes)
    return project


def _refuse_unknown_sso(shared_sso_config: str) -> None:
    """With the static admin disabled, SSO is the only way in: it must name a config this portal knows."""
    # Imported here: SSO configs live in the accounts app, which itself builds on projects.
    from apps.accounts.sso import configs_for_project

    known, unknown = configs_for_project(Project(shared_sso_config=shared_sso_config))
    if not known:
        raise Conflict(
            f"The SSO config {', '.join(unknown)!s} is not configured on this control plane, and the static "
            "admin is disabled: nobody could log in to this project. Enable the static admin first.",
            field="shared_sso_config",
        )


@transaction.atomic
def set_static_admin(principal: Principal, project: Project, *, username: str, password: str) -> None:
    principal.authorize(Resource.PROJECT, Action.UPDATE, project.id)
    username = username.strip()
    if not username:
        raise InvalidInput("The static admin username must not be empty.", field="username")
    _check_length(username, Project, "static_admin_username", "The static admin username")
    if len(password) < 12:
        raise InvalidInput("The static admin password must be at least 12 characters.", field="password")
    project.static_admin_username = username
    project.static_admin_password = make_password(password)
    project.save(update_fields=["static_admin_username", "static_admin_password", "updated_at"])
    audit.record(principal, "static_admin.update", obj=project, details={"username": username})


@transaction.atomic
def set_static_admin_disabled(principal: Principal, project: Project, disabled: bool) -> None:
    principal.authorize(Resource.PROJECT, Action.UPDATE, project.id)
    if disabled:
        if not project.shared_sso_config:
            raise Conflict(
                "Attach an SSO config and check that SSO login works before disabling the static admin: "
                "otherwise nobody could log in to this project."
            )
        # Imported here: SSO configs live in the accounts app, which itself builds on projects.
        from apps.accounts.sso import configs_for_project

        known, unknown = configs_for_project(project)
        if not known:
            raise Conflict(
                f"The attached SSO config {', '.join(unknown)!s} is not configured on this control plane: "
                "nobody could log in to this project without the static admin."
            )
    project.static_admin_disabled = disabled
    project.save(update_fields=["static_admin_disabled", "updated_at"])
    audit.record(principal, "static_admin.disable" if disabled else "static_admin.enable", obj=project)


def check_static_admin_password(project: Project, username: str, password: str) -> bool:
    if project.static_admin_disabled:
        return False
    # Always run the hasher, so that a wrong username takes as long as a wrong password.
    password_ok = check_password(password, project.static_admin_password)
    return password_ok and secrets.compare_digest(username.encode(), project.static_admin_username.encode())


@transaction.atomic
def rotate_webhook_secret(principal: Principal, project: Project) -> str:
    principal.authorize(Resource.PROJECT, Action.UPDATE, project.id)
    project.git_webhook_secret = new_secret(24)
    project.save(update_fields=["git_webhook_secret", "updated_at"])
    audit.record(principal, "project.rotate_webhook_secret", obj=project)
    return project.git_webhook_secret


# --- User groups ----------------------------------------------------------------------------------------


@transaction.atomic
def add_user_group(principal: Principal, project: Project, *, sso_group: str, role: str) -> UserGroup:
    principal.authorize(Resource.PROJECT, Action.UPDATE, project.id)
    sso_group = sso_group.strip()
    if not sso_group:
        raise InvalidInput("The SSO group must not be empty.", field="sso_group")
    _check_length(sso_group, UserGroup, "sso_group", "The SSO group")
    if role not in Role.values:
        raise InvalidInput(f"Unknown role {role!r}: expected one of {', '.join(Role.values)}.", field="role")
    # MySQL compares the names without regard to case (and the unique constraint does too), SQLite
    # exactly: look the same way everywhere, and let the constraint settle a race.
    taken = Conflict(
        f"The SSO group {sso_group!r} is already mapped in this project (group names are compared without "
        "regard to case).",
        field="sso_group",
    )
    if UserGroup.objects.filter(project=project, sso_group__iexact=sso_group).exists():
        raise taken
    try:
        with transaction.atomic():
            group = UserGroup.objects.create(project=project, sso_group=sso_group, role=role)
    except IntegrityError:
        raise taken from None
    audit.record(
        principal,
        "user_group.add",
        obj=group,
        project_id=project.id,
        details={"sso_group": sso_group, "role": role},
    )
    return group


@transaction.atomic
def delete_user_group(principal: Principal, project: Project, group_id: int) -> None:
    principal.authorize(Resource.PROJECT, Action.UPDATE, project.id)
    try:
        group = UserGroup.objects.select_for_update().get(pk=group_id, project=project)
    except (UserGroup.DoesNotExist, ValueError):
        raise NotFound("User group not found.") from None
    audit.record(
        principal,
        "user_group.delete",
        obj=group,
        project_id=project.id,
        details={"sso_group": group.sso_group, "role": group.role},
    )
    group.delete()


# --- API keys -------------------------------------------------------------------------------------------


@transaction.atomic
def create_api_key(principal: Principal, project: Project, *, name: str, role: str) -> tuple[APIKey, str]:
    """Returns the key record and the key to show once, `<id>.<secret>`."""
    principal.authorize(Resource.API_KEY, Action.CREATE, project.id)
    name = name.strip()
    if not name:
        raise InvalidInput("The API key name must not be empty.", field="name")
    _check_length(name, APIKey, "name", "The API key name")
    if role not in APIKeyRole.values:
        raise InvalidInput(
            f"Unknown API key role {role!r}: expected one of {', '.join(APIKeyRole.values)}.", field="role"
        )
    key_id = secrets.token_hex(8)
    secret = new_secret(32)
    try:
        with transaction.atomic():
            api_key = APIKey.objects.create(
                id=key_id,
                project=project,
                name=name,
                role=role,
                key_hash=hash_key(secret),
                creator=principal.identity,
            )
    except IntegrityError:
        raise Conflict(f"An API key named {name!r} already exists in this project.", field="name") from None
    audit.record(
        principal, "api_key.create", obj=api_key, project_id=project.id, details={"name": name, "role": role}
    )
    return api_key, f"{key_id}.{secret}"


def _get_api_key(project: Project, key_id: str) -> APIKey:
    try:
        return APIKey.objects.select_for_update().get(pk=key_id, project=project)
    except APIKey.DoesNotExist:
        raise NotFound("API key not found.") from None


@transaction.atomic
def set_api_key_disabled(principal: Principal, project: Project, key_id: str, disabled: bool) -> APIKey:
    principal.authorize(Resource.API_KEY, Action.UPDATE, project.id)
    api_key = _get_api_key(project, key_id)
    api_key.disabled = disabled
    api_key.save(update_fields=["disabled"])
    audit.record(
        principal,
        "api_key.disable" if disabled else "api_key.enable",
        obj=api_key,
        project_id=project.id,
        details={"name": api_key.name},
    )
    return api_key


@transaction.atomic
def delete_api_key(principal: Principal, project: Project, key_id: str) -> None:
    principal.authorize(Resource.API_KEY, Action.DELETE, project.id)
    api_key = _get_api_key(project, key_id)
    audit.record(
        principal, "api_key.delete", obj=api_key, project_id=project.id, details={"name": api_key.name}
    )
    api_key.delete()


# How often last_used_at is written: a busy script must not turn every read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def authenticate_api_key(raw_key: str) -> APIKey | None:
    """The enabled key matching `<id>.<secret>`, or None. Never says which part was wrong."""
    key_id, _, secret = raw_key.strip().partition(".")
    if not key_id or not secret or len(key_id) > 32:
        return None
    api_key = APIKey.objects.select_related("project").filter(pk=key_id).first()
    if api_key is None or api_key.disabled or not key_matches(secret, api_key.key_hash):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
        APIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key
