"""What the Celery tasks of a piped do: plan a deployment, run one step of a stage, move a deployment on.

A step starts with one call that claims the stage (a short lease, renewed by a thread while the step runs)
and marks it RUNNING, which the control plane grants only when the stage may run now; it ends with one call
that records its log lines, metadata, outcome and the claim's release together. Losing the claim, seeing
the stage end elsewhere (a cancel) or failing to renew the claim before its lease runs out sets
`ctx.stop`: the step then changes nothing more in the cloud (its provider refuses) and stops reporting. A finished step moves the
deployment on at once (`advance`); in a Celery task (`chain=True`) the next stage is even started by the
same call that ends this one and runs in the same task, with no queue or scheduler tick in between.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from datetime import UTC, datetime, timedelta

from apps.notifications import hooks as notify
from apps.ops.logging import log_context

from .client import ApiError
from .config import worker_name
from .deploysource import SourceError
from .executors import FAILURE, SKIPPED, Continue, Done, StageContext, StageTakenOver, executor_for
from .filematch import PatternMatcher
from .gitrepo import GitError
from .leftovers import note_left_as_they_are
from .logs import StageLogger
from .planner import PlanError, plan, versions_of
from .platforms import ProviderError
from .preview import planned_preview
from .reconcile import DEPLOYMENT_TERMINAL, NOT_STARTED_YET, PENDING, RUNNING, Action, next_actions

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


def plan_deployment(runtime, deployment_id: str, *, chain: bool = False) -> None:
    """Plan a PENDING deployment; with `chain`, its first stage then runs in this task."""
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
    first = advance(runtime, planned, run_inline=chain and not _stopping(runtime))
    if first:
        run_stage(runtime, deployment_id, first, chain=True)


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


def advance(runtime, deployment: dict | str, *, dispatch=None, run_inline: bool = False) -> str | None:
    """Do what the deployment needs next; repeat while that changes its state (a few rounds at most).

    Without `dispatch` (a worker after a step) the next stage is enqueued at once — or, with `run_inline`,
    its id is answered for the caller to run it — and planning is left to the scheduler, which alone sees
    every deployment of an application. `deployment` is its id, or what the control plane just answered.
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
            if action.kind == "run" and run_inline:
                return action.stage_id
            moved = apply(runtime, deployment, action, dispatch=dispatch)
            if moved and action.kind == "status" and action.status in DEPLOYMENT_TERMINAL:
                return None
            changed = moved or changed
        if not changed:
            return None
        deployment = deployment["id"]
    return None


def _stopping(runtime) -> bool:
    stop = getattr(runtime, "stop_event", None)
    return bool(stop is not None and stop.is_set())


# --- One step of a stage --------------------------------------------------------------------------------


class ClaimRenewer(threading.Thread):
    """Keeps our claim alive while a step runs; sets `ctx.stop` when the claim is lost or the stage ended.

    Each renewal that the control plane grants moves `ctx.claim_valid_until`; one that fails (no answer)
    does not, so a worker cut off from the control plane stops trusting its claim before another worker
    can take the stage over.
    """

    def __init__(self, client, ctx: StageContext, lease: float):
        super().__init__(name=f"claim-{ctx.stage_id}", daemon=True)
        self.client, self.ctx, self.lease = client, ctx, lease
        self._done = threading.Event()

    def run(self) -> None:
        ctx = self.ctx
        while not self._done.wait(max(self.lease / 3, 0.2)):
            sent = time.monotonic()
            try:
                answer = self.client.renew_stage_claim(
                    ctx.deployment_id, ctx.stage_id, ctx.worker_id, self.lease
                )
            except ApiError as exc:
                logger.warning("renewing the claim of %s failed: %s", ctx.stage_id, exc)
                ctx.claim_lost()  # stops the step once the lease may have run out
                continue
            if not answer["claimed"] or answer["status"] not in (NOT_STARTED_YET, RUNNING):
                ctx.stop.set()
                return
            ctx.claim_granted(sent, self.lease)

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


def run_stage(runtime, deployment_id: str, stage_id: str, *, chain: bool = False) -> None:
    """One step of a stage. With `chain` (the step task), the stages that follow run on in this task as long
    as each ends within its step; a wait (Continue) hands the stage back to the scheduler."""
    worker_id = f"{worker_name()}/{uuid.uuid4().hex[:8]}"
    lease = runtime.config.knobs.claim_lease
    answer = _start(runtime.client, deployment_id, stage_id, worker_id, lease)
    while answer is not None:
        # Each step's log lines carry its own stage id, also when a task runs several stages.
        with log_context(deployment_id=deployment_id, stage_id=answer["stage_id"]):
            answer = _step(runtime, deployment_id, answer, worker_id, lease, chain=chain)


def _start(client, deployment_id: str, stage_id: str, worker_id: str, lease: float) -> dict:
    """The start call's answer, with when it was sent (`sent_at`, time.monotonic()): the lease counts from it."""
    sent = time.monotonic()
    return {**client.start_stage(deployment_id, stage_id, worker_id, lease), "sent_at": sent}


