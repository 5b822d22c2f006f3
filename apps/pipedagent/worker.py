"""What the Celery tasks of a piped do: plan a deployment, run one step of a stage, move a deployment on.

A step first checks that the stage is what the deployment needs now, then claims it (a short lease,
renewed by a thread while the step runs). Losing the claim or seeing the stage end elsewhere (a cancel)
sets `ctx.stop`, and the step stops reporting. A finished step moves the deployment on at once
(`advance`) instead of waiting for the scheduler's next tick.
"""

from __future__ import annotations

import logging
import threading
import uuid
import weakref
from datetime import UTC, datetime, timedelta

from apps.notifications import hooks as notify

from .client import ApiError
from .config import worker_name
from .deploysource import SourceError
from .executors import FAILURE, SKIPPED, Continue, Done, StageContext, executor_for
from .filematch import PatternMatcher
from .gitrepo import GitError
from .leftovers import note_left_as_they_are
from .logs import StageLogger
from .planner import PlanError, plan, versions_of
from .platforms import ProviderError
from .preview import planned_preview
from .reconcile import NOT_STARTED_YET, PENDING, PLANNED, RUNNING, Action, next_actions

logger = logging.getLogger(__name__)

# The steps running in this process, so that a shutdown can ask them to stop (a script is killed; the
# stage is released unreported and runs again elsewhere).
ACTIVE_STEPS: weakref.WeakSet[StageContext] = weakref.WeakSet()


def stop_running_steps() -> None:
    for ctx in list(ACTIVE_STEPS):
        ctx.stop.set()


def _now() -> datetime:
    return datetime.now(UTC)


def _find_stage(deployment: dict, stage_id: str) -> dict | None:
    return next((s for s in deployment.get("stages") or [] if s["id"] == stage_id), None)


# --- Planning -------------------------------------------------------------------------------------------


def plan_deployment(runtime, deployment_id: str) -> None:
    client = runtime.client
    deployment = client.get_deployment(deployment_id)
    if deployment["status"] != PENDING:
        return
    try:
        source = runtime.deploy_source(deployment, deployment["trigger"]["commit"]["hash"])
        spec = source.spec
        if spec.unsupported_reason:
            raise PlanError(spec.unsupported_reason)
        target_versions = versions_of(source.ecs_definitions().task) if deployment["kind"] == "ECS" else []
        running = client.most_recent_successful_deployment(deployment["application_id"])
        running_commit = running["trigger"]["commit"]["hash"] if running else ""
        running_versions = None
        if running:
            running_versions = running.get("versions") or None
            if running_versions is None and deployment["kind"] == "ECS":
                try:
                    running_source = runtime.deploy_source(deployment, running_commit)
                    running_versions = versions_of(running_source.ecs_definitions().task)
                except (SourceError, GitError):
                    running_versions = None
        result = plan(
            kind=deployment["kind"],
            spec=spec,
            trigger=deployment["trigger"],
            target_versions=target_versions,
            running_versions=running_versions,
            running_commit=running_commit,
        )
    except (SourceError, PlanError, GitError) as exc:
        reason = f"Could not plan: {exc}"
        if _report(lambda: client.report_deployment_status(deployment_id, "FAILURE", reason)):
            runtime.on_deployment_status(deployment, "FAILURE", reason)
        return
    timeout = spec.timeout
    metadata = {
        "deadline": (_now() + timeout).isoformat(),
        "timeout": _duration_text(timeout),
    }
    # The portal's plan preview: definition diffs and the planned stages (apps/pipedagent/preview.py).
    metadata["plan_preview"] = planned_preview(runtime, deployment, result, running_commit)
    try:
        planned = client.report_planned(
            deployment_id,
            sync_strategy=result.sync_strategy,
            summary=result.summary,
            versions=result.versions,
            running_commit_hash=running_commit,
            stages=result.stages,
            metadata=metadata,
        )
    except ApiError as exc:
        if exc.conflict:
            return
        raise
    notify.deployment_planned(runtime, planned)
    advance(runtime, deployment_id)


