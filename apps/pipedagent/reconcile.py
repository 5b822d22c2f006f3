"""What a deployment needs next, decided from what the control plane recorded — a pure function.

Both the scheduler (every tick, for every running deployment) and a worker (right after a step) ask it;
everything it says is safe to do twice (status changes only move forward, stages are claimed), so a
crash anywhere leaves nothing that the next look does not repair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from apps.core.times import read_time as parse_time

PENDING, PLANNED, RUNNING, ROLLING_BACK = "PENDING", "PLANNED", "RUNNING", "ROLLING_BACK"
SUCCESS, FAILURE, CANCELLED = "SUCCESS", "FAILURE", "CANCELLED"
DEPLOYMENT_TERMINAL = frozenset({SUCCESS, FAILURE, CANCELLED})
NOT_STARTED_YET, SKIPPED, EXITED = "NOT_STARTED_YET", "SKIPPED", "EXITED"
STAGE_TERMINAL = frozenset({SUCCESS, FAILURE, CANCELLED, SKIPPED, EXITED})
STAGE_FAILED = frozenset({FAILURE, CANCELLED, EXITED})

LEFT_AS_THEY_ARE = "no rollback was done, so the resources were left as they are"


@dataclass(frozen=True)
class Action:
    """`plan`, `run` (a stage), `stage_status` (end a stage), or `status` (move the deployment)."""

    kind: str
    stage_id: str = ""
    status: str = ""
    reason: str = ""
    metadata: dict = field(default_factory=dict)


def _ordered(deployment: dict) -> tuple[list[dict], list[dict]]:
    stages = sorted(deployment.get("stages") or [], key=lambda s: s["index"])
    return [s for s in stages if not s.get("rollback")], [s for s in stages if s.get("rollback")]


def next_actions(deployment: dict, now: datetime) -> list[Action]:
    status = deployment["status"]
    if status in DEPLOYMENT_TERMINAL:
        return []
    metadata = deployment.get("metadata") or {}
    if status == PENDING:
        cancel = metadata.get("cancel")
        if cancel:
            who = cancel.get("commander") or "someone"
            return [Action("status", status=CANCELLED, reason=f"Cancelled by {who} before it was planned")]
        return [Action("plan")]
    forward, rollbacks = _ordered(deployment)

    if status == ROLLING_BACK:
        for stage in rollbacks:
            if stage["status"] not in STAGE_TERMINAL:
                return [Action("run", stage["id"])]
        final = metadata.get("rollback_for") or FAILURE
        reason = metadata.get("rollback_reason") or "The deployment failed"
        failed = next((s for s in rollbacks if s["status"] in STAGE_FAILED), None)
        if failed is not None:
            return [
                Action(
                    "status", status=final, reason=f"{reason}; the rollback failed: {failed['status_reason']}"
                )
            ]
        return [Action("status", status=final, reason=f"{reason}; rolled back")]

    cancel = metadata.get("cancel")
    deadline = parse_time(metadata.get("deadline"))
    running = [s for s in forward if s["status"] == RUNNING]
    actions: list[Action] = []
    if cancel:
        who = cancel.get("commander") or "someone"
        actions = [Action("stage_status", s["id"], CANCELLED, f"Cancelled by {who}") for s in running]
        final, reason = CANCELLED, f"Cancelled by {who}"
    elif deadline is not None and now > deadline:
        actions = [Action("stage_status", s["id"], FAILURE, "The deployment timed out") for s in running]
        timeout = metadata.get("timeout") or "its timeout"
        final, reason = FAILURE, f"The deployment timed out after {timeout}"
    else:
        failed = next((s for s in forward if s["status"] in STAGE_FAILED), None)
        if failed is None:
            pending = next((s for s in forward if s["status"] not in STAGE_TERMINAL), None)
            if pending is None:
                return [Action("status", status=SUCCESS, reason="The deployment completed successfully")]
            return [Action("run", pending["id"])]
        final = CANCELLED if failed["status"] == CANCELLED else FAILURE
        detail = f": {failed['status_reason']}" if failed.get("status_reason") else ""
        verb = {FAILURE: "failed", CANCELLED: "was cancelled", EXITED: "exited"}[failed["status"]]
        reason = f"Stage {failed['name']} ({failed['id']}) {verb}{detail}"

    started = any(s["status"] != NOT_STARTED_YET for s in forward)
    no_rollback_asked = bool(cancel and cancel.get("force_no_rollback"))
    if rollbacks and started and not no_rollback_asked:
        actions.append(
            Action(
                "status",
                status=ROLLING_BACK,
                reason=f"{reason}; rolling back",
                metadata={"rollback_for": final, "rollback_reason": reason},
            )
        )
        return actions
    if not started:
        reason = f"{reason} before any stage ran; nothing was changed"
    elif cancel:
        reason = f"{reason}; {LEFT_AS_THEY_ARE}"
    elif not rollbacks:
        reason = f"{reason}; no rollback (autoRollback is off)"
    actions.append(Action("status", status=final, reason=reason))
    return actions
