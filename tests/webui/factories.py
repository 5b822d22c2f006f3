"""Records the portal shows, made the way the piped would leave them (ORM rows, as the piped API writes)."""

import uuid
from datetime import timedelta

from django.utils import timezone

from apps.applications.models import Application
from apps.deployments.choices import DeploymentStatus, LogSeverity, StageStatus, SyncStrategy
from apps.deployments.models import Deployment, Stage, StageLogBlock
from apps.pipeds.models import Piped

REPOSITORIES = [
    {"repo_id": "manifests", "remote": "git@github.com:example/manifests.git", "branch": "main"},
    {"repo_id": "infra", "remote": "https://github.com/example/infra.git", "branch": "main"},
]
PLATFORM_PROVIDERS = [{"name": "ecs-dev", "type": "ECS"}]


def report_piped(piped: Piped, *, online: bool = True) -> Piped:
    """What a piped reports when it starts and heartbeats."""
    now = timezone.now()
    Piped.objects.filter(pk=piped.pk).update(
        version="0.1.0",
        repositories=REPOSITORIES,
        platform_providers=PLATFORM_PROVIDERS,
        config="apiVersion: pipecd.dev/v1beta1\nkind: Piped\nspec:\n  pipedKeyData: '******'\n",
        started_at=now - timedelta(hours=1),
        last_heartbeat_at=now if online else now - timedelta(hours=1),
        repository_status={"manifests": {"last_fetch_at": now.isoformat(), "head": "a" * 40, "error": ""}},
    )
    piped.refresh_from_db()
    return piped


_REASONS = {
    StageStatus.FAILURE: "ECS task set did not become steady in time",
    StageStatus.CANCELLED: "Cancelled by a person",
}


def _stage_status(status: str, index: int, at: int | None, forward: int, is_rollback: bool) -> str:
    terminal = {
        DeploymentStatus.FAILURE: StageStatus.FAILURE,
        DeploymentStatus.CANCELLED: StageStatus.CANCELLED,
    }
    if is_rollback:
        if status == DeploymentStatus.ROLLING_BACK:
            return StageStatus.RUNNING
        return StageStatus.SUCCESS if status in terminal else StageStatus.NOT_STARTED_YET
    if status == DeploymentStatus.SUCCESS:
        return StageStatus.SUCCESS
    if status in terminal or status == DeploymentStatus.ROLLING_BACK:
        stop = at if at is not None else forward - 1
        if index < stop:
            return StageStatus.SUCCESS
        if index == stop:
            return terminal.get(status, StageStatus.FAILURE)
        return StageStatus.NOT_STARTED_YET
    if at is None or index > at:
        return StageStatus.NOT_STARTED_YET
    return StageStatus.SUCCESS if index < at else StageStatus.RUNNING


# (stage_id, name, description) of the seed's canary pipeline.
CANARY_PIPELINE = [
    ("canary-rollout", "ECS_CANARY_ROLLOUT", "scale 20%"),
    ("canary-traffic", "ECS_TRAFFIC_ROUTING", "canary 10%"),
    ("approve", "WAIT_APPROVAL", "promote to 100%"),
    ("primary-rollout", "ECS_PRIMARY_ROLLOUT", ""),
    ("primary-traffic", "ECS_TRAFFIC_ROUTING", "primary 100%"),
    ("canary-clean", "ECS_CANARY_CLEAN", ""),
]