def _duration_text(value: timedelta) -> str:
    from apps.pipelineconfig import format_duration

    return format_duration(value)


# --- Moving a deployment on -----------------------------------------------------------------------------


def _report(call) -> bool:
    """Run a report; a 409 (someone else already moved it) is not an error here."""
    try:
        call()
        return True
    except ApiError as exc:
        if exc.conflict:
            return False
        raise


def apply(runtime, deployment: dict, action: Action, *, dispatch) -> bool:
    """Carry out one action. `dispatch(kind, deployment, stage_id)` enqueues work. True if state changed."""
    client = runtime.client
    if action.kind in ("plan", "run"):
        dispatch(action.kind, deployment, action.stage_id)
        return False
    if action.kind == "stage_status":
        changed = _report(
            lambda: client.report_stage_status(
                deployment["id"], action.stage_id, action.status, action.reason
            )
        )
        if changed:
            stage = _find_stage(deployment, action.stage_id)
            notify.stage_status(runtime, deployment, stage or {}, action.status, action.reason)
        return changed
    if action.kind == "status":
        if action.metadata:
            client.save_deployment_metadata(deployment["id"], action.metadata)
        changed = _report(
            lambda: client.report_deployment_status(deployment["id"], action.status, action.reason)
        )
        if changed:
            note_left_as_they_are(runtime, deployment, action.reason)
            runtime.on_deployment_status(deployment, action.status, action.reason)
        return changed
    return False


def advance(runtime, deployment: dict | str, *, dispatch=None) -> None:
    """Do what the deployment needs next; repeat while that changes its state (a few rounds at most).

    Without `dispatch` (a worker after a step) the next stage is enqueued at once, and planning is left to
    the scheduler, which alone sees every deployment of an application.
    """
    from_worker = dispatch is None
    dispatch = dispatch or runtime.dispatch_now
    for _ in range(4):
        if isinstance(deployment, str):
            deployment = runtime.client.get_deployment(deployment)
        changed = False
        for action in next_actions(deployment, _now()):
            if action.kind == "plan" and from_worker:
                continue
            changed = apply(runtime, deployment, action, dispatch=dispatch) or changed
        if not changed:
            return
        deployment = deployment["id"]


# --- One step of a stage --------------------------------------------------------------------------------


class ClaimRenewer(threading.Thread):
    """Keeps our claim alive while a step runs; sets `stop` when the claim is lost or the stage ended."""

    def __init__(
        self, client, deployment_id: str, stage_id: str, worker_id: str, lease: float, stop: threading.Event
    ):
        super().__init__(name=f"claim-{stage_id}", daemon=True)
        self.client, self.deployment_id, self.stage_id = client, deployment_id, stage_id
        self.worker_id, self.lease, self.stop_flag = worker_id, lease, stop
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(max(self.lease / 3, 0.2)):
            try:
                answer = self.client.renew_stage_claim(
                    self.deployment_id, self.stage_id, self.worker_id, self.lease
                )
            except ApiError as exc:
                logger.warning("renewing the claim of %s failed: %s", self.stage_id, exc)
                continue
            if not answer["claimed"] or answer["status"] not in (NOT_STARTED_YET, RUNNING):
                self.stop_flag.set()
                return

    def finish(self) -> None:
        self._done.set()
        self.join(5)


def skip_reason(ctx: StageContext) -> str | None:
    """PipeCD's `skipOn`: skip when the commit message has a listed prefix, or every changed file matches."""
    options = ctx.options
    skip_on = getattr(options, "skip_on", None)
    if skip_on is None:
        return None
    message = ctx.commit.get("message") or ""
    for prefix in skip_on.commit_message_prefixes or []:
        if message.startswith(prefix):
            return f"Skipped because the commit message starts with {prefix!r}"
    if skip_on.paths and ctx.deployment.get("running_commit_hash"):
        repo = ctx.target.repo
        files = repo.changed_files(ctx.deployment["running_commit_hash"], ctx.commit["hash"])
        matcher = PatternMatcher(list(skip_on.paths))
        if files and all(matcher.matches(f) for f in files):
            return "Skipped because every changed file matches skipOn.paths"
    return None


