"""The piped API (`/api/piped/v1/`): what a piped calls, authenticated with its PIPED-TOKEN.

Every call carries `Authorization: PIPED-TOKEN <projectID>,<pipedID>,<pipedKey>` (the decoded key). A wrong
key, an unknown or a disabled piped all get the same 401 with no detail; another piped's application,
deployment, stage or command is a 404. Endpoints are thin: they parse, call `piped_services`, and answer
JSON. The calls follow PipeCD's PipedService; docs/piped.md lists them with their shapes.
"""

import json
import math
import re
from datetime import datetime
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import NinjaAPI, Schema
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser
from ninja.security.apikey import APIKeyHeader
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from apps.core.errors import DomainError, InvalidInput
from apps.core.times import storable
from apps.deployments.choices import DEPLOYMENT_TERMINAL, SyncStrategy
from pipeportal.api_support import install_busy_handler

from . import piped_services as svc
from .services import authenticate_piped

SCHEME = "PIPED-TOKEN"


class PipedTokenAuth(APIKeyHeader):
    """`Authorization: PIPED-TOKEN <projectID>,<pipedID>,<pipedKey>`; any failure is the same 401."""

    param_name = "Authorization"

    def authenticate(self, request: HttpRequest, key: str | None):
        scheme, _, raw = (key or "").strip().partition(" ")
        if scheme.upper() != SCHEME:
            return None
        parts = raw.strip().split(",", 2)
        if len(parts) != 3:
            return None
        project_id, piped_id, piped_key = (p.strip() for p in parts)
        return authenticate_piped(project_id, piped_id, piped_key)


