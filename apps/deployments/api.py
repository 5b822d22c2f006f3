"""Public API v1: deployments with their stages, cancel/approve/skip, stage logs, and commands."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from django.db.models import Q
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from pydantic import BaseModel, ConfigDict

from apps.core.errors import InvalidInput, NotFound
from apps.core.labels import filter_labels
from apps.projects.roles import Action, Resource
from pipeportal.api_support import (
    LABELS_QUERY,
    LIMIT_QUERY,
    CommandIdOut,
    ErrorOut,
    cursor_datetime,
    cursor_uuid,
    decode_cursor,
    keyset_after,
    page,
    parse_labels,
    principal_of,
)

from . import services
from .choices import DeploymentStatus
from .models import Command, Deployment, Stage, StageLogBlock

router = Router(tags=["deployments"])
commands_router = Router(tags=["commands"])

DeploymentStatusName = Literal[tuple(DeploymentStatus.values)]  # type: ignore[valid-type]
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}


class CommitOut(BaseModel):
    hash: str
    message: str
    author: str
    branch: str
    url: str
    created_at: datetime | None


class TriggerOut(BaseModel):
    commit: CommitOut
    commander: str
    timestamp: datetime | None
    sync_strategy: str
    strategy_summary: str


class StageOut(BaseModel):
    id: str = Field(description="PipeCD's stage id: the config's `id`, else `stage-<n>`.")
    name: str
    desc: str
    index: int
    requires: list[Any]
    visible: bool
    rollback: bool
    status: str
    status_reason: str
    metadata: dict[str, Any]
    retried_count: int
    approvers: list[str] = Field(description="Who may approve (empty: any Editor-level caller).")
    min_approver_num: int
    approved_by: list[str]
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class DeploymentOut(BaseModel):
    id: str
    project_id: str
    application_id: str
    application_name: str
    piped_id: str
    kind: str
    platform_provider: str
    labels: dict[str, str]
    status: str
    status_reason: str
    trigger: TriggerOut
    summary: str
    versions: list[Any]
    running_commit_hash: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    stages: list[StageOut]


class DeploymentPage(BaseModel):
    items: list[DeploymentOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null at the end.")


class CancelIn(Schema):
    model_config = ConfigDict(extra="forbid")

    force_rollback: bool = False
    force_no_rollback: bool = False


class LogBlockOut(BaseModel):
    index: int
    retried_count: int
    severity: str
    log: str
    created_at: datetime


class LogPage(BaseModel):
    items: list[LogBlockOut]
    next_cursor: str | None = None


class CommandOut(BaseModel):
    id: str
    type: str
    status: str
    piped_id: str
    application_id: str | None
    deployment_id: str | None
    stage_id: str
    commander: str
    result: dict[str, Any]
    created_at: datetime
    handled_at: datetime | None


STAGE_COLUMNS = (
    "deployment_id",
    "stage_id",
    "name",
    "desc",
    "index",
    "requires",
    "visible",
    "rollback",
    "status",
    "status_reason",
    "metadata",
    "retried_count",
    "authorized_approvers",
    "min_approver_num",
    "created_at",
    "started_at",
    "completed_at",
)


def stage_out(stage: dict) -> dict:
    """A stage row (from `.values()`: no model instance per stage, which is what a page of 50 costs)."""
    metadata = stage["metadata"] or {}
    return {
        "id": stage["stage_id"],
        "name": stage["name"],
        "desc": stage["desc"],
        "index": stage["index"],
        "requires": stage["requires"] or [],
        "visible": stage["visible"],
        "rollback": stage["rollback"],
        "status": stage["status"],
        "status_reason": stage["status_reason"],
        "metadata": metadata,
        "retried_count": stage["retried_count"],
        "approvers": list(stage["authorized_approvers"] or []),
        "min_approver_num": stage["min_approver_num"],
        "approved_by": list(metadata.get("approved_by", [])),
        "created_at": stage["created_at"],
        "started_at": stage["started_at"],
        "completed_at": stage["completed_at"],
    }


def stages_of(deployment_ids: list) -> dict:
    """Every stage of these deployments in one query, by deployment id, in pipeline order."""
    by_deployment: dict = {d: [] for d in deployment_ids}
    rows = Stage.objects.filter(deployment_id__in=deployment_ids).order_by("index").values(*STAGE_COLUMNS)
    for row in rows:
        by_deployment[row["deployment_id"]].append(stage_out(row))
    return by_deployment


def stage_of(deployment: Deployment, stage_id: str) -> Stage:
    """The stage named exactly `stage_id`.

    MySQL compares stage ids without regard to case or trailing spaces: `APPROVAL` would find `approval`,
    and the command recorded for it would name a stage the piped does not know.
    """
    stage = services.get_stage(deployment, stage_id)
    if stage.stage_id != stage_id:
        raise NotFound(f"Stage {stage_id!r} not found in this deployment.")
    return stage


def deployment_out(deployment: Deployment, stages: list[dict]) -> dict:
    return {
        "id": str(deployment.id),
        "project_id": deployment.project_id,
        "application_id": str(deployment.application_id),
        "application_name": deployment.application_name,
        "piped_id": str(deployment.piped_id),
        "kind": deployment.kind,
        "platform_provider": deployment.platform_provider,
        "labels": deployment.labels or {},
        "status": deployment.status,
        "status_reason": deployment.status_reason,
        "trigger": {
            "commit": {
                "hash": deployment.commit_hash,
                "message": deployment.commit_message,
                "author": deployment.commit_author,
                "branch": deployment.commit_branch,
                "url": deployment.commit_url,
                "created_at": deployment.commit_timestamp,
            },
            "commander": deployment.commander,
            "timestamp": deployment.triggered_at,
            "sync_strategy": deployment.sync_strategy,
            "strategy_summary": deployment.strategy_summary,
        },
        "summary": deployment.summary,
        "versions": deployment.versions or [],
        "running_commit_hash": deployment.running_commit_hash,
        "created_at": deployment.created_at,
        "updated_at": deployment.updated_at,
        "completed_at": deployment.completed_at,
        "stages": stages,
    }


def command_out(command: Command) -> dict:
    return {
        "id": str(command.id),
        "type": command.type,
        "status": command.status,
        "piped_id": str(command.piped_id),
        "application_id": str(command.application_id) if command.application_id else None,
        "deployment_id": str(command.deployment_id) if command.deployment_id else None,
        "stage_id": command.stage_id,
        "commander": command.commander,
        "result": command.result or {},
        "created_at": command.created_at,
        "handled_at": command.handled_at,
    }


@router.get("", response={200: DeploymentPage, **ERRORS}, summary="List deployments")
def list_deployments(
    request: HttpRequest,
    application_id: UUID | None = None,
    status: DeploymentStatusName | None = None,
    labels: list[str] | None = LABELS_QUERY,
    cursor: str | None = None,
    limit: int = LIMIT_QUERY,
):
    """Deployments of the key's project, newest first, each with its stages."""
    principal = principal_of(request)
    principal.authorize(Resource.DEPLOYMENT, Action.LIST)
    wanted_labels = parse_labels(labels)
    after = decode_cursor(cursor, 2)
    queryset = Deployment.objects.filter(project_id=principal.project_id)
    if application_id:
        queryset = queryset.filter(application_id=application_id)
    if status:
        queryset = queryset.filter(status=status)
    queryset = filter_labels(queryset, wanted_labels)
    if after:
        # Keyset on (created_at, id): a deep page costs what the first one does, unlike OFFSET.
        position = (cursor_datetime(after[0]), cursor_uuid(after[1]))
        queryset = queryset.filter(keyset_after(("created_at", "id"), position, True))
    # Two steps on purpose: the page's keys come from the index alone (it covers project, status,
    # created_at and id), then the rows by primary key. Asked for whole rows at once, MariaDB walks the
    # index from the newest entry down to the cursor: 0.3 s at 900,000 rows deep instead of 1 ms.
    keys = list(queryset.order_by("-created_at", "-id").values_list("created_at", "id")[: limit + 1])
    keys, next_cursor = page(keys, limit, lambda key: list(key))
    ids = [pk for _, pk in keys]
    by_id = Deployment.objects.defer("metadata").in_bulk(ids)
    stages = stages_of(ids)
    items = [deployment_out(by_id[pk], stages[pk]) for pk in ids if pk in by_id]  # deleted in between: gone
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{deployment_id}", response={200: DeploymentOut, **ERRORS}, summary="Get a deployment")
def get_deployment(request: HttpRequest, deployment_id: str):
    deployment = services.get_deployment(principal_of(request), deployment_id)
    return deployment_out(deployment, stages_of([deployment.id])[deployment.id])


