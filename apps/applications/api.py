"""Public API v1: applications (list, get, add, update, enable, disable, delete, sync)."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from pydantic import BaseModel, ConfigDict

from apps.core.labels import filter_labels
from apps.deployments.choices import SyncStrategy
from apps.projects.roles import Action, Resource
from apps.projects.services import get_project
from pipeportal.api_support import (
    LABELS_QUERY,
    LIMIT_QUERY,
    CommandIdOut,
    ErrorOut,
    cursor_uuid,
    decode_cursor,
    keyset_after,
    page,
    parse_labels,
    principal_of,
)

from . import services
from .choices import DEFAULT_CONFIG_FILENAME, ApplicationKind, SyncStatus
from .models import Application

router = Router(tags=["applications"])

Kind = Literal[tuple(ApplicationKind.values)]  # type: ignore[valid-type]
SyncStatusName = Literal[tuple(SyncStatus.values)]  # type: ignore[valid-type]
SyncStrategyName = Literal[tuple(SyncStrategy.values)]  # type: ignore[valid-type]
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}


class StrictSchema(Schema):
    """Input: a misspelt key is an error naming it, not a silently ignored field."""

    model_config = ConfigDict(extra="forbid")


# The columns' lengths (MySQL refuses longer text); name and labels are checked by the service.
PLATFORM_PROVIDER_LENGTH = Application._meta.get_field("platform_provider").max_length
REPO_ID_LENGTH = Application._meta.get_field("repo_id").max_length
PATH_LENGTH = Application._meta.get_field("path").max_length
CONFIG_FILENAME_LENGTH = Application._meta.get_field("config_filename").max_length


class RepoIn(StrictSchema):
    id: str = Field(max_length=REPO_ID_LENGTH)
    # Accepted for PipeCD compatibility; the piped's config says where the repository lives.
    remote: str = ""
    branch: str = ""


class GitPathIn(StrictSchema):
    repo: RepoIn
    path: str = Field(max_length=PATH_LENGTH)
    config_filename: str = Field(DEFAULT_CONFIG_FILENAME, max_length=CONFIG_FILENAME_LENGTH)
    url: str = ""


class ApplicationIn(StrictSchema):
    """PipeCD's AddApplication request."""

    name: str
    piped_id: str
    kind: Kind = ApplicationKind.ECS.value
    platform_provider: str = Field(max_length=PLATFORM_PROVIDER_LENGTH)
    git_path: GitPathIn
    description: str = ""
    labels: dict[str, str] | None = None


class ApplicationPatch(StrictSchema):
    """Fields left out stay as they are. kind and git_path cannot change: they are refused if different."""

    name: str | None = None
    piped_id: str | None = None
    platform_provider: str | None = Field(None, max_length=PLATFORM_PROVIDER_LENGTH)
    description: str | None = None
    labels: dict[str, str] | None = None
    kind: Kind | None = None
    git_path: GitPathIn | None = None


class SyncIn(StrictSchema):
    sync_strategy: SyncStrategyName = SyncStrategy.AUTO.value


class ApplicationIdOut(BaseModel):
    application_id: str


class RepoOut(BaseModel):
    id: str


class GitPathOut(BaseModel):
    repo: RepoOut
    path: str
    config_filename: str


class SyncStateOut(BaseModel):
    status: str
    short_reason: str
    reason: str
    timestamp: datetime | None


class ApplicationOut(BaseModel):
    id: str
    name: str
    project_id: str
    piped_id: str
    kind: str
    platform_provider: str
    git_path: GitPathOut
    description: str
    labels: dict[str, str]
    disabled: bool
    deploying: bool
    sync_state: SyncStateOut
    most_recent_deployment_id: str | None
    most_recent_successful_deployment_id: str | None
    created_at: datetime
    updated_at: datetime


class DriftOut(BaseModel):
    status: str = Field(description="SYNCED or OUT_OF_SYNC; empty before the first check.")
    summary: str
    diff: str = Field(description="A unified diff, `--- live` / `+++ Git`; empty when SYNCED.")
    commit: str = Field(description="The Git commit the live resources were compared with.")
    checked_at: datetime | None
    changed_at: datetime | None = Field(description="When the result last changed.")


class LiveStateOut(BaseModel):
    application_id: str
    collected_at: datetime | None = Field(description="When the piped read it; null before its first report.")
    updated_at: datetime | None
    snapshot: dict = Field(
        description="What runs, as the piped saw it: the service, its task sets (status, scale, target "
        "group, task definition, images), their tasks with health, and the traffic split per target group."
    )
    drift: DriftOut


