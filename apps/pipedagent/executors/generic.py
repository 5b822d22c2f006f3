"""The stages every application kind has: WAIT, WAIT_APPROVAL, SCRIPT_RUN (+ its rollback), ANALYSIS."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from datetime import timedelta

from apps.core.times import format_seconds
from apps.core.times import read_time as parse_time
from apps.notifications import hooks as notify

from . import (
    FAILURE,
    SKIPPED,
    SUCCESS,
    Continue,
    Done,
    StageContext,
    StageExecutor,
    register,
)


def _seconds(value, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


@register
class Wait(StageExecutor):
    """Hold the pipeline for `duration`. The start time is kept in the stage metadata, so a restarted piped
    waits only for what is left; a SKIP_STAGE command ends the wait at once."""

    name = "WAIT"

    def execute(self, ctx: StageContext) -> Done | Continue:
        duration = _seconds(getattr(ctx.options, "duration", None), 60.0)
        if ctx.skip_requested_by:
            ctx.logger.info(f"Skipped by {ctx.skip_requested_by}.")
            return Done(SKIPPED, f"Skipped by {ctx.skip_requested_by}")
        started = parse_time(ctx.metadata.get("wait_started_at"))
        now = ctx.now()
        if started is None:
            started = now
            ctx.note_stage_metadata(wait_started_at=now.isoformat())
            ctx.logger.info(f"Waiting for {format_seconds(duration)}...")
        remaining = (started + timedelta(seconds=duration) - now).total_seconds()
        if remaining <= 0:
            ctx.logger.success(f"Waited for {format_seconds(duration)}.")
            return Done(SUCCESS, f"Waited for {format_seconds(duration)}")
        return Continue(min(remaining, ctx.knobs.stage_tick), f"{format_seconds(remaining)} left")


@register
class WaitApproval(StageExecutor):
    """Wait until `minApproverNum` distinct people approved (among `approvers` when listed), or time out.

    The scheduler records each valid APPROVE_STAGE command in the stage metadata `approved_by` (refusing an
    unlisted approver and a second approval by the same person) and wakes this stage at once.
    """

    name = "WAIT_APPROVAL"

    def execute(self, ctx: StageContext) -> Done | Continue:
        options = ctx.options
        timeout = _seconds(getattr(options, "timeout", None), 6 * 3600.0)
        needed = max(int(ctx.stage.get("min_approver_num") or 1), 1)
        approvers = list(ctx.stage.get("authorized_approvers") or [])
        now = ctx.now()
        started = parse_time(ctx.metadata.get("approval_started_at"))
        if started is None:
            started = now
            ctx.note_stage_metadata(approval_started_at=now.isoformat())
            who = f" (approvers: {', '.join(approvers)})" if approvers else ""
            plural = "users" if needed > 1 else "user"
            ctx.logger.info(f"Waiting for approval from at least {needed} {plural}{who}...")
            # Announced once the start time is recorded: a restart before that announces it again, never twice.
            ctx.when_recorded(lambda: notify.approval_waiting(ctx, started, timeout))
        approved = list(dict.fromkeys(ctx.metadata.get("approved_by") or []))
        logged = int(ctx.metadata.get("approvals_logged") or 0)
        if len(approved) > logged:
            for person in approved[logged:]:
                ctx.logger.info(f"Got approval from {person}.")
            if len(approved) < needed:
                ctx.logger.info(f"Waiting for {needed - len(approved)} more approval(s)...")
            ctx.note_stage_metadata(approvals_logged=len(approved))
        if len(approved) >= needed:
            ctx.logger.success(f"This stage has been approved by {', '.join(approved)}.")
            return Done(SUCCESS, f"Approved by {', '.join(approved)}")
        remaining = (started + timedelta(seconds=timeout) - now).total_seconds()
        if remaining <= 0:
            message = (
                f"Timed out after {format_seconds(timeout)} waiting for approval "
                f"({len(approved)} of {needed} approvals received)"
            )
            ctx.logger.error(message + ".")
            return Done(FAILURE, message)
        remind_in = notify.approval_reminder(ctx, started, timeout)
        return Continue(
            min(remaining, ctx.knobs.stage_tick, remind_in), f"{len(approved)} of {needed} approvals"
        )


def script_environment(ctx: StageContext, *, is_rollback: bool, extra: dict | None = None) -> dict[str, str]:
    """PipeCD's SR_* variables (plus the stage's `env`) on top of the piped's own environment."""
    deployment = ctx.deployment
    trigger = deployment["trigger"]
    triggered_at = parse_time(trigger.get("triggered_at"))
    repo = ctx.runtime.config.spec.repository(deployment["git_path"]["repo_id"])
    context = {
        "deploymentID": deployment["id"],
        "applicationID": deployment["application_id"],
        "applicationName": deployment["application_name"],
        "triggeredAt": int(triggered_at.timestamp()) if triggered_at else 0,
        "triggeredCommitHash": trigger["commit"]["hash"],
        "triggeredCommander": trigger.get("commander") or "",
        "repositoryURL": repo.remote if repo else "",
        "summary": deployment.get("summary") or "",
        "labels": deployment.get("labels") or {},
        "isRollback": is_rollback,
    }
    env = dict(os.environ)
    env.update(
        {
            "SR_DEPLOYMENT_ID": context["deploymentID"],
            "SR_APPLICATION_ID": context["applicationID"],
            "SR_APPLICATION_NAME": context["applicationName"],
            "SR_TRIGGERED_AT": str(context["triggeredAt"]),
            "SR_TRIGGERED_COMMIT_HASH": context["triggeredCommitHash"],
            "SR_TRIGGERED_COMMANDER": context["triggeredCommander"],
            "SR_REPOSITORY_URL": context["repositoryURL"],
            "SR_SUMMARY": context["summary"],
            "SR_IS_ROLLBACK": "true" if is_rollback else "false",
            "SR_CONTEXT_RAW": json.dumps(context),
        }
    )
    for key, value in context["labels"].items():
        env[f"SR_LABELS_{key.upper()}"] = str(value)
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    return env