# json.loads joins valid surrogate pairs into one character, so any surrogate left is a lone one.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotFinite:
    """Where json.loads read NaN, Infinity or a number too large for a float (`1e400`)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


class _NotFiniteAt(ValueError):
    def __init__(self, text: str):
        super().__init__(text)
        self.text = text
        self.path: list = []


def _float(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text)


def _clean_report(data: Any) -> Any:
    """Strings with lone surrogates (`"\\ud800"`, valid JSON but not storable text) get U+FFFD instead; a
    NaN or an infinite number raises _NotFiniteAt with its path (no column or JSON field can keep it)."""
    if isinstance(data, str):
        return _LONE_SURROGATE.sub("\ufffd", data)
    if isinstance(data, _NotFinite):
        raise _NotFiniteAt(data.text)
    if isinstance(data, dict):
        cleaned = {}
        for key, value in data.items():
            try:
                cleaned[_clean_report(key)] = _clean_report(value)
            except _NotFiniteAt as exc:
                exc.path.insert(0, key)
                raise
        return cleaned
    if isinstance(data, list):
        items = []
        for index, value in enumerate(data):
            try:
                items.append(_clean_report(value))
            except _NotFiniteAt as exc:
                exc.path.insert(0, index)
                raise
        return items
    return data


class ReportParser(Parser):
    """Reports carry text from Git, AWS and scripts: an odd character is replaced, never a 500 that the
    piped would retry forever; a number no column can hold (NaN, Infinity, 1e400) is a 400 naming its field."""

    def parse_body(self, request: HttpRequest) -> Any:
        try:
            return _clean_report(json.loads(request.body, parse_constant=_NotFinite, parse_float=_float))
        except _NotFiniteAt as exc:
            field = ".".join(str(p) for p in exc.path) or None
            raise InvalidInput(
                f"{field or 'The request body'}: {exc.text} is not a finite number.", field=field
            ) from None


api = NinjaAPI(
    title="PipePortal piped API",
    version="1",
    urls_namespace="api-piped-v1",
    docs_url=None,
    auth=PipedTokenAuth(),
    parser=ReportParser(),
)


install_busy_handler(api)


@api.exception_handler(DomainError)
def _domain_error(request, exc: DomainError):
    return api.create_response(request, {"detail": exc.message, "field": exc.field}, status=exc.status_code)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    # ninja turns any parser failure into "Cannot parse request body"; a refusal of ours says more.
    cause = exc.__cause__
    if isinstance(cause, DomainError):
        return _domain_error(request, cause)
    return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)


@api.exception_handler(ValidationError)
def _validation_error(request, exc: ValidationError):
    first = exc.errors[0] if exc.errors else {}
    loc = ".".join(str(p) for p in first.get("loc", ())[2:]) or None
    return api.create_response(
        request, {"detail": f"{loc or 'body'}: {first.get('msg', 'invalid input')}", "field": loc}, status=400
    )


# --- Serialisation --------------------------------------------------------------------------------------


def _deployment_ref(deployment) -> dict | None:
    if deployment is None:
        return None
    return {
        "id": str(deployment.id),
        "status": deployment.status,
        "commit_hash": deployment.commit_hash,
        "trigger_kind": deployment.trigger_kind,
        "versions": deployment.versions,
        "created_at": deployment.created_at,
        "completed_at": deployment.completed_at,
    }


def application_out(app) -> dict:
    return {
        "id": str(app.id),
        "name": app.name,
        "kind": app.kind,
        "platform_provider": app.platform_provider,
        "repo_id": app.repo_id,
        "path": app.path,
        "config_filename": app.config_filename,
        "labels": app.labels,
        "description": app.description,
        "sync_status": app.sync_status,
        "sync_short_reason": app.sync_short_reason,
        "deploying": app.deploying,
        "most_recent_deployment": _deployment_ref(app.most_recent_deployment),
        "most_recent_successful_deployment": _deployment_ref(app.most_recent_successful_deployment),
        "created_at": app.created_at,
        "updated_at": app.updated_at,
    }


def stage_out(stage, next_log_index: int | None = None) -> dict:
    out = {
        "id": stage.stage_id,
        "name": stage.name,
        "desc": stage.desc,
        "index": stage.index,
        "requires": stage.requires,
        "visible": stage.visible,
        "rollback": stage.rollback,
        "status": stage.status,
        "status_reason": stage.status_reason,
        "metadata": stage.metadata,
        "retried_count": stage.retried_count,
        "authorized_approvers": stage.authorized_approvers,
        "min_approver_num": stage.min_approver_num,
        "claimed_by": stage.claimed_by,
        "claim_expires_at": stage.claim_expires_at,
        "next_check_at": stage.next_check_at,
        "started_at": stage.started_at,
        "completed_at": stage.completed_at,
    }
    if next_log_index is not None:
        out["next_log_index"] = next_log_index
    return out


def deployment_out(deployment, *, with_log_indexes: bool = False) -> dict:
    indexes = svc.next_log_indexes(deployment) if with_log_indexes else {}
    app = deployment.application
    stages = sorted(deployment.stages.all(), key=lambda s: s.index)
    return {
        "id": str(deployment.id),
        "application_id": str(deployment.application_id),
        "application_name": deployment.application_name,
        "piped_id": str(deployment.piped_id),
        "project_id": deployment.project_id,
        "kind": deployment.kind,
        "platform_provider": deployment.platform_provider,
        "labels": deployment.labels,
        "git_path": {"repo_id": app.repo_id, "path": app.path, "config_filename": app.config_filename},
        "trigger": {
            "kind": deployment.trigger_kind,
            "key": deployment.trigger_key,
            "commit": {
                "hash": deployment.commit_hash,
                "message": deployment.commit_message,
                "author": deployment.commit_author,
                "branch": deployment.commit_branch,
                "url": deployment.commit_url,
                "timestamp": deployment.commit_timestamp,
            },
            "commander": deployment.commander,
            "triggered_at": deployment.triggered_at,
            "sync_strategy": deployment.sync_strategy,
            "strategy_summary": deployment.strategy_summary,
        },
        "summary": deployment.summary,
        "versions": deployment.versions,
        "running_commit_hash": deployment.running_commit_hash,
        "status": deployment.status,
        "status_reason": deployment.status_reason,
        "metadata": deployment.metadata,
        "created_at": deployment.created_at,
        "updated_at": deployment.updated_at,
        "completed_at": deployment.completed_at,
        "stages": [
            stage_out(s, indexes.get((s.stage_id, s.retried_count), 0) if with_log_indexes else None)
            for s in stages
        ],
    }


def command_out(command) -> dict:
    return {
        "id": str(command.id),
        "type": command.type,
        "application_id": str(command.application_id) if command.application_id else None,
        "deployment_id": str(command.deployment_id) if command.deployment_id else None,
        "stage_id": command.stage_id,
        "commander": command.commander,
        "payload": command.payload,
        "created_at": command.created_at,
    }


# --- Input shapes ---------------------------------------------------------------------------------------


def _storable(value: datetime) -> datetime:
    try:
        return storable(value)
    except ValueError as exc:
        raise PydanticCustomError("time_range", str(exc)) from None


# A time the database can store: `9999-12-31T23:59:59-01:00` parses, but its UTC is in the year 10000.
Moment = Annotated[datetime, AfterValidator(_storable)]


class StatIn(Schema):
    stopping: bool = False


class MetaIn(Schema):
    version: str = ""
    repositories: list[dict[str, Any]] = []
    platform_providers: list[dict[str, Any]] = []
    config: str = ""


class HandledIn(Schema):
    status: str
    result: dict[str, Any] = {}


class SyncStateIn(Schema):
    status: str
    short_reason: str = ""
    reason: str = ""


class AppConfigIn(Schema):
    name: str
    labels: dict[str, str] = {}
    description: str = ""


class DeployingIn(Schema):
    deploying: bool


class DeploymentRefIn(Schema):
    deployment_id: str


class CommitIn(Schema):
    hash: str
    message: str = ""
    author: str = ""
    branch: str = ""
    url: str = ""
    timestamp: Moment | None = None


class CreateDeploymentIn(Schema):
    application_id: str
    trigger_kind: str
    trigger_key: str
    commit: CommitIn
    commander: str = ""
    sync_strategy: str = SyncStrategy.AUTO
    strategy_summary: str = ""


class PlannedIn(Schema):
    sync_strategy: str
    summary: str = ""
    strategy_summary: str = ""
    versions: list[dict[str, Any]] = []
    running_commit_hash: str = ""
    stages: list[dict[str, Any]]
    metadata: dict[str, Any] = {}


class StatusIn(Schema):
    status: str
    reason: str = ""


class MetadataIn(Schema):
    metadata: dict[str, Any]


class LogsIn(Schema):
    blocks: list[dict[str, Any]]


class ClaimIn(Schema):
    worker_id: str
    lease_seconds: float = 10


class ReleaseIn(Schema):
    worker_id: str
    next_check_at: Moment | None = None


class RepositoryStatusIn(Schema):
    repositories: dict[str, dict[str, Any]]


class UnregisteredAppsIn(Schema):
    repo_ids: list[str]
    apps: list[dict[str, Any]] = []


# --- The piped itself -----------------------------------------------------------------------------------


@api.post("/stat")
def report_stat(request, payload: StatIn):
    svc.report_stat(request.auth, stopping=payload.stopping)
    return {"ok": True}


@api.post("/meta")
def report_meta(request, payload: MetaIn):
    piped = svc.report_meta(
        request.auth,
        version=payload.version,
        repositories=payload.repositories,
        platform_providers=payload.platform_providers,
        config=payload.config,
    )
    return {"ok": True, "piped_id": str(piped.id), "name": piped.name}


@api.post("/repositories/status")
def report_repository_status(request, payload: RepositoryStatusIn):
    return {"repositories": svc.report_repository_status(request.auth, payload.repositories)}


@api.post("/unregistered-apps")
def report_unregistered_apps(request, payload: UnregisteredAppsIn):
    apps = svc.report_unregistered_apps(request.auth, repo_ids=payload.repo_ids, apps=payload.apps)
    return {"count": len(apps)}


# --- Commands -------------------------------------------------------------------------------------------


@api.get("/commands")
def list_commands(request):
    """The piped's one-second poll: unhandled commands, webhook fetch requests, application list changes."""
    piped = request.auth
    return {
        "commands": [command_out(c) for c in svc.list_unhandled_commands(piped)],
        "fetch_requests": piped.fetch_requests or {},
        "apps_changed_at": piped.apps_changed_at,
    }