def _step(runtime, deployment_id: str, started: dict, worker_id: str, lease: float, *, chain: bool):
    """Run the stage `started` claimed (a start answer); answers the next start answer to run, or None."""
    client = runtime.client
    deployment, stage_id = started["deployment"], started["stage_id"]
    if not started["claimed"]:
        # It may not run now, or another worker holds it: whoever moves the deployment on sees to it.
        return None
    stage = _find_stage(deployment, stage_id)
    actions = next_actions(deployment, _now())
    if stage is None or not any(a.kind == "run" and a.stage_id == stage_id for a in actions):
        # What the control plane granted is not what this piped would do (clocks apart at the deadline):
        # give the stage back; the scheduler's next look decides.
        _release(client, deployment_id, stage_id, worker_id)
        return None
    if started["deployment_started"]:
        runtime.on_deployment_status(deployment, RUNNING, "")
    if started["started"]:
        notify.stage_status(runtime, deployment, stage, RUNNING)
    # Its first step: this call started it, or it has no log line yet (a retried start whose first answer was
    # lost, a restart before the first step reported anything); skipOn decides the same way every time.
    first_step = bool(started["started"]) or not stage.get("next_log_index")
    stage_logger = StageLogger(
        client,
        deployment_id,
        stage_id,
        retried_count=stage.get("retried_count") or 0,
        start_index=stage.get("next_log_index") or 0,
    )
    ctx = StageContext(
        runtime=runtime, deployment=deployment, stage=stage, logger=stage_logger, worker_id=worker_id
    )
    ctx.claim_granted(started.get("sent_at", time.monotonic()), lease)
    ACTIVE_STEPS.add(ctx)
    renewer = ClaimRenewer(client, ctx, lease)
    renewer.start()
    result: Done | Continue | None = None
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
    except StageTakenOver:
        ctx.stop.set()
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
        stage_logger.close(flush=False)
    chain = chain and not _stopping(runtime)
    if ctx.stop.is_set() or result is None:
        # The stage was cancelled (or taken over) while this step ran: whoever did that reports it. Our log
        # lines and notes still go, unless another worker holds the stage now.
        _end_report(ctx, worker_id)
        advance(runtime, deployment_id)
        return None
    if isinstance(result, Continue):
        _end_report(ctx, worker_id, next_check_at=_now() + timedelta(seconds=max(result.after, 0.05)))
        return None
    following = _next_stage(ctx.deployment, stage_id, result.status) if chain else None
    answer = _end_report(ctx, worker_id, result=result, start_next=following, lease=lease)
    if answer is None:
        # The stage ended otherwise meanwhile (a cancel reported it) or another worker holds it.
        advance(runtime, deployment_id)
        return None
    notify.stage_status(runtime, ctx.deployment, stage, answer["status"], result.reason)
    after = answer.get("next")
    if after is not None and after["claimed"]:
        return {**after, "deployment": answer["deployment"], "sent_at": answer["sent_at"]}
    upcoming = advance(runtime, answer["deployment"], run_inline=chain)
    if upcoming:
        return _start(client, deployment_id, upcoming, worker_id, lease)
    return None


def _next_stage(deployment: dict, stage_id: str, status: str) -> str | None:
    """The stage this piped would run once `stage_id` ends with `status`, judged on what it knows now; the
    control plane starts it only if it may indeed run (a cancel or another outcome since is seen there)."""
    ended = {
        **deployment,
        "stages": [{**s, "status": status} if s["id"] == stage_id else s for s in deployment["stages"]],
    }
    actions = next_actions(ended, _now())
    if len(actions) == 1 and actions[0].kind == "run":
        return actions[0].stage_id
    return None


def _end_report(
    ctx: StageContext,
    worker_id: str,
    *,
    result: Done | None = None,
    next_check_at: datetime | None = None,
    start_next: str | None = None,
    lease: float = 0,
) -> dict | None:
    """The step's last call: its log lines, notes, outcome (or when to look again), the claim's release and
    maybe the next stage's start, in one report. None when the control plane refused it (409): the stage
    ended otherwise meanwhile or another worker holds it; what is left of the log is sent on its own."""
    client = ctx.client
    stage_notes, deployment_notes = ctx.take_notes()
    blocks = ctx.logger.take()
    body: dict = {
        "blocks": blocks,
        "metadata": stage_notes or None,
        "deployment_metadata": deployment_notes or None,
        "release": True,
        "next_check_at": next_check_at,
    }
    if result is not None:
        body.update(status=result.status, reason=result.reason, return_deployment=True)
    if start_next:
        body["start_next"] = {"stage_id": start_next, "lease_seconds": lease}
    sent = time.monotonic()
    try:
        answer = client.report_stage_step(ctx.deployment_id, ctx.stage_id, worker_id=worker_id, **body)
    except ApiError as exc:
        if exc.status == 400 and (stage_notes or deployment_notes):
            # What the step noted was refused (too large, …): the stage fails and says so, as a refused save
            # inside the step would have made it fail (a stage someone else ended just gets its log).
            reason = f"The control plane refused what the step recorded: {exc.detail}"
            ctx.logger.restore(blocks)
            ctx.logger.error(reason)
            failed = None if ctx.stop.is_set() else Done(FAILURE, reason)
            return _end_report(ctx, worker_id, result=failed, lease=lease)
        if not exc.conflict:
            ctx.logger.restore(blocks)
            raise
        if blocks:
            _quietly(lambda: client.report_stage_logs(ctx.deployment_id, ctx.stage_id, blocks))
        _release(client, ctx.deployment_id, ctx.stage_id, worker_id)
        return None
    ctx.stage["metadata"] = answer["metadata"]
    ctx.deployment["metadata"] = answer["deployment_metadata"]
    ctx.recorded()
    return {**answer, "sent_at": sent}


def _quietly(call) -> None:
    try:
        call()
    except ApiError as exc:
        logger.warning("%s", exc)


def _release(
    client, deployment_id: str, stage_id: str, worker_id: str, next_check_at: datetime | None = None
) -> None:
    try:
        client.release_stage_claim(deployment_id, stage_id, worker_id, next_check_at)
    except ApiError as exc:
        logger.warning("releasing the claim of %s failed: %s", stage_id, exc)
