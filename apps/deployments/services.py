"""Business rules for deployments seen from people and scripts: approve, cancel, skip; status changes.

Status changes go through `transition_deployment` / `transition_stage`: a conditional UPDATE that only
moves forward and answers False when someone else got there first.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from apps.projects import audit
from apps.projects.principal import Principal
from apps.projects.roles import Action, Resource

from .choices import (
    DEPLOYMENT_TERMINAL,
    STAGE_TERMINAL,
    WAIT_APPROVAL,
    CommandStatus,
    CommandType,
    StageStatus,
    can_transition_deployment,
    can_transition_stage,
)
from .models import Command, Deployment, Stage

# Stages a person may skip: skipping only shortens a wait, it never bypasses an approval.
SKIPPABLE_STAGES = frozenset({"WAIT", "ANALYSIS"})


def get_deployment(principal: Principal, deployment_id, action: str = Action.GET) -> Deployment:
    try:
        deployment = Deployment.objects.get(pk=uuid.UUID(str(deployment_id)))
    except (Deployment.DoesNotExist, ValueError):
        raise NotFound("Deployment not found.") from None
    principal.authorize(Resource.DEPLOYMENT, action, deployment.project_id)
    return deployment


def get_stage(deployment: Deployment, stage_id: str, *, lock: bool = False) -> Stage:
    """The deployment's stage `stage_id`. With `lock`, the deployment's row is locked first, then the stage's:
    the order the piped API's step calls take, so an approval given while a step starts cannot deadlock."""
    if lock:
        Deployment.objects.select_for_update().filter(pk=deployment.pk).values_list("pk", flat=True).first()
    queryset = Stage.objects.select_for_update() if lock else Stage.objects
    try:
        stage = queryset.get(deployment=deployment, stage_id=stage_id)
    except Stage.DoesNotExist:
        stage = None
    # MariaDB's collation matches `APPROVAL` or `approval ` to `approval`; the piped knows only the exact id.
    if stage is None or stage.stage_id != stage_id:
        raise NotFound(f"Stage {stage_id!r} not found in this deployment.")
    return stage


def get_command(principal: Principal, command_id) -> Command:
    try:
        command = Command.objects.get(pk=uuid.UUID(str(command_id)))
    except (Command.DoesNotExist, ValueError):
        raise NotFound("Command not found.") from None
    # A command is as visible as the deployment or application it concerns.
    principal.authorize(Resource.DEPLOYMENT, Action.GET, command.project_id)
    return command


def approval_state(stage: Stage) -> dict:
    """Who approved, how many are needed, who may still approve: what the portal shows."""
    approved = stage.approvals
    remaining = max(stage.min_approver_num - len(approved), 0)
    return {
        "approved_by": approved,
        "required": stage.min_approver_num,
        "remaining": remaining,
        "approvers": list(stage.authorized_approvers),
    }


def can_approve(principal: Principal | None, stage: Stage) -> bool:
    """Whether the Approve button is offered: the role allows it and the approver list (if any) names them."""
    if principal is None or not principal.can(Resource.DEPLOYMENT, Action.UPDATE):
        return False
    if stage.name != WAIT_APPROVAL or stage.status != StageStatus.RUNNING:
        return False
    if stage.authorized_approvers and principal.identity not in stage.authorized_approvers:
        return False
    return principal.identity not in stage.approvals


@transaction.atomic
def approve_stage(principal: Principal, deployment: Deployment, stage_id: str) -> Command:
    principal.authorize(Resource.DEPLOYMENT, Action.UPDATE, deployment.project_id)
    stage = get_stage(deployment, stage_id, lock=True)
    if stage.name != WAIT_APPROVAL:
        raise Conflict(f"Stage {stage_id} is {stage.name}, not an approval stage.")
    if stage.status != StageStatus.RUNNING:
        raise Conflict(f"Stage {stage_id} is not waiting for approval (it is {stage.status}).")
    identity = principal.identity
    if stage.authorized_approvers and identity not in stage.authorized_approvers:
        raise Forbidden(
            f"{identity} is not an approver of this stage; approvers: {', '.join(stage.authorized_approvers)}."
        )
    already = (
        identity in stage.approvals
        or Command.objects.filter(
            deployment=deployment,
            stage_id=stage_id,
            type=CommandType.APPROVE_STAGE,
            commander=identity,
            status__in=[CommandStatus.NOT_HANDLED_YET, CommandStatus.SUCCEEDED],
        ).exists()
    )
    if already:
        raise Conflict(
            f"{identity} has already approved this stage; another person must give the next approval."
        )
    command = Command.objects.create(
        project_id=deployment.project_id,
        piped_id=deployment.piped_id,
        application_id=deployment.application_id,
        deployment=deployment,
        stage_id=stage_id,
        type=CommandType.APPROVE_STAGE,
        commander=identity,
    )
    audit.record(
        principal,
        "deployment.approve",
        obj=deployment,
        details={"stage_id": stage_id, "command_id": str(command.id)},
    )
    return command