def run_stage(runtime, deployment_id: str, stage_id: str) -> None:
    client = runtime.client
    deployment = client.get_deployment(deployment_id)
    actions = next_actions(deployment, _now())
    if not any(a.kind == "run" and a.stage_id == stage_id for a in actions):
        return
    stage = _find_stage(deployment, stage_id)
    if stage is None:
        return
    worker_id = f"{worker_name()}/{uuid.uuid4().hex[:8]}"
    lease = runtime.config.knobs.claim_lease
    claim = client.claim_stage(deployment_id, stage_id, worker_id, lease)
    if not claim["claimed"]:
        return
    if deployment["status"] == PLANNED:
        _report(lambda: client.report_deployment_status(deployment_id, RUNNING, "The deployment is running"))
        deployment["status"] = RUNNING
        runtime.on_deployment_status(deployment, RUNNING, "")
    first_step = stage["status"] == NOT_STARTED_YET
    if first_step:
        client.report_stage_status(deployment_id, stage_id, RUNNING, "")
        stage["status"] = RUNNING
        notify.stage_status(runtime, deployment, stage, RUNNING)
    stage_logger = StageLogger(
        client,
        deployment_id,
        stage_id,
        retried_count=stage.get("retried_count") or 0,
        start_index=stage.get("next_log_index") or 0,
    )
    ctx = StageContext(runtime=runtime, deployment=deployment, stage=stage, logger=stage_logger)
    ACTIVE_STEPS.add(ctx)
    renewer = ClaimRenewer(client, deployment_id, stage_id, worker_id, lease, ctx.stop)
    renewer.start()
    result: Done | Continue
    try:
        if first_step and not stage.get("rollback"):
            stage_logger.info(f"Starting stage {stage['name']} ({stage_id}).")
        executor = executor_for(stage["name"], deployment["kind"])
        if executor is None:
            result = Done(
                FAILURE, f"Stage {stage['name']} is not supported for {deployment['kind']} applications yet"
            )
            stage_logger.error(result.reason)
        else:
            reason = skip_reason(ctx) if first_step and not stage.get("rollback") else None
            if reason:
                stage_logger.info(reason)
                result = Done(SKIPPED, reason)
            else:
                result = executor.execute(ctx)
    except (SourceError, GitError, ProviderError) as exc:
        stage_logger.error(str(exc))
        result = Done(FAILURE, str(exc))
    except Exception as exc:
        logger.exception("stage %s of deployment %s failed", stage_id, deployment_id)
        stage_logger.error(f"{type(exc).__name__}: {exc}")
        result = Done(FAILURE, f"{type(exc).__name__}: {exc}")
    finally:
        ACTIVE_STEPS.discard(ctx)
        renewer.finish()
        stage_logger.close()
    if ctx.stop.is_set():
        # The stage was cancelled (or taken over) while this step ran: whoever did that reports it.
        _release(client, deployment_id, stage_id, worker_id)
        advance(runtime, deployment_id)
        return
    if isinstance(result, Continue):
        _release(
            client, deployment_id, stage_id, worker_id, _now() + timedelta(seconds=max(result.after, 0.05))
        )
        return
    if _report(lambda: client.report_stage_status(deployment_id, stage_id, result.status, result.reason)):
        notify.stage_status(runtime, deployment, stage, result.status, result.reason)
    _release(client, deployment_id, stage_id, worker_id)
    advance(runtime, deployment_id)


def _release(
    client, deployment_id: str, stage_id: str, worker_id: str, next_check_at: datetime | None = None
) -> None:
    try:
        client.release_stage_claim(deployment_id, stage_id, worker_id, next_check_at)
    except ApiError as exc:
        logger.warning("releasing the claim of %s failed: %s", stage_id, exc)