@api.post("/commands/{command_id}/handled")
def report_command_handled(request, command_id: str, payload: HandledIn):
    command = svc.report_command_handled(
        request.auth, command_id, status=payload.status, result=payload.result
    )
    return {"id": str(command.id), "status": command.status}


# --- Applications ---------------------------------------------------------------------------------------


@api.get("/applications")
def list_applications(request):
    return {"applications": [application_out(a) for a in svc.list_applications(request.auth)]}


@api.get("/applications/{app_id}")
def get_application(request, app_id: str):
    return application_out(svc.get_piped_application(request.auth, app_id))


@api.post("/applications/{app_id}/sync-state")
def report_sync_state(request, app_id: str, payload: SyncStateIn):
    app = svc.get_piped_application(request.auth, app_id)
    svc.report_application_sync_state(
        request.auth, app, status=payload.status, short_reason=payload.short_reason, reason=payload.reason
    )
    return {"ok": True}


@api.post("/applications/{app_id}/config")
def report_app_config(request, app_id: str, payload: AppConfigIn):
    app = svc.get_piped_application(request.auth, app_id)
    changed = svc.report_application_config(
        request.auth, app, name=payload.name, labels=payload.labels, description=payload.description
    )
    return {"changed": changed}


@api.post("/applications/{app_id}/deploying")
def report_deploying(request, app_id: str, payload: DeployingIn):
    app = svc.get_piped_application(request.auth, app_id)
    svc.report_application_deploying(request.auth, app, deploying=payload.deploying)
    return {"ok": True}


