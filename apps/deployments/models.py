"""Deployment, Stage, StageLogBlock and Command."""

import uuid

from django.db import models

from apps.applications.models import Application
from apps.pipeds.models import Piped
from apps.projects.models import Project

from .choices import (
    CommandStatus,
    CommandType,
    DeploymentStatus,
    LogSeverity,
    StageStatus,
    SyncStrategy,
    TriggerKind,
)


class Deployment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="deployments")
    piped = models.ForeignKey(Piped, on_delete=models.CASCADE, related_name="deployments")
    # Copied from the application when the deployment is created, so history keeps what was true then.
    application_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16)
    platform_provider = models.CharField(max_length=100, blank=True)
    labels = models.JSONField(default=dict, blank=True)

    # The trigger: which commit, who or what asked, and how to sync.
    commit_hash = models.CharField(max_length=64)
    commit_message = models.TextField(blank=True)
    commit_author = models.CharField(max_length=200, blank=True)
    commit_branch = models.CharField(max_length=200, blank=True)
    commit_url = models.CharField(max_length=500, blank=True)
    commit_timestamp = models.DateTimeField(null=True, blank=True)
    commander = models.CharField(
        max_length=200, blank=True, help_text="Who pressed Sync; empty for a commit."
    )
    triggered_at = models.DateTimeField(null=True, blank=True)
    trigger_kind = models.CharField(max_length=16, choices=TriggerKind.choices, default=TriggerKind.ON_COMMIT)
    # Makes creation idempotent: the piped sends e.g. "ON_COMMIT:<hash>" or "ON_COMMAND:<command id>", and
    # a retried request finds the deployment it already created. NULLs never collide (rows made elsewhere).
    trigger_key = models.CharField(max_length=150, null=True, blank=True)
    sync_strategy = models.CharField(max_length=16, choices=SyncStrategy.choices, default=SyncStrategy.AUTO)
    strategy_summary = models.CharField(max_length=500, blank=True)

    summary = models.TextField(blank=True)
    versions = models.JSONField(
        default=list, blank=True, help_text="[{name, version, url}] of container images"
    )
    running_commit_hash = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING, db_index=True
    )
    status_reason = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "-created_at", "-id"], name="dep_project_recent"),
            models.Index(fields=["project", "status", "-created_at", "-id"], name="dep_project_status"),
            models.Index(fields=["application", "-created_at", "-id"], name="dep_app_recent"),
            models.Index(fields=["application", "status", "-created_at"], name="dep_app_status"),
            models.Index(fields=["piped", "status"], name="dep_piped_status"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "trigger_key"],
                name="deployment_unique_trigger",
                violation_error_message="This trigger already created a deployment of the application.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application_name} @ {self.commit_hash[:7]}"

    @property
    def short_commit(self) -> str:
        return self.commit_hash[:7]

    @property
    def commit_title(self) -> str:
        return (self.commit_message or "").strip().splitlines()[0] if self.commit_message.strip() else ""


class Stage(models.Model):
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="stages")
    stage_id = models.CharField(max_length=100, help_text="The config's stage id, else stage-<n>.")
    name = models.CharField(max_length=50)
    desc = models.CharField(max_length=500, blank=True)
    index = models.PositiveIntegerField()
    requires = models.JSONField(default=list, blank=True)
    visible = models.BooleanField(default=True)
    rollback = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=StageStatus.choices, default=StageStatus.NOT_STARTED_YET)
    status_reason = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    retried_count = models.PositiveIntegerField(default=0)
    # WAIT_APPROVAL: the approvers the config lists (empty = any Editor or Admin) and how many are needed.
    authorized_approvers = models.JSONField(default=list, blank=True)
    min_approver_num = models.PositiveIntegerField(default=1)
    # Who runs the stage: a piped worker's claim with a short lease, renewed while it runs.
    claimed_by = models.CharField(max_length=100, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    # A waiting stage (WAIT, WAIT_APPROVAL, an ECS stability wait) asks to be looked at again at this time;
    # the piped's scheduler dispatches it then (or earlier, when a command arrives).
    next_check_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["deployment", "index"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "stage_id"], name="stage_unique_id"),
        ]
        # /metrics reads the durations of recently completed stages.
        indexes = [models.Index(fields=["completed_at"], name="stage_completed")]

    def __str__(self) -> str:
        return f"{self.stage_id} {self.name}"

    @property
    def approvals(self) -> list[str]:
        """Who has approved this stage so far (recorded by the piped)."""
        return list(self.metadata.get("approved_by", []))


class StageLogBlock(models.Model):
    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="log_blocks")
    retried_count = models.PositiveIntegerField(default=0)
    index = models.PositiveIntegerField()
    severity = models.CharField(max_length=8, choices=LogSeverity.choices, default=LogSeverity.INFO)
    log = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["stage", "retried_count", "index"]
        constraints = [
            models.UniqueConstraint(fields=["stage", "retried_count", "index"], name="stagelog_unique_index"),
        ]

    def __str__(self) -> str:
        return f"{self.stage_id}#{self.retried_count}.{self.index}"


class Command(models.Model):
    """A request from a person or script that the piped picks up: sync, cancel, approve, skip…"""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    piped = models.ForeignKey(Piped, on_delete=models.CASCADE, related_name="commands")
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    stage_id = models.CharField(max_length=100, blank=True)
    type = models.CharField(max_length=32, choices=CommandType.choices)
    status = models.CharField(
        max_length=16, choices=CommandStatus.choices, default=CommandStatus.NOT_HANDLED_YET
    )
    commander = models.CharField(max_length=200)
    payload = models.JSONField(default=dict, blank=True)
    # What the piped said when it handled the command (error message, output).
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["piped", "status", "created_at"], name="command_piped_unhandled"),
            models.Index(fields=["status", "created_at"], name="command_status_age"),
            models.Index(fields=["deployment", "stage_id", "type"], name="command_stage"),
        ]

    def __str__(self) -> str:
        return f"{self.type} by {self.commander}"
