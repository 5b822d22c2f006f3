"""A cancel without rollback leaves the resources as they are: the log of the stage that was running says so,
and for ECS names what was left (the canary task set, the listener weights) from the deployment metadata."""

from __future__ import annotations

import logging

from .client import ApiError
from .logs import StageLogger
from .reconcile import LEFT_AS_THEY_ARE

logger = logging.getLogger(__name__)


def ecs_leftovers(metadata: dict) -> list[str]:
    from .platforms.ecs.provider import short_name
    from .platforms.ecs.resources import META_CANARY, META_PRIMARY, META_TRAFFIC

    lines = []
    canary = metadata.get(META_CANARY) or {}
    if canary.get("task_set_arn"):
        lines.append(
            f"The canary task set {short_name(canary['task_set_arn'])} ({canary.get('task_definition', '')}, "
            f"{float(canary.get('scale', 0)):g} %) keeps running."
        )
    primary = metadata.get(META_PRIMARY) or {}
    if primary.get("task_set_arn"):
        lines.append(
            f"The new primary task set {short_name(primary['task_set_arn'])} ({primary.get('task_definition', '')}) "
            "stays as it is."
        )
    weights = (metadata.get(META_TRAFFIC) or {}).get("weights")
    if weights:
        lines.append(
            f"The listener weights stay at primary {weights.get('primary')} %, canary {weights.get('canary')} %."
        )
    return lines


def note_left_as_they_are(runtime, deployment: dict, reason: str) -> None:
    """After a deployment ended with `reason`: when nothing was rolled back, write the reason and what was
    left into the log of the stages that were running."""
    if LEFT_AS_THEY_ARE not in reason:
        return
    try:
        fresh = runtime.client.get_deployment(deployment["id"])
        running = {s["id"] for s in deployment.get("stages") or [] if s.get("status") == "RUNNING"}
        stages = [s for s in fresh["stages"] if s["id"] in running and not s.get("rollback")]
        lines = [f"{reason}."]
        if fresh.get("kind") == "ECS":
            lines += ecs_leftovers(fresh.get("metadata") or {})
        for stage in stages:
            stage_logger = StageLogger(
                runtime.client,
                fresh["id"],
                stage["id"],
                retried_count=stage.get("retried_count") or 0,
                start_index=stage.get("next_log_index") or 0,
            )
            for line in lines:
                stage_logger.info(line)
            stage_logger.close()
    except ApiError as exc:
        logger.warning("noting what deployment %s left: %s", deployment["id"], exc)