@api.post("/applications/{app_id}/most-recent-deployment")
def report_most_recent_deployment(request, app_id: str, payload: DeploymentRefIn):
    app = svc.get_piped_application(request.auth, app_id)
    svc.report_application_most_recent_deployment(request.auth, app, payload.deployment_id)
    return {"ok": True}


@api.get("/applications/{app_id}/most-recent-successful-deployment")
def get_most_recent_successful_deployment(request, app_id: str):
    app = svc.get_piped_application(request.auth, app_id)
    deployment = svc.most_recent_successful_deployment(request.auth, app)
    return {"deployment": deployment_out(deployment) if deployment else None}


# --- Deployments ----------------------------------------------------------------------------------------


@api.post("/deployments")
def create_deployment(request, payload: CreateDeploymentIn):
    app = svc.get_piped_application(request.auth, payload.application_id)
    deployment, created = svc.create_deployment(
        request.auth,
        app,
        trigger_kind=payload.trigger_kind,
        trigger_key=payload.trigger_key,
        commit=payload.commit.dict(),
        commander=payload.commander,
        sync_strategy=payload.sync_strategy,
        strategy_summary=payload.strategy_summary,
    )
    return api.create_response(
        request,
        {"deployment": deployment_out(deployment), "created": created},
        status=201 if created else 200,
    )


@api.get("/deployments")
def list_not_completed_deployments(request):
    return {"deployments": [deployment_out(d) for d in svc.list_not_completed_deployments(request.auth)]}


@api.get("/deployments/{deployment_id}")
def get_deployment(request, deployment_id: str):
    deployment = svc.get_piped_deployment(request.auth, deployment_id)
    return deployment_out(deployment, with_log_indexes=True)


