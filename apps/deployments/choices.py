"""Deployment and stage statuses (PipeCD's names and order), sync strategies, commands, log severities.

Statuses only move forward, as in PipeCD: a status may be followed by itself or by any later one, and a
terminal status by nothing else. `can_transition` is the one place that says so.
"""

from django.db import models


class DeploymentStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    PLANNED = "PLANNED", "Planned"
    RUNNING = "RUNNING", "Running"
    ROLLING_BACK = "ROLLING_BACK", "Rolling back"
    SUCCESS = "SUCCESS", "Success"
    FAILURE = "FAILURE", "Failure"
    CANCELLED = "CANCELLED", "Cancelled"


DEPLOYMENT_ORDER = {status: i for i, status in enumerate(DeploymentStatus.values)}
DEPLOYMENT_TERMINAL = frozenset(
    {DeploymentStatus.SUCCESS, DeploymentStatus.FAILURE, DeploymentStatus.CANCELLED}
)
DEPLOYMENT_ACTIVE = frozenset(set(DeploymentStatus.values) - DEPLOYMENT_TERMINAL)


def can_transition_deployment(current: str, new: str) -> bool:
    if current in DEPLOYMENT_TERMINAL:
        return new == current
    return DEPLOYMENT_ORDER[new] >= DEPLOYMENT_ORDER[current]


class StageStatus(models.TextChoices):
    NOT_STARTED_YET = "NOT_STARTED_YET", "Not started yet"
    RUNNING = "RUNNING", "Running"
    SUCCESS = "SUCCESS", "Success"
    FAILURE = "FAILURE", "Failure"
    CANCELLED = "CANCELLED", "Cancelled"
    SKIPPED = "SKIPPED", "Skipped"
    EXITED = "EXITED", "Exited"


STAGE_ORDER = {status: i for i, status in enumerate(StageStatus.values)}
STAGE_TERMINAL = frozenset(
    {StageStatus.SUCCESS, StageStatus.FAILURE, StageStatus.CANCELLED, StageStatus.SKIPPED, StageStatus.EXITED}
)


def can_transition_stage(current: str, new: str) -> bool:
    if current in STAGE_TERMINAL:
        return new == current
    return STAGE_ORDER[new] >= STAGE_ORDER[current]


class TriggerKind(models.TextChoices):
    """What made the piped create a deployment (PipeCD's trigger kinds)."""

    ON_COMMIT = "ON_COMMIT", "On commit"
    ON_COMMAND = "ON_COMMAND", "On command"
    ON_OUT_OF_SYNC = "ON_OUT_OF_SYNC", "On out of sync"
    ON_CHAIN = "ON_CHAIN", "On chain"


class SyncStrategy(models.TextChoices):
    AUTO = "AUTO", "Auto"
    QUICK_SYNC = "QUICK_SYNC", "Quick sync"
    PIPELINE = "PIPELINE", "Pipeline"


class LogSeverity(models.TextChoices):
    INFO = "INFO", "Info"
    SUCCESS = "SUCCESS", "Success"
    ERROR = "ERROR", "Error"


class CommandType(models.TextChoices):
    SYNC_APPLICATION = "SYNC_APPLICATION"
    UPDATE_APPLICATION_CONFIG = "UPDATE_APPLICATION_CONFIG"
    CANCEL_DEPLOYMENT = "CANCEL_DEPLOYMENT"
    APPROVE_STAGE = "APPROVE_STAGE"
    BUILD_PLAN_PREVIEW = "BUILD_PLAN_PREVIEW"
    CHAIN_SYNC_APPLICATION = "CHAIN_SYNC_APPLICATION"
    SKIP_STAGE = "SKIP_STAGE"
    RESTART_PIPED = "RESTART_PIPED"


class CommandStatus(models.TextChoices):
    NOT_HANDLED_YET = "NOT_HANDLED_YET"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"


# Stage names the portal treats specially.
WAIT_APPROVAL = "WAIT_APPROVAL"
ROLLBACK_STAGE_NAMES = frozenset({"ROLLBACK", "SCRIPT_RUN_ROLLBACK"})