@router.post("/{deployment_id}/cancel", response={200: CommandIdOut, **ERRORS}, summary="Cancel")
def cancel_deployment(request: HttpRequest, deployment_id: str, payload: CancelIn | None = None):
    """Ask the piped to cancel; `force_rollback` / `force_no_rollback` override the pipeline's autoRollback."""
    principal = principal_of(request)
    deployment = services.get_deployment(principal, deployment_id, Action.UPDATE)
    payload = payload or CancelIn()
    command = services.cancel_deployment(
        principal,
        deployment,
        force_rollback=payload.force_rollback,
        force_no_rollback=payload.force_no_rollback,
    )
    return {"command_id": str(command.id)}


@router.post(
    "/{deployment_id}/stages/{path:stage_id}/approve",
    response={200: CommandIdOut, **ERRORS},
    summary="Approve a WAIT_APPROVAL stage",
)
def approve_stage(request: HttpRequest, deployment_id: str, stage_id: str):
    """The key approves as `apikey:<name>`; 403 when the stage lists approvers and that is not one."""
    principal = principal_of(request)
    deployment = services.get_deployment(principal, deployment_id, Action.UPDATE)
    command = services.approve_stage(principal, deployment, stage_of(deployment, stage_id).stage_id)
    return {"command_id": str(command.id)}


