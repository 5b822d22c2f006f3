"""Where the piped says what happened: one call per site in apps/pipedagent, the logic here.

Piped side: imports no Django models. Every function is cheap (it builds an event and queues it), returns
at once when the piped config has no notification routes, and never raises into the caller: a broken
notification must not break a deployment.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import Any

from . import builders
from .notifier import Notifier, notifier_for

logger = logging.getLogger(__name__)

WATCHED_SYNC_STATES = ("SYNCED", "OUT_OF_SYNC")
REMINDER_SENT = "approval_reminder_sent_at"
NO_REMINDER = float("inf")


def _active(runtime: Any) -> Notifier | None:
    spec = getattr(getattr(runtime, "config", None), "spec", None)
    if spec is None or not spec.notifications.routes:
        return None
    return notifier_for(runtime)


def _guarded(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception:
            logger.exception("notification hook %s failed", function.__name__)
            return None

    return wrapper


def _emit(runtime: Any, build) -> None:
    """`build(source)` makes the event (or None); only when a route exists at all."""
    notifier = _active(runtime)
    if notifier is None:
        return
    event = build(notifier.source)
    if event is not None:
        notifier.emit(event)


# --- Deployments and stages -----------------------------------------------------------------------------


@_guarded
def deployment_triggered(runtime: Any, deployment: dict) -> None:
    _emit(runtime, lambda source: builders.triggered_event(source, deployment))


@_guarded
def deployment_planned(runtime: Any, deployment: dict) -> None:
    _emit(runtime, lambda source: builders.planned_event(source, deployment))


@_guarded
def deployment_status(runtime: Any, deployment: dict, status: str, reason: str) -> None:
    """The deployment moved to `status` (RUNNING, ROLLING_BACK, SUCCESS, FAILURE, CANCELLED)."""
    _emit(runtime, lambda source: builders.status_event(source, deployment, status, reason))


@_guarded
def deployment_trigger_failed(runtime: Any, app: dict, commit_hash: str, reason: str) -> None:
    """No deployment could be triggered for `app` at `commit_hash` (its config is broken)."""
    _emit(runtime, lambda source: builders.trigger_failed_event(source, app, commit_hash, reason))


@_guarded
def stage_status(runtime: Any, deployment: dict, stage: dict, status: str, reason: str = "") -> None:
    """A stage started (RUNNING) or ended; an approval stage that succeeded is DEPLOYMENT_APPROVED too."""
    if not stage:
        return
    _emit(runtime, lambda source: builders.stage_event(source, deployment, stage, status, reason))
    if stage.get("name") == "WAIT_APPROVAL" and status == "SUCCESS":
        _emit(runtime, lambda source: builders.approved_event(source, deployment, stage, reason))


@_guarded
def approval_waiting(ctx: Any, started: datetime, timeout: float) -> None:
    """A WAIT_APPROVAL stage starts waiting (called once, when it records its start time)."""
    deadline = started + timedelta(seconds=timeout)
    _emit(
        ctx.runtime,
        lambda source: builders.waiting_event(source, ctx.deployment, ctx.stage, deadline=deadline),
    )


def approval_reminder(ctx: Any, started: datetime, timeout: float) -> float:
    """Remind once half of the approval timeout has passed. Answers the seconds until the reminder is due
    (infinity once sent, or when nothing is routed), so that the stage looks again exactly then.

    The stage metadata records the reminder before it is queued: a restarted piped never sends it twice.
    """
    try:
        if _active(ctx.runtime) is None or ctx.metadata.get(REMINDER_SENT) or timeout <= 0:
            return NO_REMINDER
        due = started + timedelta(seconds=timeout / 2)
        now = ctx.now()
        if now < due:
            return (due - now).total_seconds()
        ctx.save_stage_metadata(**{REMINDER_SENT: now.isoformat()})
        deadline = started + timedelta(seconds=timeout)
        _emit(
            ctx.runtime,
            lambda source: builders.waiting_event(
                source, ctx.deployment, ctx.stage, deadline=deadline, reminder=True
            ),
        )
    except Exception:
        logger.exception("the approval reminder of stage %s failed", ctx.stage.get("id"))
    return NO_REMINDER


# --- Applications ---------------------------------------------------------------------------------------


def around_sync_state_report(
    runtime: Any, client: Any, app_id: str, status: str, short_reason: str, reason: str, send
) -> None:
    """Wraps the piped's sync-state reports (the scheduler's, drift detection's): a report that moves the
    application to SYNCED or OUT_OF_SYNC from another state is APPLICATION_SYNCED / APPLICATION_OUT_OF_SYNC.
    `send()` makes the report itself; its errors reach the caller as before. The control plane may keep its
    own state (a deployment runs), so the state is read again after a report that should change it."""
    before = None
    if status in WATCHED_SYNC_STATES:
        try:
            if _active(runtime) is not None:
                before = client.get(f"/applications/{app_id}")
        except Exception as exc:
            logger.info("sync state of %s: could not read the previous one (%s)", app_id, exc)
    send()
    if before is None or before.get("sync_status") == status:
        return
    try:
        after = client.get(f"/applications/{app_id}")
    except Exception as exc:
        logger.info("sync state of %s: could not read the new one (%s)", app_id, exc)
        return
    if after.get("sync_status") == status:
        _sync_state_changed(runtime, after, status, short_reason, reason)


@_guarded
def _sync_state_changed(runtime: Any, app: dict, status: str, short_reason: str, reason: str) -> None:
    _emit(runtime, lambda source: builders.sync_state_event(source, app, status, short_reason, reason))


# --- The piped ------------------------------------------------------------------------------------------


@_guarded
def piped_started(runtime: Any, role: str | None) -> None:
    """Only the process that runs the scheduler (exactly one per piped) speaks for the piped."""
    if role in (None, "scheduler"):
        _emit(runtime, lambda source: builders.piped_event(source, "PIPED_STARTED"))


@_guarded
def piped_stopping(runtime: Any, *, scheduler: bool) -> None:
    """The piped stops cleanly: say PIPED_STOPPED (from the scheduler's process), then deliver what is
    queued within PIPED_NOTIFY_SHUTDOWN_SECONDS, and record it."""
    if scheduler:
        _emit(runtime, lambda source: builders.piped_event(source, "PIPED_STOPPED"))
    notifier = getattr(runtime, "_notifier", None)
    if notifier is not None:
        notifier.close()
