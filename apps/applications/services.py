"""Business rules for applications: add, update, enable/disable, delete, sync."""

import uuid

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.deployments.choices import CommandType, SyncStrategy
from apps.deployments.models import Command
from apps.pipeds.models import Piped
from apps.projects import audit
from apps.projects.models import Project
from apps.projects.principal import Principal
from apps.projects.roles import Action, Resource

from .choices import DEFAULT_CONFIG_FILENAME, SUPPORTED_KINDS, ApplicationKind
from .models import Application, ApplicationLiveState, validate_app_path, validate_config_filename

MAX_LABELS = 50


def get_application(principal: Principal, app_id, action: str = Action.GET) -> Application:
    """An application of the caller's project that is not deleted (404 otherwise), checked for `action`."""
    try:
        app = Application.objects.select_related("piped").get(pk=uuid.UUID(str(app_id)), deleted=False)
    except (Application.DoesNotExist, ValueError):
        raise NotFound("Application not found.") from None
    principal.authorize(Resource.APPLICATION, action, app.project_id)
    return app


def clean_labels(labels) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise InvalidInput("labels must be an object of string keys and values.", field="labels")
    if len(labels) > MAX_LABELS:
        raise InvalidInput(f"At most {MAX_LABELS} labels.", field="labels")
    cleaned = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not key.strip() or not isinstance(value, str):
            raise InvalidInput(
                f"Label {key!r}: keys and values must be strings, keys non-empty.", field="labels"
            )
        cleaned[key.strip()] = value
    return cleaned


def normalize_path(path: str) -> str:
    """`./svc/api/` and `svc/api` are the same directory."""
    path = (path or "").strip()
    try:
        validate_app_path(path)
    except ValidationError as exc:
        raise InvalidInput(f"path {path!r}: {exc.messages[0]}", field="path") from exc
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return "/".join(parts) or "."


@transaction.atomic
def add_application(
    principal: Principal,
    project: Project,
    *,
    name: str,
    piped_id,
    kind: str = ApplicationKind.ECS,
    platform_provider: str,
    repo_id: str,
    path: str,
    config_filename: str = DEFAULT_CONFIG_FILENAME,
    description: str = "",
    labels: dict | None = None,
) -> Application:
    principal.authorize(Resource.APPLICATION, Action.CREATE, project.id)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("The application name must be 1 to 100 characters.", field="name")
    if kind not in ApplicationKind.values:
        raise InvalidInput(
            f"Unknown kind {kind!r}: expected one of {', '.join(ApplicationKind.values)}.", field="kind"
        )
    if kind not in SUPPORTED_KINDS:
        raise InvalidInput(f"Kind {kind} is not deployed by PipePortal yet; use ECS.", field="kind")
    try:
        piped = Piped.objects.get(pk=uuid.UUID(str(piped_id)), project=project)
    except (Piped.DoesNotExist, ValueError):
        raise InvalidInput("No such piped in this project.", field="piped_id") from None
    if piped.disabled:
        raise InvalidInput(f"Piped {piped.name!r} is disabled.", field="piped_id")
    if not (repo_id or "").strip():
        raise InvalidInput("The repository id must not be empty.", field="repo_id")
    if not (platform_provider or "").strip():
        raise InvalidInput("The platform provider must not be empty.", field="platform_provider")
    path = normalize_path(path)
    config_filename = (config_filename or DEFAULT_CONFIG_FILENAME).strip()
    try:
        validate_config_filename(config_filename)
    except ValidationError as exc:
        raise InvalidInput(
            f"config_filename {config_filename!r}: {exc.messages[0]}", field="config_filename"
        ) from exc
    duplicate = Application.objects.filter(
        project=project,
        piped=piped,
        repo_id=repo_id,
        path=path,
        config_filename=config_filename,
        deleted=False,
    )
    if duplicate.exists():
        raise Conflict("An application with this piped, repository, path and config file already exists.")
    app = Application.objects.create(
        project=project,
        piped=piped,
        name=name,
        kind=kind,
        platform_provider=platform_provider.strip(),
        repo_id=repo_id.strip(),
        path=path,
        config_filename=config_filename,
        description=description or "",
        labels=clean_labels(labels),
    )
    audit.record(
        principal,
        "application.add",
        obj=app,
        project_id=project.id,
        details={"name": name, "repo_id": repo_id, "path": path},
    )
    return app