@router.post(
    "/{deployment_id}/stages/{path:stage_id}/skip",
    response={200: CommandIdOut, **ERRORS},
    summary="Skip a running WAIT or ANALYSIS stage",
)
def skip_stage(request: HttpRequest, deployment_id: str, stage_id: str):
    principal = principal_of(request)
    deployment = services.get_deployment(principal, deployment_id, Action.UPDATE)
    command = services.skip_stage(principal, deployment, stage_of(deployment, stage_id).stage_id)
    return {"command_id": str(command.id)}


@router.get(
    "/{deployment_id}/stages/{path:stage_id}/logs",
    response={200: LogPage, **ERRORS},
    summary="A stage's log blocks",
)
def stage_logs(
    request: HttpRequest,
    deployment_id: str,
    stage_id: str,
    retried_count: int | None = Query(None, ge=0, description="Which run of the stage; default the latest."),
    after_index: int | None = Query(
        None, ge=0, description="Only blocks after this index, in one run (to follow a stage)."
    ),
    after: str | None = Query(
        None,
        max_length=40,
        description="`<retried_count>.<index>` of the last block seen: the blocks after it, across runs (a "
        "stage taken over after a crash runs again under the next retried_count). `0.-1` reads every run.",
    ),
    cursor: str | None = None,
    limit: int = LIMIT_QUERY,
):
    """Log blocks in order. To follow a running stage, poll with `after` = the last block's
    `<retried_count>.<index>` (or, within one run, `after_index` = the last index seen)."""
    deployment = services.get_deployment(principal_of(request), deployment_id)
    stage = stage_of(deployment, stage_id)
    if after is not None:
        if retried_count is not None or after_index is not None:
            raise InvalidInput("after cannot be combined with retried_count or after_index.", field="after")
        position = _log_position(after)
        resumed = decode_cursor(cursor, 2)
        if resumed:
            position = (_cursor_int(resumed[0]), _cursor_int(resumed[1]))
        run, index = position
        queryset = StageLogBlock.objects.filter(stage=stage).filter(
            Q(retried_count__gt=run) | Q(retried_count=run, index__gt=index)
        )
        rows = list(queryset.order_by("retried_count", "index")[: limit + 1])
        rows, next_cursor = page(rows, limit, lambda b: [b.retried_count, b.index])
    else:
        run = stage.retried_count if retried_count is None else retried_count
        resumed = decode_cursor(cursor, 1)
        queryset = StageLogBlock.objects.filter(stage=stage, retried_count=run)
        if after_index is not None:
            queryset = queryset.filter(index__gt=after_index)
        if resumed:
            queryset = queryset.filter(index__gt=_cursor_int(resumed[0]))
        rows = list(queryset.order_by("index")[: limit + 1])
        rows, next_cursor = page(rows, limit, lambda b: [b.index])
    items = [
        {
            "index": b.index,
            "retried_count": b.retried_count,
            "severity": b.severity,
            "log": b.log,
            "created_at": b.created_at,
        }
        for b in rows
    ]
    return {"items": items, "next_cursor": next_cursor}


def _log_position(text: str) -> tuple[int, int]:
    """`after=<retried_count>.<index>` as two numbers; index -1 means before the run's first block."""
    run, dot, index = text.strip().partition(".")
    try:
        position = (int(run), int(index))
    except ValueError:
        position = None
    if not dot or position is None or position[0] < 0 or position[1] < -1:
        raise InvalidInput(
            "after is <retried_count>.<index> of the last block seen, such as 0.41 (or 0.-1 for every run).",
            field="after",
        )
    return position


def _cursor_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput("cursor is not one this API handed out.", field="cursor") from None


@commands_router.get("/{command_id}", response={200: CommandOut, **ERRORS}, summary="Get a command")
def get_command(request: HttpRequest, command_id: str):
    """Whether the piped has handled a sync, cancel, approve or skip yet."""
    return command_out(services.get_command(principal_of(request), command_id))