class ApplicationPage(BaseModel):
    items: list[ApplicationOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null at the end.")


def application_out(app: Application) -> dict:
    return {
        "id": str(app.id),
        "name": app.name,
        "project_id": app.project_id,
        "piped_id": str(app.piped_id),
        "kind": app.kind,
        "platform_provider": app.platform_provider,
        "git_path": {
            "repo": {"id": app.repo_id},
            "path": app.path,
            "config_filename": app.config_filename,
        },
        "description": app.description,
        "labels": app.labels or {},
        "disabled": app.disabled,
        "deploying": app.deploying,
        "sync_state": {
            "status": app.sync_status,
            "short_reason": app.sync_short_reason,
            "reason": app.sync_reason,
            "timestamp": app.sync_updated_at,
        },
        "most_recent_deployment_id": str(app.most_recent_deployment_id)
        if app.most_recent_deployment_id
        else None,
        "most_recent_successful_deployment_id": str(app.most_recent_successful_deployment_id)
        if app.most_recent_successful_deployment_id
        else None,
        "created_at": app.created_at,
        "updated_at": app.updated_at,
    }


@router.get("", response={200: ApplicationPage, **ERRORS}, summary="List applications")
def list_applications(
    request: HttpRequest,
    kind: Kind | None = None,
    status: SyncStatusName | None = None,
    labels: list[str] | None = LABELS_QUERY,
    name: str | None = None,
    piped_id: UUID | None = None,
    disabled: bool | None = None,
    cursor: str | None = None,
    limit: int = LIMIT_QUERY,
):
    """Applications of the key's project (deleted ones left out), ordered by name."""
    principal = principal_of(request)
    principal.authorize(Resource.APPLICATION, Action.LIST)
    wanted_labels = parse_labels(labels)
    after = decode_cursor(cursor, 2)
    queryset = Application.objects.filter(project_id=principal.project_id, deleted=False)
    if kind:
        queryset = queryset.filter(kind=kind)
    if status:
        queryset = queryset.filter(sync_status=status)
    if name:
        queryset = queryset.filter(name=name)
    if piped_id:
        queryset = queryset.filter(piped_id=piped_id)
    if disabled is not None:
        queryset = queryset.filter(disabled=disabled)
    queryset = filter_labels(queryset, wanted_labels)
    if after:
        queryset = queryset.filter(keyset_after(("name", "id"), (after[0], cursor_uuid(after[1])), False))
    rows = list(queryset.order_by("name", "id")[: limit + 1])
    rows, next_cursor = page(rows, limit, lambda a: [a.name, a.id])
    return {"items": [application_out(a) for a in rows], "next_cursor": next_cursor}


@router.post("", response={201: ApplicationIdOut, **ERRORS}, summary="Add an application")
def add_application(request: HttpRequest, payload: ApplicationIn):
    """PipeCD's AddApplication: answers the new application's id."""
    principal = principal_of(request)
    app = services.add_application(
        principal,
        get_project(principal.project_id),
        name=payload.name,
        piped_id=payload.piped_id,
        kind=payload.kind,
        platform_provider=payload.platform_provider,
        repo_id=payload.git_path.repo.id,
        path=payload.git_path.path,
        config_filename=payload.git_path.config_filename,
        description=payload.description,
        labels=payload.labels,
    )
    return Status(201, {"application_id": str(app.id)})


@router.get("/{application_id}", response={200: ApplicationOut, **ERRORS}, summary="Get an application")
def get_application(request: HttpRequest, application_id: str):
    return application_out(services.get_application(principal_of(request), application_id))


@router.get(
    "/{application_id}/live-state", response={200: LiveStateOut, **ERRORS}, summary="Live state and drift"
)
def get_live_state(request: HttpRequest, application_id: str):
    """What the piped last saw running for the application (every 15 s by default) and its last drift check
    against Git. Before the piped's first report, `collected_at` is null and the snapshot empty."""
    app, row = services.get_live_state(principal_of(request), application_id)
    return {
        "application_id": str(app.id),
        "collected_at": row.collected_at if row else None,
        "updated_at": row.updated_at if row else None,
        "snapshot": services.live_state_snapshot(row),
        "drift": {
            "status": row.drift_status if row else "",
            "summary": row.drift_summary if row else "",
            "diff": row.drift_diff if row else "",
            "commit": row.drift_commit if row else "",
            "checked_at": row.drift_checked_at if row else None,
            "changed_at": row.drift_changed_at if row else None,
        },
    }


@router.patch("/{application_id}", response={200: ApplicationOut, **ERRORS}, summary="Update an application")
def update_application(request: HttpRequest, application_id: str, payload: ApplicationPatch):
    principal = principal_of(request)
    app = services.get_application(principal, application_id, Action.UPDATE)
    immutable = {"kind": payload.kind}
    if payload.git_path is not None:
        immutable.update(
            repo_id=payload.git_path.repo.id,
            path=services.normalize_path(payload.git_path.path),
            config_filename=payload.git_path.config_filename,
        )
    app = services.update_application(
        principal,
        app,
        name=payload.name,
        piped_id=payload.piped_id,
        platform_provider=payload.platform_provider,
        description=payload.description,
        labels=payload.labels,
        **immutable,
    )
    return application_out(app)


@router.post("/{application_id}/enable", response={200: ApplicationOut, **ERRORS}, summary="Enable")
def enable_application(request: HttpRequest, application_id: str):
    principal = principal_of(request)
    app = services.get_application(principal, application_id, Action.UPDATE)
    return application_out(services.set_application_disabled(principal, app, False))


@router.post("/{application_id}/disable", response={200: ApplicationOut, **ERRORS}, summary="Disable")
def disable_application(request: HttpRequest, application_id: str):
    principal = principal_of(request)
    app = services.get_application(principal, application_id, Action.UPDATE)
    return application_out(services.set_application_disabled(principal, app, True))


@router.delete("/{application_id}", response={204: None, **ERRORS}, summary="Delete an application")
def delete_application(request: HttpRequest, application_id: str):
    """Soft delete: the deployment history stays."""
    principal = principal_of(request)
    app = services.get_application(principal, application_id, Action.DELETE)
    services.delete_application(principal, app)
    return Status(204, None)


@router.post("/{application_id}/sync", response={200: CommandIdOut, **ERRORS}, summary="Sync now")
def sync_application(request: HttpRequest, application_id: str, payload: SyncIn | None = None):
    """Ask the piped to deploy the application's Git head; follow the command with GET /commands/{id}."""
    principal = principal_of(request)
    app = services.get_application(principal, application_id, Action.UPDATE)
    strategy = payload.sync_strategy if payload else SyncStrategy.AUTO
    command = services.sync_application(principal, app, strategy)
    return {"command_id": str(command.id)}
