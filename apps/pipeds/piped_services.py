"""Control-plane rules behind the piped API: what a piped may report, and how the records follow its reports.

Every function takes the authenticated `Piped` and refuses (404) any application, deployment, stage or
command that is not that piped's. Status changes go through `transition_deployment` / `transition_stage`
(forward only); a report that would move backwards is a `Conflict` (409). The application's
`most_recent_deployment`, `most_recent_successful_deployment`, `deploying` and sync state follow the
deployment reports here, so the portal never has to ask the piped.
"""

import math
import uuid
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from apps.applications.choices import SyncStatus
from apps.applications.models import Application
from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.core.times import parse_time
from apps.deployments.choices import (
    DEPLOYMENT_TERMINAL,
    STAGE_TERMINAL,
    CommandStatus,
    DeploymentStatus,
    LogSeverity,
    StageStatus,
    SyncStrategy,
    TriggerKind,
)
from apps.deployments.models import Command, Deployment, Stage, StageLogBlock
from apps.deployments.services import transition_deployment, transition_stage
from apps.pipelineconfig.application import MAX_APPROVER_NUM as MAX_APPROVERS
from apps.pipelineconfig.types import mask_text_credentials, mask_url_credentials
from apps.projects import audit
from apps.projects.choices import ActorKind
from apps.projects.principal import Principal

from .models import Piped

# Limits that keep one report from growing a row without bound.
MAX_LOG_BLOCKS_PER_CALL = 1000
MAX_LOG_BLOCK_CHARS = 64 * 1024
MAX_STAGES = 100
MAX_METADATA_CHARS = 64 * 1024
MAX_LEASE_SECONDS = 300
MAX_COMMANDS_PER_POLL = 200
MAX_SUGGESTIONS = 500
# PositiveIntegerField: what every supported database keeps in it.
MAX_POSITIVE_INT = 2**31 - 1
TRIGGER_KEY_LENGTH = Deployment._meta.get_field("trigger_key").max_length
ACTIVE_DEPLOYMENT = (DeploymentStatus.PLANNED, DeploymentStatus.RUNNING, DeploymentStatus.ROLLING_BACK)

# Application fields whose change makes the piped reload its application list.
APP_FIELDS_THE_PIPED_WATCHES = frozenset(
    {"name", "labels", "description", "disabled", "deleted", "piped", "platform_provider"}
)


def piped_principal(piped: Piped) -> Principal:
    return Principal(project_id=piped.project_id, kind=ActorKind.PIPED, name=str(piped.id), role="")