@transaction.atomic
def skip_stage(principal: Principal, deployment: Deployment, stage_id: str) -> Command:
    principal.authorize(Resource.DEPLOYMENT, Action.UPDATE, deployment.project_id)
    stage = get_stage(deployment, stage_id, lock=True)
    if stage.name not in SKIPPABLE_STAGES:
        raise Conflict(
            f"Stage {stage_id} ({stage.name}) cannot be skipped; only {', '.join(sorted(SKIPPABLE_STAGES))} can."
        )
    if stage.status != StageStatus.RUNNING:
        raise Conflict(f"Stage {stage_id} is not running (it is {stage.status}).")
    command = Command.objects.create(
        project_id=deployment.project_id,
        piped_id=deployment.piped_id,
        application_id=deployment.application_id,
        deployment=deployment,
        stage_id=stage_id,
        type=CommandType.SKIP_STAGE,
        commander=principal.identity,
    )
    audit.record(
        principal,
        "deployment.skip",
        obj=deployment,
        details={"stage_id": stage_id, "command_id": str(command.id)},
    )
    return command


@transaction.atomic
def cancel_deployment(
    principal: Principal,
    deployment: Deployment,
    *,
    force_rollback: bool = False,
    force_no_rollback: bool = False,
) -> Command:
    principal.authorize(Resource.DEPLOYMENT, Action.UPDATE, deployment.project_id)
    if force_rollback and force_no_rollback:
        raise InvalidInput("Choose force_rollback or force_no_rollback, not both.", field="force_rollback")
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if deployment.status in DEPLOYMENT_TERMINAL:
        raise Conflict(f"The deployment has already completed ({deployment.status}).")
    command = Command.objects.create(
        project_id=deployment.project_id,
        piped_id=deployment.piped_id,
        application_id=deployment.application_id,
        deployment=deployment,
        type=CommandType.CANCEL_DEPLOYMENT,
        commander=principal.identity,
        payload={"force_rollback": force_rollback, "force_no_rollback": force_no_rollback},
    )
    audit.record(
        principal,
        "deployment.cancel",
        obj=deployment,
        details={
            "force_rollback": force_rollback,
            "force_no_rollback": force_no_rollback,
            "command_id": str(command.id),
        },
    )
    return command


# --- Status machines ------------------------------------------------------------------------------------


def transition_deployment(deployment_id, new_status: str, reason: str = "", **fields) -> bool:
    """Move a deployment forward. False if it is already past `new_status` (or someone else moved it)."""
    deployment = Deployment.objects.only("status").get(pk=deployment_id)
    if not can_transition_deployment(deployment.status, new_status):
        return False
    now = timezone.now()
    values = {"status": new_status, "status_reason": reason, "updated_at": now, **fields}
    if new_status in DEPLOYMENT_TERMINAL:
        values.setdefault("completed_at", now)
    updated = Deployment.objects.filter(pk=deployment_id, status=deployment.status).update(**values)
    return updated == 1


def transition_stage(stage_pk: int, new_status: str, reason: str = "", **fields) -> bool:
    stage = Stage.objects.only("status").get(pk=stage_pk)
    if not can_transition_stage(stage.status, new_status):
        return False
    now = timezone.now()
    values = {"status": new_status, "status_reason": reason, "updated_at": now, **fields}
    if new_status == StageStatus.RUNNING:
        values.setdefault("started_at", now)
    if new_status in STAGE_TERMINAL:
        values.setdefault("completed_at", now)
    updated = Stage.objects.filter(pk=stage_pk, status=stage.status).update(**values)
    return updated == 1


def time_out_stale_commands(now=None) -> int:
    """Commands nobody handled within PIPEPORTAL_COMMAND_TIMEOUT_SECONDS become TIMEOUT."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.PIPEPORTAL_COMMAND_TIMEOUT_SECONDS)
    return Command.objects.filter(status=CommandStatus.NOT_HANDLED_YET, created_at__lt=cutoff).update(
        status=CommandStatus.TIMEOUT, handled_at=now
    )