def run_script(ctx: StageContext, script: str, *, env: dict[str, str], timeout: float) -> Done:
    """Run `script` with /bin/sh in the app directory, its output going to the stage log line by line."""
    for line in script.splitlines():
        if line.strip():
            ctx.logger.info(f"  {line}")
    cwd = ctx.target.app_dir
    process = subprocess.Popen(
        ["/bin/sh", "-c", script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            ctx.logger.info(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None:
            if ctx.claim_lost():
                _kill(process)
                ctx.logger.error("Stopped: the stage was cancelled or taken over.")
                return Done(FAILURE, "Stopped while the script was running")
            if time.monotonic() > deadline:
                _kill(process)
                ctx.logger.error(f"Canceled because of timeout ({format_seconds(timeout)}).")
                return Done(FAILURE, f"The script timed out after {format_seconds(timeout)}")
            time.sleep(0.1)
    finally:
        reader.join(5)
    if process.returncode != 0:
        ctx.logger.error(f"The script exited with status {process.returncode}.")
        return Done(FAILURE, f"The script exited with status {process.returncode}")
    ctx.logger.success("The script succeeded.")
    return Done(SUCCESS, "The script succeeded")


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)


@register
class ScriptRun(StageExecutor):
    """Run `with.run` (PipeCD's SR_* variables set). It is run again from the start after a crash, so a
    script should be safe to repeat."""

    name = "SCRIPT_RUN"

    def execute(self, ctx: StageContext) -> Done | Continue:
        options = ctx.options
        script = getattr(options, "run", "") or ""
        if not script.strip():
            return Done(SUCCESS, "Nothing to run")
        ctx.logger.info("Running the script...")
        env = script_environment(ctx, is_rollback=False, extra=getattr(options, "env", {}))
        return run_script(
            ctx, script, env=env, timeout=_seconds(getattr(options, "timeout", None), 6 * 3600.0)
        )


@register
class ScriptRunRollback(StageExecutor):
    """During a rollback, run the `onRollback` script of a SCRIPT_RUN stage that ran."""

    name = "SCRIPT_RUN_ROLLBACK"

    def execute(self, ctx: StageContext) -> Done | Continue:
        base_id = ctx.metadata.get("base_stage_id") or ""
        base = next((s for s in ctx.deployment["stages"] if s["id"] == base_id), None)
        if base is None or base["status"] == "NOT_STARTED_YET":
            return Done(SKIPPED, f"Stage {base_id} never ran: nothing to roll back")
        stages = ctx.target.spec.stages
        config = stages[base["index"]] if base["index"] < len(stages) else None
        options = getattr(config, "options", None)
        script = getattr(options, "on_rollback", "") or ""
        if not script.strip():
            return Done(SKIPPED, "No onRollback script")
        ctx.logger.info(f"Rolling back {base_id}: running its onRollback script...")
        env = script_environment(ctx, is_rollback=True, extra=getattr(options, "env", {}))
        return run_script(
            ctx, script, env=env, timeout=_seconds(getattr(options, "timeout", None), 6 * 3600.0)
        )


@register
class Analysis(StageExecutor):
    name = "ANALYSIS"

    def execute(self, ctx: StageContext) -> Done | Continue:
        if ctx.skip_requested_by:
            return Done(SKIPPED, f"Skipped by {ctx.skip_requested_by}")
        message = "ANALYSIS is not supported by this piped yet; remove the stage or skip it."
        ctx.logger.error(message)
        return Done(FAILURE, message)
