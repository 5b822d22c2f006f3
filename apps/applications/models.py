"""Application."""

import uuid

from django.core.exceptions import ValidationError
from django.db import models

from apps.pipeds.models import Piped
from apps.projects.models import Project

from .choices import DEFAULT_CONFIG_FILENAME, ApplicationKind, SyncStatus


def validate_app_path(value: str) -> None:
    """A path inside the repository: relative, no `..`, no leading `/`."""
    if value.startswith("/"):
        raise ValidationError("The path must be relative to the repository root (no leading '/').")
    if "\\" in value or any(part == ".." for part in value.split("/")):
        raise ValidationError("The path must stay inside the repository ('..' is not allowed).")


def validate_config_filename(value: str) -> None:
    if not value or "/" in value or "\\" in value or value in (".", ".."):
        raise ValidationError("The config filename is a file name, without a directory.")


class Application(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="applications")
    piped = models.ForeignKey(Piped, on_delete=models.PROTECT, related_name="applications")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ApplicationKind.choices, default=ApplicationKind.ECS)
    platform_provider = models.CharField(max_length=100)
    # Where the app config lives; fixed at creation (kind, repo, path, filename are immutable).
    repo_id = models.CharField(max_length=100)
    path = models.CharField(max_length=500, validators=[validate_app_path])
    config_filename = models.CharField(
        max_length=200, default=DEFAULT_CONFIG_FILENAME, validators=[validate_config_filename]
    )
    labels = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)

    sync_status = models.CharField(max_length=16, choices=SyncStatus.choices, default=SyncStatus.UNKNOWN)
    sync_short_reason = models.CharField(max_length=300, blank=True)
    sync_reason = models.TextField(blank=True)
    sync_updated_at = models.DateTimeField(null=True, blank=True)
    deploying = models.BooleanField(default=False)

    most_recent_deployment = models.ForeignKey(
        "deployments.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    most_recent_successful_deployment = models.ForeignKey(
        "deployments.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    disabled = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    IMMUTABLE_FIELDS = ("kind", "repo_id", "path", "config_filename")

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["project", "deleted", "name"], name="app_project_name"),
            models.Index(fields=["project", "deleted", "sync_status"], name="app_project_sync"),
            models.Index(fields=["piped", "deleted", "disabled"], name="app_piped"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def config_path(self) -> str:
        """The app config's path inside the repository."""
        return (
            f"{self.path.rstrip('/')}/{self.config_filename}"
            if self.path.strip("/.")
            else self.config_filename
        )


class ApplicationLiveState(models.Model):
    """What the piped last saw running for an application, and its last drift check.

    The snapshot (service, task sets, tasks, traffic split) is kept in the row while small; a large one goes
    to the filestore under `snapshot_key` (apps/ops/filestore.py) and the row keeps an empty snapshot.
    """

    application = models.OneToOneField(
        Application, primary_key=True, on_delete=models.CASCADE, related_name="live_state"
    )
    snapshot = models.JSONField(default=dict, blank=True)
    snapshot_key = models.CharField(max_length=300, blank=True)
    # When the piped collected the snapshot, and when the control plane stored it.
    collected_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    # Drift detection: SYNCED or OUT_OF_SYNC against the Git head `drift_commit`, with a unified diff.
    drift_status = models.CharField(max_length=16, blank=True)
    drift_summary = models.CharField(max_length=300, blank=True)
    drift_diff = models.TextField(blank=True)
    drift_commit = models.CharField(max_length=64, blank=True)
    drift_checked_at = models.DateTimeField(null=True, blank=True)
    # When the drift result last changed (SYNCED ↔ OUT_OF_SYNC or another diff).
    drift_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "application live state"

    def __str__(self) -> str:
        return f"live state of {self.application_id}"