def make_deployment(
    app: Application,
    *,
    status: str = DeploymentStatus.RUNNING,
    stages: list[tuple[str, str, str]] | None = None,
    running_index: int | None = None,
    tag: str = "v1.4.0",
    approvers: list[str] | None = None,
    min_approvers: int = 1,
    approved_by: list[str] | None = None,
    log_lines: int = 3,
    created_ago: timedelta = timedelta(minutes=7),
    labels: dict | None = None,
    rollback: bool = False,
) -> Deployment:
    """A deployment of `app`: stages before `running_index` succeeded and the one at it runs — or, for a
    failed or cancelled deployment, stopped there. `rollback` adds PipeCD's hidden ROLLBACK stage."""
    now = timezone.now()
    created = now - created_ago
    completed = status in (DeploymentStatus.SUCCESS, DeploymentStatus.FAILURE, DeploymentStatus.CANCELLED)
    commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    deployment = Deployment.objects.create(
        project_id=app.project_id,
        application=app,
        piped_id=app.piped_id,
        application_name=app.name,
        kind=app.kind,
        platform_provider=app.platform_provider,
        labels=labels if labels is not None else dict(app.labels),
        commit_hash=commit,
        commit_message=f"Release {tag}\n\nBump the image.",
        commit_author="dana",
        commit_branch="main",
        commit_url=f"https://github.com/example/manifests/commit/{commit}",
        triggered_at=created,
        sync_strategy=SyncStrategy.PIPELINE,
        strategy_summary="Sync progressively with the specified pipeline",
        versions=[{"name": app.name, "version": tag, "url": f"registry.example.com/{app.name}:{tag}"}],
        status=status,
        status_reason="The deployment is running" if not completed else f"Deployment {status.lower()}",
        completed_at=created + timedelta(minutes=4) if completed else None,
    )
    Deployment.objects.filter(pk=deployment.pk).update(created_at=created)
    deployment.refresh_from_db()
    plan = list(stages if stages is not None else CANARY_PIPELINE)
    if rollback:
        plan.append(("rollback", "ROLLBACK", "Roll back to the last successful version"))
    for index, (stage_id, name, desc) in enumerate(plan):
        is_rollback = name == "ROLLBACK"
        stage_status = _stage_status(status, index, running_index, len(plan) - int(rollback), is_rollback)
        started = (
            created + timedelta(seconds=30 * index) if stage_status != StageStatus.NOT_STARTED_YET else None
        )
        waiting = name == "WAIT_APPROVAL" and stage_status == StageStatus.RUNNING
        stage = Stage.objects.create(
            deployment=deployment,
            stage_id=stage_id,
            name=name,
            desc=desc,
            index=index,
            visible=not is_rollback,
            rollback=is_rollback,
            status=stage_status,
            status_reason="Waiting for an approval" if waiting else _REASONS.get(stage_status, ""),
            authorized_approvers=(approvers or []) if name == "WAIT_APPROVAL" else [],
            min_approver_num=min_approvers if name == "WAIT_APPROVAL" else 1,
            metadata={"approved_by": approved_by or []} if name == "WAIT_APPROVAL" else {},
            started_at=started,
            completed_at=started + timedelta(seconds=25)
            if started and stage_status != StageStatus.RUNNING
            else None,
        )
        if started:
            for i in range(log_lines):
                last = i == log_lines - 1
                severity = LogSeverity.INFO
                if last and stage_status == StageStatus.SUCCESS:
                    severity = LogSeverity.SUCCESS
                elif last and stage_status == StageStatus.FAILURE:
                    severity = LogSeverity.ERROR
                StageLogBlock.objects.create(
                    stage=stage,
                    index=i,
                    severity=severity,
                    log=f"{name}: step {i + 1} of {log_lines}"
                    if severity != LogSeverity.ERROR
                    else f"{name}: task set did not become steady within 10m (2 of 4 tasks unhealthy)",
                    created_at=started + timedelta(seconds=i),
                )
    fields = {"most_recent_deployment": deployment}
    if status == DeploymentStatus.SUCCESS:
        fields["most_recent_successful_deployment"] = deployment
    Application.objects.filter(pk=app.pk).update(**fields)
    return deployment


def suggestion(repo_id: str, path: str, name: str, **extra) -> dict:
    """An app config the piped found in Git that no application is registered for, as it reports one."""
    return {
        "repo_id": repo_id,
        "path": path,
        "config_filename": "app.pipecd.yaml",
        "name": name,
        "kind": "ECS",
        "labels": {"env": "dev", "team": "web"},
        "description": f"The {name} service",
        **extra,
    }


def report_suggestions(piped: Piped, suggestions: list[dict]) -> Piped:
    Piped.objects.filter(pk=piped.pk).update(unregistered_apps=suggestions)
    piped.refresh_from_db()
    return piped


def report_repository_status(piped: Piped, statuses: dict[str, dict]) -> Piped:
    Piped.objects.filter(pk=piped.pk).update(repository_status=statuses)
    piped.refresh_from_db()
    return piped


def append_log(
    stage: Stage, count: int, *, run: int = 0, start: int | None = None, text: str = "line"
) -> None:
    """`count` more log blocks of one run of the stage, as the piped appends them (one INSERT)."""
    if start is None:
        last = StageLogBlock.objects.filter(stage=stage, retried_count=run).order_by("-index").first()
        start = last.index + 1 if last else 0
    now = timezone.now()
    StageLogBlock.objects.bulk_create(
        StageLogBlock(
            stage=stage,
            retried_count=run,
            index=start + i,
            severity=LogSeverity.INFO,
            log=f"{text} {start + i}",
            created_at=now,
        )
        for i in range(count)
    )