@api.post("/deployments/{deployment_id}/planned")
def report_planned(request, deployment_id: str, payload: PlannedIn):
    deployment = svc.get_piped_deployment(request.auth, deployment_id)
    deployment = svc.report_deployment_planned(
        request.auth,
        deployment,
        sync_strategy=payload.sync_strategy,
        summary=payload.summary,
        strategy_summary=payload.strategy_summary,
        versions=payload.versions,
        running_commit_hash=payload.running_commit_hash,
        stages=payload.stages,
        metadata=payload.metadata,
    )
    return deployment_out(deployment)


@api.post("/deployments/{deployment_id}/status")
def report_status(request, deployment_id: str, payload: StatusIn):
    deployment = svc.get_piped_deployment(request.auth, deployment_id)
    deployment = svc.report_deployment_status(
        request.auth, deployment, status=payload.status, reason=payload.reason
    )
    return {"status": deployment.status}


@api.post("/deployments/{deployment_id}/completed")
def report_completed(request, deployment_id: str, payload: StatusIn):
    if payload.status not in DEPLOYMENT_TERMINAL:
        raise InvalidInput("A completed deployment is SUCCESS, FAILURE or CANCELLED.", field="status")
    deployment = svc.get_piped_deployment(request.auth, deployment_id)
    deployment = svc.report_deployment_status(
        request.auth, deployment, status=payload.status, reason=payload.reason
    )
    return {"status": deployment.status}


@api.post("/deployments/{deployment_id}/metadata")
def save_deployment_metadata(request, deployment_id: str, payload: MetadataIn):
    # The merge fetches the deployment itself (locked, this piped's only).
    return {"metadata": svc.merge_deployment_metadata(request.auth, deployment_id, payload.metadata)}


@api.post("/deployments/{deployment_id}/stages/{path:stage_id}/status")
def report_stage_status(request, deployment_id: str, stage_id: str, payload: StatusIn):
    deployment = svc.get_piped_deployment(request.auth, deployment_id)
    stage = svc.report_stage_status(
        request.auth, deployment, stage_id, status=payload.status, reason=payload.reason
    )
    return {"status": stage.status}


@api.post("/deployments/{deployment_id}/stages/{path:stage_id}/metadata")
def save_stage_metadata(request, deployment_id: str, stage_id: str, payload: MetadataIn):
    deployment = svc.get_piped_deployment(request.auth, deployment_id)
    return {"metadata": svc.merge_stage_metadata(request.auth, deployment, stage_id, payload.metadata)}


@api.post("/deployments/{deployment_id}/stages/{path:stage_id}/logs")
def report_stage_logs(request, deployment_id: str, stage_id: str, payload: LogsIn):
    deployment = svc.get_piped_deployment(request.auth, deployment_id)
    return {"received": svc.append_stage_logs(request.auth, deployment, stage_id, payload.blocks)}


def _claim_answer(won: bool, stage) -> dict:
    return {
        "claimed": won,
        "claimed_by": stage.claimed_by,
        "claim_expires_at": stage.claim_expires_at,
        "status": stage.status,
    }


@api.post("/deployments/{deployment_id}/stages/{path:stage_id}/claim")
def claim_stage(request, deployment_id: str, stage_id: str, payload: ClaimIn):
    deployment = svc.get_piped_deployment(request.auth, deployment_id)
    won, stage = svc.claim_stage(
        request.auth, deployment, stage_id, worker_id=payload.worker_id, lease_seconds=payload.lease_seconds
    )
    return _claim_answer(won, stage)


@api.post("/deployments/{deployment_id}/stages/{path:stage_id}/renew")
def renew_stage_claim(request, deployment_id: str, stage_id: str, payload: ClaimIn):
    deployment = svc.get_piped_deployment(request.auth, deployment_id)
    won, stage = svc.renew_stage_claim(
        request.auth, deployment, stage_id, worker_id=payload.worker_id, lease_seconds=payload.lease_seconds
    )
    return _claim_answer(won, stage)