def _uuid(value, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        raise NotFound(f"{what} not found.") from None


# --- The piped itself -----------------------------------------------------------------------------------


def report_stat(piped: Piped, *, stopping: bool = False) -> None:
    """A heartbeat (one UPDATE), or the piped saying it stops cleanly so it shows OFFLINE at once."""
    now = timezone.now()
    if stopping:
        Piped.objects.filter(pk=piped.pk).update(stopped_at=now)
    else:
        Piped.objects.filter(pk=piped.pk).update(last_heartbeat_at=now, stopped_at=None)


def _clean_repositories(repositories) -> list[dict]:
    cleaned, seen = [], set()
    for repo in repositories or []:
        repo_id = str(repo.get("repo_id") or "").strip()
        if not repo_id:
            raise InvalidInput("Every repository needs a repo_id.", field="repositories")
        if repo_id in seen:
            raise InvalidInput(f"Repository {repo_id!r} is listed twice.", field="repositories")
        seen.add(repo_id)
        cleaned.append(
            {
                "repo_id": repo_id,
                # The control plane never keeps a credential, even if an old piped sends one.
                "remote": mask_url_credentials(str(repo.get("remote") or "")),
                "branch": str(repo.get("branch") or ""),
            }
        )
    return cleaned


@transaction.atomic
def report_meta(
    piped: Piped,
    *,
    version: str,
    repositories: list[dict],
    platform_providers: list[dict],
    config: str,
) -> Piped:
    """What the piped says about itself at start-up: version, repositories, providers, masked config."""
    now = timezone.now()
    piped = Piped.objects.select_for_update().get(pk=piped.pk)
    piped.version = (version or "")[:50]
    piped.repositories = _clean_repositories(repositories)
    piped.platform_providers = [
        {"name": str(p.get("name") or ""), "type": str(p.get("type") or "")} for p in platform_providers or []
    ]
    piped.config = config or ""
    piped.started_at = now
    piped.last_heartbeat_at = now
    piped.stopped_at = None
    # Forget the status of repositories the piped no longer has.
    known = {r["repo_id"] for r in piped.repositories}
    piped.repository_status = {k: v for k, v in (piped.repository_status or {}).items() if k in known}
    piped.save(
        update_fields=[
            "version",
            "repositories",
            "platform_providers",
            "config",
            "started_at",
            "last_heartbeat_at",
            "stopped_at",
            "repository_status",
            "updated_at",
        ]
    )
    audit.record(
        piped_principal(piped),
        "piped.start",
        obj=piped,
        details={"version": piped.version, "repositories": sorted(known)},
    )
    return piped


@transaction.atomic
def report_repository_status(piped: Piped, statuses: dict[str, dict]) -> dict:
    """Merge per-repository fetch results: {repo_id: {last_fetch_at, head, error, failures, next_attempt_at}}."""
    piped = Piped.objects.select_for_update().get(pk=piped.pk)
    known = {r["repo_id"] for r in piped.repositories or []}
    current = dict(piped.repository_status or {})
    for repo_id, status in (statuses or {}).items():
        if known and repo_id not in known:
            raise InvalidInput(f"Repository {repo_id!r} is not one of this piped's repositories.")
        if not isinstance(status, dict):
            raise InvalidInput(f"The status of {repo_id!r} must be an object.")
        merged = {**current.get(repo_id, {}), **status}
        merged["error"] = mask_text_credentials(str(merged.get("error") or ""))[:2000]
        current[repo_id] = merged
    piped.repository_status = current
    piped.save(update_fields=["repository_status", "updated_at"])
    return current


@transaction.atomic
def report_unregistered_apps(piped: Piped, *, repo_ids: list[str], apps: list[dict]) -> list[dict]:
    """Replace the suggestions found in `repo_ids` (the repositories the piped just scanned)."""
    piped = Piped.objects.select_for_update().get(pk=piped.pk)
    scanned = set(repo_ids or [])
    kept = [s for s in piped.unregistered_apps or [] if s.get("repo_id") not in scanned]
    for app in apps or []:
        repo_id = str(app.get("repo_id") or "")
        labels = app.get("labels") or {}
        if not isinstance(labels, dict):
            raise InvalidInput(f"Suggestion {app.get('path')!r}: labels must be an object.", field="apps")
        if repo_id not in scanned:
            raise InvalidInput(
                f"Suggestion {app.get('path')!r} names repository {repo_id!r}, which was not scanned."
            )
        kept.append(
            {
                "repo_id": repo_id,
                "path": str(app.get("path") or "."),
                "config_filename": str(app.get("config_filename") or ""),
                "name": str(app.get("name") or "")[:100],
                "kind": str(app.get("kind") or "ECS"),
                "labels": {str(k): str(v) for k, v in labels.items()},
                "description": str(app.get("description") or "")[:2000],
            }
        )
    piped.unregistered_apps = kept[:MAX_SUGGESTIONS]
    piped.save(update_fields=["unregistered_apps", "updated_at"])
    return piped.unregistered_apps


def note_application_saved(
    sender, instance: Application, created: bool, update_fields=None, **kwargs
) -> None:
    """post_save of Application: bump the owning piped's `apps_changed_at` when it should reload its list.

    The piped's own reports (sync state, most recent deployment) use queryset updates or name their fields,
    so they do not make every piped reload after every report.
    """
    if not created and update_fields is not None and not (set(update_fields) & APP_FIELDS_THE_PIPED_WATCHES):
        return
    Piped.objects.filter(pk=instance.piped_id).update(apps_changed_at=timezone.now())


def request_fetch(piped_ids_and_repos: list[tuple], *, at: datetime | None = None) -> None:
    """Ask pipeds to fetch repositories now (Git webhook). The piped sees it on its next command poll."""
    stamp = (at or timezone.now()).isoformat()
    by_piped: dict = {}
    for piped_id, repo_id in piped_ids_and_repos:
        by_piped.setdefault(piped_id, set()).add(repo_id)
    with transaction.atomic():
        for piped in Piped.objects.select_for_update().filter(pk__in=list(by_piped)):
            requests = dict(piped.fetch_requests or {})
            for repo_id in by_piped[piped.pk]:
                requests[repo_id] = stamp
            piped.fetch_requests = requests
            piped.save(update_fields=["fetch_requests", "updated_at"])


# --- Commands -------------------------------------------------------------------------------------------


def list_unhandled_commands(piped: Piped):
    """What the piped asks for every second: one query on the (piped, status, created_at) index."""
    return list(
        Command.objects.filter(piped=piped, status=CommandStatus.NOT_HANDLED_YET).order_by("created_at")[
            :MAX_COMMANDS_PER_POLL
        ]
    )


def report_command_handled(piped: Piped, command_id, *, status: str, result: dict | None = None) -> Command:
    if status not in (CommandStatus.SUCCEEDED, CommandStatus.FAILED):
        raise InvalidInput("A handled command is SUCCEEDED or FAILED.", field="status")
    pk = _uuid(command_id, "Command")
    try:
        command = Command.objects.get(pk=pk, piped=piped)
    except Command.DoesNotExist:
        raise NotFound("Command not found.") from None
    updated = Command.objects.filter(pk=pk, status=CommandStatus.NOT_HANDLED_YET).update(
        status=status, result=result or {}, handled_at=timezone.now()
    )
    command.refresh_from_db()
    if not updated and command.status != status:
        raise Conflict(f"The command was already handled ({command.status}).")
    return command


# --- Applications ---------------------------------------------------------------------------------------


def list_applications(piped: Piped):
    """This piped's enabled applications that are not deleted, with their most recent deployments."""
    return list(
        Application.objects.filter(piped=piped, deleted=False, disabled=False)
        .select_related("most_recent_deployment", "most_recent_successful_deployment")
        .order_by("name", "id")
    )


def get_piped_application(piped: Piped, app_id) -> Application:
    try:
        return Application.objects.select_related(
            "most_recent_deployment", "most_recent_successful_deployment"
        ).get(pk=_uuid(app_id, "Application"), piped=piped, deleted=False)
    except Application.DoesNotExist:
        raise NotFound("Application not found.") from None


def report_application_sync_state(
    piped: Piped, app: Application, *, status: str, short_reason: str = "", reason: str = ""
) -> None:
    if status not in SyncStatus.values:
        raise InvalidInput(f"Unknown sync status {status!r}.", field="status")
    Application.objects.filter(pk=app.pk).update(
        sync_status=status,
        sync_short_reason=(short_reason or "")[:300],
        sync_reason=reason or "",
        sync_updated_at=timezone.now(),
    )


def report_application_config(
    piped: Piped, app: Application, *, name: str, labels: dict, description: str
) -> bool:
    """Re-sync name, labels and description from the app config in Git. True when something changed."""
    name = (name or "").strip()[:100] or app.name
    labels = {str(k): str(v) for k, v in (labels or {}).items()}
    description = description or ""
    if (name, labels, description) == (app.name, app.labels, app.description):
        return False
    Application.objects.filter(pk=app.pk).update(
        name=name, labels=labels, description=description, updated_at=timezone.now()
    )
    return True


def report_application_deploying(piped: Piped, app: Application, *, deploying: bool) -> None:
    Application.objects.filter(pk=app.pk).update(deploying=deploying)


def report_application_most_recent_deployment(piped: Piped, app: Application, deployment_id) -> Deployment:
    deployment = get_piped_deployment(piped, deployment_id)
    if deployment.application_id != app.id:
        raise NotFound("Deployment not found.")
    fields = {"most_recent_deployment": deployment}
    if deployment.status == DeploymentStatus.SUCCESS:
        fields["most_recent_successful_deployment"] = deployment
    Application.objects.filter(pk=app.pk).update(**fields)
    return deployment


def most_recent_successful_deployment(piped: Piped, app: Application) -> Deployment | None:
    return (
        Deployment.objects.filter(application=app, status=DeploymentStatus.SUCCESS)
        .order_by("-created_at", "-id")
        .first()
    )


def _refresh_application_state(deployment: Deployment, new_status: str, reason: str) -> None:
    """Keep the application's deploying flag, sync state and most recent deployments in step."""
    now = timezone.now()
    fields: dict = {}
    deploying = Deployment.objects.filter(
        application_id=deployment.application_id, status__in=ACTIVE_DEPLOYMENT
    ).exists()
    fields["deploying"] = deploying
    if new_status in ACTIVE_DEPLOYMENT:
        fields.update(
            sync_status=SyncStatus.DEPLOYING,
            sync_short_reason=f"Deploying commit {deployment.short_commit}",
            sync_reason=deployment.summary or "",
            sync_updated_at=now,
        )
    elif new_status == DeploymentStatus.SUCCESS:
        fields["most_recent_successful_deployment_id"] = deployment.pk
        if not deploying:
            fields.update(
                sync_status=SyncStatus.SYNCED,
                sync_short_reason=f"Deployed commit {deployment.short_commit}",
                sync_reason=deployment.summary or "",
                sync_updated_at=now,
            )
    elif new_status in DEPLOYMENT_TERMINAL and not deploying:
        # Whether the live state matches Git after a failure is the drift detector's call, not ours.
        fields.update(
            sync_status=SyncStatus.UNKNOWN,
            sync_short_reason=f"Deployment {new_status.lower()} at commit {deployment.short_commit}",
            sync_reason=reason or "",
            sync_updated_at=now,
        )
    Application.objects.filter(pk=deployment.application_id).update(**fields)


# --- Deployments ----------------------------------------------------------------------------------------


def get_piped_deployment(piped: Piped, deployment_id, *, lock: bool = False) -> Deployment:
    queryset = (
        Deployment.objects.select_for_update() if lock else Deployment.objects.select_related("application")
    )
    try:
        return queryset.get(pk=_uuid(deployment_id, "Deployment"), piped=piped)
    except Deployment.DoesNotExist:
        raise NotFound("Deployment not found.") from None


def get_deployment_stage(deployment: Deployment, stage_id: str) -> Stage:
    try:
        return Stage.objects.get(deployment=deployment, stage_id=stage_id)
    except Stage.DoesNotExist:
        raise NotFound(f"Stage {stage_id!r} not found in this deployment.") from None


def create_deployment(
    piped: Piped,
    app: Application,
    *,
    trigger_kind: str,
    trigger_key: str,
    commit: dict,
    commander: str = "",
    sync_strategy: str = SyncStrategy.AUTO,
    strategy_summary: str = "",
) -> tuple[Deployment, bool]:
    """Record a triggered deployment (PENDING). The same trigger key answers the deployment it made before."""
    if trigger_kind not in TriggerKind.values:
        raise InvalidInput(f"Unknown trigger kind {trigger_kind!r}.", field="trigger_kind")
    if sync_strategy not in SyncStrategy.values:
        raise InvalidInput(f"Unknown sync strategy {sync_strategy!r}.", field="sync_strategy")
    trigger_key = (trigger_key or "").strip()
    if not trigger_key:
        raise InvalidInput("trigger_key is required (it makes retries safe).", field="trigger_key")
    if len(trigger_key) > TRIGGER_KEY_LENGTH:
        # Cut short, a retry would not find the deployment it made and fail on the unique key instead.
        raise InvalidInput(f"trigger_key is at most {TRIGGER_KEY_LENGTH} characters.", field="trigger_key")
    commit_hash = str(commit.get("hash") or "").strip()
    if not commit_hash:
        raise InvalidInput("The commit hash is required.", field="commit.hash")
    existing = Deployment.objects.filter(application=app, trigger_key=trigger_key).first()
    if existing is not None:
        return existing, False
    if app.disabled:
        raise Conflict("The application is disabled.")
    try:
        with transaction.atomic():
            deployment = Deployment.objects.create(
                project_id=app.project_id,
                application=app,
                piped=piped,
                application_name=app.name,
                kind=app.kind,
                platform_provider=app.platform_provider,
                labels=app.labels,
                commit_hash=commit_hash[:64],
                commit_message=str(commit.get("message") or ""),
                commit_author=str(commit.get("author") or "")[:200],
                commit_branch=str(commit.get("branch") or "")[:200],
                commit_url=str(commit.get("url") or "")[:500],
                commit_timestamp=commit.get("timestamp"),
                commander=(commander or "")[:200],
                triggered_at=timezone.now(),
                trigger_kind=trigger_kind,
                trigger_key=trigger_key,
                sync_strategy=sync_strategy,
                strategy_summary=(strategy_summary or "")[:500],
                status=DeploymentStatus.PENDING,
                status_reason="The deployment is waiting to be planned.",
            )
            Application.objects.filter(pk=app.pk).update(most_recent_deployment=deployment)
            audit.record(
                piped_principal(piped),
                "deployment.trigger",
                obj=deployment,
                project_id=app.project_id,
                details={"application": app.name, "commit": commit_hash[:64], "trigger": trigger_kind},
            )
    except IntegrityError:
        existing = Deployment.objects.filter(application=app, trigger_key=trigger_key).first()
        if existing is None:
            raise
        return existing, False
    return deployment, True


def list_not_completed_deployments(piped: Piped):
    return list(
        Deployment.objects.filter(piped=piped)
        .exclude(status__in=DEPLOYMENT_TERMINAL)
        .select_related("application")
        .prefetch_related("stages")
        .order_by("created_at", "id")
    )


def next_log_indexes(deployment: Deployment) -> dict[tuple[str, int], int]:
    """{(stage_id, retried_count): next free log index} — where a resumed stage goes on writing."""
    rows = (
        StageLogBlock.objects.filter(stage__deployment=deployment)
        .values("stage__stage_id", "retried_count")
        .annotate(last=Max("index"))
    )
    return {(r["stage__stage_id"], r["retried_count"]): r["last"] + 1 for r in rows}


def _clean_stage(raw: dict, position: int) -> dict:
    stage_id = str(raw.get("id") or "").strip()
    name = str(raw.get("name") or "").strip()
    if not stage_id or len(stage_id) > 100:
        raise InvalidInput(f"Stage {position}: the id must be 1 to 100 characters.", field="stages")
    if not name or len(name) > 50:
        raise InvalidInput(f"Stage {stage_id}: the name must be 1 to 50 characters.", field="stages")
    try:
        min_approvers = int(raw.get("min_approver_num") or 1)
        index = int(raw.get("index", position))
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(
            f"Stage {stage_id}: index and min_approver_num must be whole numbers.", field="stages"
        ) from None
    if not 1 <= min_approvers <= MAX_APPROVERS or not 0 <= index <= MAX_STAGES:
        raise InvalidInput(
            f"Stage {stage_id}: min_approver_num must be 1 to {MAX_APPROVERS} and index 0 to {MAX_STAGES}.",
            field="stages",
        )
    lists = {key: raw.get(key) or [] for key in ("requires", "authorized_approvers")}
    for key, value in lists.items():
        if not isinstance(value, list):
            raise InvalidInput(f"Stage {stage_id}: {key} must be a list.", field="stages")
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidInput(f"Stage {stage_id}: metadata must be an object.", field="stages")
    _check_approved_by(metadata, "stages.metadata")
    return {
        "stage_id": stage_id,
        "name": name,
        "desc": str(raw.get("desc") or "")[:500],
        "index": index,
        "requires": [str(r) for r in lists["requires"]],
        "visible": bool(raw.get("visible", True)),
        "rollback": bool(raw.get("rollback", False)),
        "metadata": dict(metadata),
        "authorized_approvers": [str(a) for a in lists["authorized_approvers"]],
        "min_approver_num": min_approvers,
    }


def report_deployment_planned(
    piped: Piped,
    deployment: Deployment,
    *,
    sync_strategy: str,
    summary: str,
    versions: list[dict],
    running_commit_hash: str = "",
    stages: list[dict],
    strategy_summary: str = "",
    metadata: dict | None = None,
) -> Deployment:
    """PENDING → PLANNED with the planned stages. Saying the same plan twice is harmless; after that, 409."""
    if sync_strategy not in (SyncStrategy.QUICK_SYNC, SyncStrategy.PIPELINE):
        raise InvalidInput("A planned deployment is QUICK_SYNC or PIPELINE.", field="sync_strategy")
    if not stages:
        raise InvalidInput("A plan has at least one stage.", field="stages")
    if len(stages) > MAX_STAGES:
        raise InvalidInput(f"A plan has at most {MAX_STAGES} stages.", field="stages")
    cleaned = [_clean_stage(raw, i) for i, raw in enumerate(stages)]
    ids = [s["stage_id"] for s in cleaned]
    if len(set(ids)) != len(ids):
        raise InvalidInput("Stage ids must be unique within a deployment.", field="stages")
    with transaction.atomic():
        deployment = get_piped_deployment(piped, deployment.pk, lock=True)
        if deployment.status != DeploymentStatus.PENDING:
            existing = list(deployment.stages.values_list("stage_id", flat=True).order_by("index"))
            if deployment.status == DeploymentStatus.PLANNED and existing == ids:
                return deployment
            raise Conflict(f"The deployment was already planned (it is {deployment.status}).")
        Stage.objects.filter(deployment=deployment).delete()
        Stage.objects.bulk_create([Stage(deployment=deployment, **s) for s in cleaned])
        fields = {
            "sync_strategy": sync_strategy,
            "summary": summary or "",
            "versions": [
                {
                    "name": str(v.get("name") or ""),
                    "version": str(v.get("version") or ""),
                    "url": str(v.get("url") or ""),
                }
                for v in versions or []
            ],
            "running_commit_hash": (running_commit_hash or "")[:64],
        }
        if strategy_summary:
            fields["strategy_summary"] = strategy_summary[:500]
        if metadata:
            fields["metadata"] = {**(deployment.metadata or {}), **metadata}
        if not transition_deployment(deployment.pk, DeploymentStatus.PLANNED, summary or "Planned", **fields):
            raise Conflict("The deployment changed while it was being planned.")
    deployment.refresh_from_db()
    _refresh_application_state(deployment, DeploymentStatus.PLANNED, "")
    return deployment


def report_deployment_status(
    piped: Piped, deployment: Deployment, *, status: str, reason: str = ""
) -> Deployment:
    """Move a deployment forward. The same status again is a no-op; a step back is a 409."""
    if status not in DeploymentStatus.values:
        raise InvalidInput(f"Unknown deployment status {status!r}.", field="status")
    if status == DeploymentStatus.PLANNED:
        raise InvalidInput("Report a plan with /planned, not as a status.", field="status")
    if not transition_deployment(deployment.pk, status, reason or ""):
        deployment.refresh_from_db()
        if deployment.status == status:
            return deployment
        raise Conflict(f"The deployment is {deployment.status}; it cannot go back to {status}.")
    deployment.refresh_from_db()
    _refresh_application_state(deployment, status, reason)
    if status in DEPLOYMENT_TERMINAL:
        audit.record(
            piped_principal(piped),
            "deployment.complete",
            obj=deployment,
            project_id=deployment.project_id,
            details={"status": status, "reason": (reason or "")[:500]},
        )
    return deployment


def report_stage_status(
    piped: Piped, deployment: Deployment, stage_id: str, *, status: str, reason: str = ""
) -> Stage:
    if status not in StageStatus.values:
        raise InvalidInput(f"Unknown stage status {status!r}.", field="status")
    stage = get_deployment_stage(deployment, stage_id)
    if stage.status == status:
        # The same status again (a retried report, a re-run after a restart): keep started_at as it was.
        if reason and reason != stage.status_reason:
            Stage.objects.filter(pk=stage.pk, status=status).update(status_reason=reason)
            stage.status_reason = reason
        return stage
    fields = {}
    if status in STAGE_TERMINAL:
        # Ended from outside its step (a cancel, the deployment's timeout): a worker still running a step of
        # it keeps its claim until its own report releases it (or the lease runs out), so that the rollback
        # does not start while that step may still change things (why_stage_cannot_start).
        fields = {"next_check_at": None}
    if not transition_stage(stage.pk, status, reason or "", **fields):
        stage.refresh_from_db()
        if stage.status == status:
            return stage
        raise Conflict(f"Stage {stage_id} is {stage.status}; it cannot go back to {status}.")
    stage.refresh_from_db()
    return stage


def _check_approved_by(metadata: dict, field: str) -> None:
    """`approved_by` is read back as a list of names (the API's stage `approved_by`, the portal, Slack)."""
    approved = metadata.get("approved_by")
    if approved is not None and not (
        isinstance(approved, list) and all(isinstance(a, str) for a in approved)
    ):
        raise InvalidInput(f"{field}.approved_by must be a list of names.", field=f"{field}.approved_by")


def _merge_metadata(current: dict, update: dict, field: str = "metadata") -> dict:
    if not isinstance(update, dict):
        raise InvalidInput(f"{field} must be an object.", field=field)
    _check_approved_by(update, field)
    merged = {**(current or {}), **update}
    if len(str(merged)) > MAX_METADATA_CHARS:
        raise InvalidInput(f"{field} is too large.", field=field)
    return merged


@transaction.atomic
def merge_deployment_metadata(piped: Piped, deployment: Deployment | str, metadata: dict) -> dict:
    """Merge into the deployment's metadata (the row locked: concurrent merges keep each other's keys)."""
    deployment = get_piped_deployment(piped, getattr(deployment, "pk", deployment), lock=True)
    deployment.metadata = _merge_metadata(deployment.metadata, metadata)
    deployment.save(update_fields=["metadata", "updated_at"])
    return deployment.metadata


@transaction.atomic
def merge_stage_metadata(piped: Piped, deployment: Deployment, stage_id: str, metadata: dict) -> dict:
    # The deployment's row first, then the stage's: the order every other writer of stages takes.
    Deployment.objects.select_for_update().filter(pk=deployment.pk).values_list("pk", flat=True).first()
    try:
        stage = Stage.objects.select_for_update().get(deployment=deployment, stage_id=stage_id)
    except Stage.DoesNotExist:
        raise NotFound(f"Stage {stage_id!r} not found in this deployment.") from None
    stage.metadata = _merge_metadata(stage.metadata, metadata)
    stage.save(update_fields=["metadata", "updated_at"])
    return stage.metadata


def append_stage_logs(piped: Piped, deployment: Deployment, stage_id: str, blocks: list[dict]) -> int:
    """Append log blocks; a block already stored at (retried_count, index) is kept as it is (retries)."""
    rows = _log_rows(blocks)
    stage = get_deployment_stage(deployment, stage_id)
    for row in rows:
        row.stage = stage
    StageLogBlock.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _log_rows(blocks: list[dict]) -> list[StageLogBlock]:
    """Checked log blocks, not yet tied to their stage (nothing is written here)."""
    if not isinstance(blocks, list):
        raise InvalidInput("blocks must be a list.", field="blocks")
    if len(blocks) > MAX_LOG_BLOCKS_PER_CALL:
        raise InvalidInput(f"At most {MAX_LOG_BLOCKS_PER_CALL} log blocks per call.", field="blocks")
    now = timezone.now()
    rows = []
    for block in blocks:
        if not isinstance(block, dict):
            raise InvalidInput("Every log block is an object.", field="blocks")
        severity = block.get("severity") or LogSeverity.INFO
        if severity not in LogSeverity.values:
            raise InvalidInput(f"Unknown log severity {severity!r}.", field="blocks")
        try:
            index = int(block["index"])
            retried = int(block.get("retried_count") or 0)
        except (KeyError, TypeError, ValueError, OverflowError):
            raise InvalidInput("Every log block needs a numeric index.", field="blocks") from None
        if index < 0 or retried < 0:
            raise InvalidInput("Log indexes are not negative.", field="blocks")
        if index > MAX_POSITIVE_INT or retried > MAX_POSITIVE_INT:
            raise InvalidInput(f"Log indexes are at most {MAX_POSITIVE_INT}.", field="blocks")
        created_at = block.get("created_at")
        rows.append(
            StageLogBlock(
                retried_count=retried,
                index=index,
                severity=severity,
                log=str(block.get("log") or "")[:MAX_LOG_BLOCK_CHARS],
                created_at=parse_time(created_at, "blocks.created_at") if created_at else now,
            )
        )
    return rows


def claim_stage(
    piped: Piped, deployment: Deployment, stage_id: str, *, worker_id: str, lease_seconds: float
) -> tuple[bool, Stage]:
    """Take (or renew) the right to run a stage: free, already ours, or its lease has run out.

    One conditional UPDATE, so two workers asking at once cannot both win.
    """
    worker_id = (worker_id or "").strip()[:100]
    if not worker_id:
        raise InvalidInput("worker_id is required.", field="worker_id")
    lease = _lease(lease_seconds)
    stage = get_deployment_stage(deployment, stage_id)
    now = timezone.now()
    claim = {
        "claimed_by": worker_id,
        "claim_expires_at": now + timedelta(seconds=lease),
        "next_check_at": None,
    }
    open_stages = Stage.objects.filter(pk=stage.pk).exclude(status__in=STAGE_TERMINAL)
    # Taken over from a worker whose lease ran out before it reported: a new run, as `start` counts it.
    won = (
        open_stages.filter(status=StageStatus.RUNNING, claim_expires_at__lt=now)
        .exclude(claimed_by__in=("", worker_id))
        .update(retried_count=F("retried_count") + 1, **claim)
    )
    won = won or open_stages.filter(
        Q(claimed_by="") | Q(claimed_by=worker_id) | Q(claim_expires_at__lt=now)
    ).update(**claim)
    stage.refresh_from_db()
    return bool(won), stage


def renew_stage_claim(
    piped: Piped, deployment: Deployment, stage_id: str, *, worker_id: str, lease_seconds: float
) -> tuple[bool, Stage]:
    """Extend our own lease. False when another worker has taken the stage over meanwhile."""
    lease = _lease(lease_seconds)
    stage = get_deployment_stage(deployment, stage_id)
    won = Stage.objects.filter(pk=stage.pk, claimed_by=worker_id).update(
        claim_expires_at=timezone.now() + timedelta(seconds=lease)
    )
    stage.refresh_from_db()
    return bool(won), stage


def release_stage_claim(
    piped: Piped,
    deployment: Deployment,
    stage_id: str,
    *,
    worker_id: str,
    next_check_at: datetime | None = None,
) -> Stage:
    """Give the stage back; a waiting stage says when it wants to be looked at again."""
    stage = get_deployment_stage(deployment, stage_id)
    Stage.objects.filter(pk=stage.pk, claimed_by=worker_id).update(
        claimed_by="", claim_expires_at=None, next_check_at=next_check_at
    )
    stage.refresh_from_db()
    return stage


# --- A stage's steps in fewer round trips ---------------------------------------------------------------
# `start_stage` claims a stage and marks it RUNNING (and the deployment, when it was PLANNED) in one call, but
# only when the stage may run now; `report_stage_step` sends what one step of a stage produced — its log
# blocks, stage and deployment metadata, its outcome, the release of the claim — in one transaction, and can
# start the next stage in the same transaction. The one-purpose calls above stay as they are.

FAILED_STAGE = frozenset({StageStatus.FAILURE, StageStatus.CANCELLED, StageStatus.EXITED})
PASSED_STAGE = frozenset({StageStatus.SUCCESS, StageStatus.SKIPPED})


def _deadline(metadata: dict) -> datetime | None:
    raw = (metadata or {}).get("deadline")
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def why_stage_cannot_start(deployment: Deployment, stages: list[Stage], stage: Stage, now: datetime) -> str:
    """Why `stage` may not start now ("" when it may): the order of stages the piped follows
    (apps/pipedagent/reconcile.py), checked again on what is recorded, so that a stage is never marked
    RUNNING out of turn, after a cancel, or after the deployment timed out."""
    if stage.status in STAGE_TERMINAL:
        return f"Stage {stage.stage_id} has already ended ({stage.status})."
    ordered = sorted(stages, key=lambda s: s.index)
    if stage.rollback:
        if deployment.status != DeploymentStatus.ROLLING_BACK:
            return f"Rollback stages run while the deployment rolls back; it is {deployment.status}."
        # A stage cancelled (or timed out) while a worker ran a step of it: the rollback waits until that
        # step has stopped, or it could still set weights or create a task set after the rollback's clean-up.
        busy = next(
            (
                s
                for s in ordered
                if not s.rollback and s.claimed_by and s.claim_expires_at and s.claim_expires_at >= now
            ),
            None,
        )
        if busy is not None:
            return f"Stage {busy.stage_id} is still held by a worker that has not stopped yet."
        before = [
            s for s in ordered if s.rollback and s.index < stage.index and s.status not in STAGE_TERMINAL
        ]
        return f"Stage {before[0].stage_id} comes first." if before else ""
    if deployment.status not in (DeploymentStatus.PLANNED, DeploymentStatus.RUNNING):
        return f"The deployment is {deployment.status}."
    metadata = deployment.metadata or {}
    if metadata.get("cancel"):
        return "The deployment is being cancelled."
    deadline = _deadline(metadata)
    if deadline is not None and now > deadline:
        return "The deployment has timed out."
    forward = [s for s in ordered if not s.rollback]
    failed = next((s for s in forward if s.status in FAILED_STAGE), None)
    if failed is not None:
        return f"Stage {failed.stage_id} ended {failed.status}."
    before = next((s for s in forward if s.index < stage.index and s.status not in PASSED_STAGE), None)
    return f"Stage {before.stage_id} comes first." if before is not None else ""


def _clean_worker(worker_id: str) -> str:
    worker_id = (worker_id or "").strip()[:100]
    if not worker_id:
        raise InvalidInput("worker_id is required.", field="worker_id")
    return worker_id


def _lease(lease_seconds) -> float:
    try:
        lease = float(lease_seconds or 0)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput("lease_seconds must be a number.", field="lease_seconds") from None
    if math.isnan(lease):  # min/max pass NaN through, and timedelta refuses it
        raise InvalidInput("lease_seconds must be a number.", field="lease_seconds")
    return min(max(lease, 1.0), MAX_LEASE_SECONDS)


def _locked(piped: Piped, deployment_id) -> tuple[Deployment, list[Stage]]:
    """The deployment and its stages, locked for this transaction (in that order, as everywhere)."""
    deployment = get_piped_deployment(piped, deployment_id, lock=True)
    return deployment, list(Stage.objects.select_for_update().filter(deployment=deployment).order_by("index"))


def _stage_in(stages: list[Stage], stage_id: str) -> Stage:
    stage = next((s for s in stages if s.stage_id == stage_id), None)
    if stage is None:
        raise NotFound(f"Stage {stage_id!r} not found in this deployment.")
    return stage


def _start_locked(
    deployment: Deployment, stages: list[Stage], stage: Stage, worker_id: str, lease: float
) -> dict:
    """Claim `stage` for `worker_id` and mark it RUNNING, if it may run now. Rows are locked by the caller."""
    now = timezone.now()
    answer = {"stage_id": stage.stage_id, "claimed": False, "runnable": True, "reason": ""}
    answer.update(started=False, deployment_started=False)
    reason = why_stage_cannot_start(deployment, stages, stage, now)
    held = stage.claimed_by not in ("", worker_id) and (
        stage.claim_expires_at is not None and stage.claim_expires_at >= now
    )
    if reason or held:
        answer.update(
            runnable=not reason, reason=reason or f"Stage {stage.stage_id} is held by another worker."
        )
        return answer
    claim = {
        "claimed_by": worker_id,
        "claim_expires_at": now + timedelta(seconds=lease),
        "next_check_at": None,
    }
    if stage.status == StageStatus.NOT_STARTED_YET:
        if not transition_stage(stage.pk, StageStatus.RUNNING, "", **claim):
            raise Conflict(f"Stage {stage.stage_id} changed while it was being started.")
        answer["started"] = True
        stage.status = StageStatus.RUNNING
    elif stage.claimed_by not in ("", worker_id):
        # Taken over from a worker whose lease ran out before it reported: that step died (a killed piped
        # or worker), and the stage runs again from the start. A new run: its log goes on under the next
        # retried count, so the portal shows where the run began again.
        stage.retried_count += 1
        Stage.objects.filter(pk=stage.pk).update(retried_count=stage.retried_count, **claim)
    else:
        Stage.objects.filter(pk=stage.pk).update(**claim)
    stage.claimed_by, stage.claim_expires_at, stage.next_check_at = worker_id, claim["claim_expires_at"], None
    planned = deployment.status == DeploymentStatus.PLANNED and not stage.rollback
    if planned and transition_deployment(
        deployment.pk, DeploymentStatus.RUNNING, "The deployment is running"
    ):
        answer["deployment_started"] = True
        deployment.status = DeploymentStatus.RUNNING
        _refresh_application_state(deployment, DeploymentStatus.RUNNING, "")
    answer["claimed"] = True
    return answer


def start_stage(piped: Piped, deployment_id, stage_id: str, *, worker_id: str, lease_seconds: float) -> dict:
    """Claim a stage and mark it (and a PLANNED deployment) RUNNING, when it may run now.

    Answers `{stage_id, claimed, runnable, reason, started, deployment_started}`: `runnable` is false when the
    stage may not run now (`reason` says why), `claimed` false also when another worker holds it; `started`
    is true when this call moved the stage to RUNNING (its first step).
    """
    worker_id = _clean_worker(worker_id)
    lease = _lease(lease_seconds)
    with transaction.atomic():
        deployment, stages = _locked(piped, deployment_id)
        return _start_locked(deployment, stages, _stage_in(stages, stage_id), worker_id, lease)


def report_stage_step(
    piped: Piped,
    deployment_id,
    stage_id: str,
    *,
    worker_id: str,
    blocks: list[dict] | None = None,
    metadata: dict | None = None,
    deployment_metadata: dict | None = None,
    status: str = "",
    reason: str = "",
    release: bool = False,
    next_check_at: datetime | None = None,
    start_next: dict | None = None,
) -> dict:
    """What one step of a stage produced, written in one transaction: all of it, or nothing.

    Refused (409, nothing written) when another worker holds the stage, or when `status` would move it
    backwards; a bad field is a 400 with nothing written. `start_next` (`{stage_id, lease_seconds}`) then
    claims and starts that stage as `start_stage` does, if it may run now. Sending the same report again
    does nothing more (log blocks are kept by index, metadata merges the same values, the same status is a
    no-op).
    """
    worker_id = _clean_worker(worker_id)
    rows = _log_rows(blocks or [])
    for name, value in (("metadata", metadata), ("deployment_metadata", deployment_metadata)):
        if value is not None and not isinstance(value, dict):
            raise InvalidInput(f"{name} must be an object.", field=name)
    if status and status not in StageStatus.values:
        raise InvalidInput(f"Unknown stage status {status!r}.", field="status")
    next_stage_id, next_lease = "", 0.0
    if start_next is not None:
        next_stage_id = str(start_next.get("stage_id") or "").strip()
        if not next_stage_id:
            raise InvalidInput("start_next needs a stage_id.", field="start_next.stage_id")
        next_lease = _lease(start_next.get("lease_seconds", 10))
    with transaction.atomic():
        deployment, stages = _locked(piped, deployment_id)
        stage = _stage_in(stages, stage_id)
        following = _stage_in(stages, next_stage_id) if next_stage_id else None
        if stage.claimed_by not in ("", worker_id):
            raise Conflict(f"Stage {stage_id} is held by another worker; nothing was recorded.")
        for row in rows:
            row.stage = stage
        if rows:
            StageLogBlock.objects.bulk_create(rows, ignore_conflicts=True)
        now = timezone.now()
        fields: dict = {}
        if metadata:
            stage.metadata = _merge_metadata(stage.metadata, metadata)
            fields["metadata"] = stage.metadata
        if release:
            fields.update(claimed_by="", claim_expires_at=None, next_check_at=next_check_at)
        if status and status != stage.status:
            if status in STAGE_TERMINAL:
                fields.update(claimed_by="", claim_expires_at=None, next_check_at=None)
            if not transition_stage(stage.pk, status, reason or "", **fields):
                raise Conflict(f"Stage {stage_id} is {stage.status}; it cannot go back to {status}.")
            stage.status, stage.status_reason = status, reason or ""
        else:
            if status and reason and reason != stage.status_reason:
                fields["status_reason"] = stage.status_reason = reason
            if fields:
                Stage.objects.filter(pk=stage.pk).update(updated_at=now, **fields)
        for key in ("claimed_by", "claim_expires_at", "next_check_at"):
            if key in fields:
                setattr(stage, key, fields[key])
        if deployment_metadata:
            deployment.metadata = _merge_metadata(
                deployment.metadata, deployment_metadata, "deployment_metadata"
            )
            Deployment.objects.filter(pk=deployment.pk).update(metadata=deployment.metadata, updated_at=now)
        answer = {
            "status": stage.status,
            "metadata": stage.metadata,
            "deployment_metadata": deployment.metadata,
            "received": len(rows),
            "released": bool(release or status in STAGE_TERMINAL),
            "next": None,
        }
        if following is not None:
            answer["next"] = _start_locked(deployment, stages, following, worker_id, next_lease)
    return answer


# --- Live state and drift detection (ECS progressive delivery) ------------------------------------------
# The piped reports what runs for an application (a JSON snapshot) and whether it matches Git (a drift
# result with a unified diff). Both are kept on ApplicationLiveState; a drift result also becomes the
# application's sync state unless a deployment runs or the config is invalid.

MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024
INLINE_SNAPSHOT_BYTES = 64 * 1024
MAX_DRIFT_DIFF_CHARS = 100_000
DRIFT_STATES = (SyncStatus.SYNCED, SyncStatus.OUT_OF_SYNC)


def live_state_key(app: Application) -> str:
    return f"livestate/{app.project_id}/{app.id}.json"


def report_live_state(piped: Piped, app: Application, snapshot: dict, collected_at=None):
    """Store the application's live state snapshot (in the filestore when it is large)."""
    import json

    from apps.applications.models import ApplicationLiveState
    from apps.ops import filestore

    if not isinstance(snapshot, dict):
        raise InvalidInput("snapshot must be an object.", field="snapshot")
    size = len(json.dumps(snapshot, default=str))
    if size > MAX_SNAPSHOT_BYTES:
        raise InvalidInput(
            f"The live state snapshot is {size} bytes; at most {MAX_SNAPSHOT_BYTES} are accepted.",
            field="snapshot",
        )
    key, inline = "", snapshot
    if size > INLINE_SNAPSHOT_BYTES:
        key, inline = live_state_key(app), {}
        filestore.save_json(key, snapshot)
    now = timezone.now()
    fields = {"snapshot": inline, "snapshot_key": key, "collected_at": collected_at or now, "updated_at": now}
    for attempt in range(2):
        try:
            with transaction.atomic():
                row, _ = ApplicationLiveState.objects.update_or_create(application=app, defaults=fields)
            return row
        except IntegrityError:  # two first reports at once: the other one created the row
            if attempt:
                raise
    raise AssertionError("unreachable")


def report_application_drift(
    piped: Piped, app: Application, *, status: str, commit: str = "", summary: str = "", diff: str = ""
) -> tuple[str, bool]:
    """Record a drift check. Answers (the application's sync status now, whether the result became it)."""
    from apps.applications.models import ApplicationLiveState

    if status not in DRIFT_STATES:
        raise InvalidInput("A drift result is SYNCED or OUT_OF_SYNC.", field="status")
    diff = (diff or "")[:MAX_DRIFT_DIFF_CHARS]
    summary = (summary or "")[:300]
    commit = (commit or "")[:64]
    now = timezone.now()
    with transaction.atomic():
        app = Application.objects.select_for_update().get(pk=app.pk)
        row, _ = ApplicationLiveState.objects.get_or_create(application=app)
        if (row.drift_status, row.drift_diff) != (status, diff):
            row.drift_changed_at = now
        row.drift_status, row.drift_summary, row.drift_diff = status, summary, diff
        row.drift_commit, row.drift_checked_at = commit, now
        row.save(
            update_fields=[
                "drift_status",
                "drift_summary",
                "drift_diff",
                "drift_commit",
                "drift_checked_at",
                "drift_changed_at",
            ]
        )
        # A running deployment or a broken config says more than a drift check made just before it.
        if app.deploying or app.sync_status in (SyncStatus.DEPLOYING, SyncStatus.INVALID_CONFIG):
            return app.sync_status, False
        short = summary if status == SyncStatus.OUT_OF_SYNC else f"The live state matches Git at {commit[:7]}"
        Application.objects.filter(pk=app.pk).update(
            sync_status=status, sync_short_reason=short[:300], sync_reason=diff, sync_updated_at=now
        )
    return status, True