@transaction.atomic
def update_application(
    principal: Principal,
    app: Application,
    *,
    name: str | None = None,
    piped_id=None,
    platform_provider: str | None = None,
    description: str | None = None,
    labels: dict | None = None,
    **immutable,
) -> Application:
    principal.authorize(Resource.APPLICATION, Action.UPDATE, app.project_id)
    for field, value in immutable.items():
        if field in Application.IMMUTABLE_FIELDS and value is not None and value != getattr(app, field):
            raise InvalidInput(f"{field} cannot be changed after the application is created.", field=field)
    changes: dict = {}
    if name is not None:
        if not name.strip() or len(name.strip()) > 100:
            raise InvalidInput("The application name must be 1 to 100 characters.", field="name")
        changes["name"] = name.strip()
    if piped_id is not None and str(piped_id) != str(app.piped_id):
        try:
            piped = Piped.objects.get(pk=uuid.UUID(str(piped_id)), project_id=app.project_id)
        except (Piped.DoesNotExist, ValueError):
            raise InvalidInput("No such piped in this project.", field="piped_id") from None
        if piped.disabled:
            raise InvalidInput(f"Piped {piped.name!r} is disabled.", field="piped_id")
        changes["piped"] = piped
    if platform_provider is not None:
        if not platform_provider.strip():
            raise InvalidInput("The platform provider must not be empty.", field="platform_provider")
        changes["platform_provider"] = platform_provider.strip()
    if description is not None:
        changes["description"] = description
    if labels is not None:
        changes["labels"] = clean_labels(labels)
    for field, value in changes.items():
        setattr(app, field, value)
    app.save()
    audit.record(
        principal,
        "application.update",
        obj=app,
        details={k: (str(v.pk) if k == "piped" else v) for k, v in changes.items()},
    )
    return app


@transaction.atomic
def set_application_disabled(principal: Principal, app: Application, disabled: bool) -> Application:
    principal.authorize(Resource.APPLICATION, Action.UPDATE, app.project_id)
    app.disabled = disabled
    app.save(update_fields=["disabled", "updated_at"])
    audit.record(principal, "application.disable" if disabled else "application.enable", obj=app)
    return app


@transaction.atomic
def delete_application(principal: Principal, app: Application) -> None:
    """Soft delete: the deployment history stays; the piped stops watching the application."""
    principal.authorize(Resource.APPLICATION, Action.DELETE, app.project_id)
    app.deleted = True
    app.deleted_at = timezone.now()
    app.save(update_fields=["deleted", "deleted_at", "updated_at"])
    audit.record(principal, "application.delete", obj=app, details={"name": app.name})


@transaction.atomic
def sync_application(principal: Principal, app: Application, strategy: str = SyncStrategy.AUTO) -> Command:
    """Ask the piped to deploy the application's Git head now."""
    principal.authorize(Resource.APPLICATION, Action.UPDATE, app.project_id)
    if strategy not in SyncStrategy.values:
        raise InvalidInput(
            f"Unknown sync strategy {strategy!r}: expected one of {', '.join(SyncStrategy.values)}.",
            field="sync_strategy",
        )
    if app.disabled:
        raise Conflict("The application is disabled: enable it before syncing.")
    command = Command.objects.create(
        project_id=app.project_id,
        piped_id=app.piped_id,
        application=app,
        type=CommandType.SYNC_APPLICATION,
        commander=principal.identity,
        payload={"sync_strategy": strategy},
    )
    audit.record(
        principal,
        "application.sync",
        obj=app,
        details={"sync_strategy": strategy, "command_id": str(command.id)},
    )
    return command


def get_live_state(principal: Principal, app_id) -> tuple[Application, ApplicationLiveState | None]:
    """An application of the caller's project and its live state row (None before the piped's first report)."""
    app = get_application(principal, app_id)
    return app, ApplicationLiveState.objects.filter(application=app).first()


def live_state_snapshot(row: ApplicationLiveState | None) -> dict:
    """The snapshot the piped last reported (service, task sets, tasks, traffic), from the row or the
    filestore; `{"errors": [...]}` when the filestore cannot give it back."""
    if row is None:
        return {}
    if row.snapshot_key:
        from apps.ops import filestore

        try:
            return filestore.load_json(row.snapshot_key, default={}) or {}
        except (filestore.FilestoreError, OSError, ValueError):
            return {"errors": ["The live state snapshot could not be read from the filestore."]}
    return row.snapshot or {}