@api.post("/deployments/{deployment_id}/stages/{path:stage_id}/release")
def release_stage_claim(request, deployment_id: str, stage_id: str, payload: ReleaseIn):
    deployment = svc.get_piped_deployment(request.auth, deployment_id)
    stage = svc.release_stage_claim(
        request.auth, deployment, stage_id, worker_id=payload.worker_id, next_check_at=payload.next_check_at
    )
    return _claim_answer(False, stage)


# --- A stage's steps in fewer round trips (docs/piped.md) -----------------------------------------------


class StartNextIn(Schema):
    stage_id: str
    lease_seconds: float = 10


class StageReportIn(Schema):
    worker_id: str
    blocks: list[dict[str, Any]] = []
    metadata: dict[str, Any] | None = None
    deployment_metadata: dict[str, Any] | None = None
    status: str = ""
    reason: str = ""
    release: bool = False
    next_check_at: Moment | None = None
    start_next: StartNextIn | None = None
    return_deployment: bool = False


def _deployment_after(request, deployment_id: str) -> dict:
    return deployment_out(svc.get_piped_deployment(request.auth, deployment_id), with_log_indexes=True)


@api.post("/deployments/{deployment_id}/stages/{path:stage_id}/start")
def start_stage(request, deployment_id: str, stage_id: str, payload: ClaimIn):
    """Claim a stage and mark it RUNNING (the deployment too, when PLANNED) if it may run now; with the
    deployment as it is afterwards."""
    answer = svc.start_stage(
        request.auth,
        deployment_id,
        stage_id,
        worker_id=payload.worker_id,
        lease_seconds=payload.lease_seconds,
    )
    return {**answer, "deployment": _deployment_after(request, deployment_id)}


@api.post("/deployments/{deployment_id}/stages/{path:stage_id}/report")
def report_stage_step(request, deployment_id: str, stage_id: str, payload: StageReportIn):
    """One step's logs, metadata, outcome and claim release in one transaction; optionally the next stage's
    start, and the deployment as it is afterwards."""
    answer = svc.report_stage_step(
        request.auth,
        deployment_id,
        stage_id,
        worker_id=payload.worker_id,
        blocks=payload.blocks,
        metadata=payload.metadata,
        deployment_metadata=payload.deployment_metadata,
        status=payload.status,
        reason=payload.reason,
        release=payload.release,
        next_check_at=payload.next_check_at,
        start_next=payload.start_next.dict() if payload.start_next is not None else None,
    )
    if payload.return_deployment or payload.start_next is not None:
        answer["deployment"] = _deployment_after(request, deployment_id)
    return answer


# --- Live state and drift detection (ECS progressive delivery) ------------------------------------------


class LiveStateIn(Schema):
    snapshot: dict[str, Any]
    collected_at: Moment | None = None


class DriftIn(Schema):
    status: str
    commit: str = ""
    summary: str = ""
    diff: str = ""


@api.post("/applications/{app_id}/live-state")
def report_live_state(request, app_id: str, payload: LiveStateIn):
    """What runs for the application now (service, task sets, tasks, traffic), as the piped saw it."""
    app = svc.get_piped_application(request.auth, app_id)
    row = svc.report_live_state(request.auth, app, payload.snapshot, payload.collected_at)
    return {"ok": True, "updated_at": row.updated_at, "in_filestore": bool(row.snapshot_key)}


@api.post("/applications/{app_id}/drift")
def report_drift(request, app_id: str, payload: DriftIn):
    """A drift check: SYNCED or OUT_OF_SYNC with the unified diff (--- live / +++ Git)."""
    app = svc.get_piped_application(request.auth, app_id)
    sync_status, applied = svc.report_application_drift(
        request.auth,
        app,
        status=payload.status,
        commit=payload.commit,
        summary=payload.summary,
        diff=payload.diff,
    )
    return {"ok": True, "sync_status": sync_status, "applied": applied}


api.add_router("/notifications", "apps.notifications.pipedapi.router")  # apps/notifications: events, attempts
