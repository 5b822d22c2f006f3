"""Piped and PipedKey."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.projects.models import Project

from .choices import PipedStatus


class Piped(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pipeds")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    disabled = models.BooleanField(default=False)
    # Reported by the piped itself at start-up.
    version = models.CharField(max_length=50, blank=True)
    repositories = models.JSONField(default=list, blank=True, help_text="[{repo_id, remote, branch}]")
    platform_providers = models.JSONField(default=list, blank=True, help_text="[{name, type}]")
    config = models.TextField(blank=True, help_text="The piped's config with every secret masked.")
    started_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Set when the piped says it stops cleanly (SIGTERM): it shows OFFLINE at once instead of after the
    # heartbeat window. A later heartbeat clears it.
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Per repository: {repo_id: {"last_fetch_at", "head", "error", "failures", "next_attempt_at"}}
    # as last reported by the piped.
    repository_status = models.JSONField(default=dict, blank=True)
    # "Fetch now" requests from the Git webhook: {repo_id: ISO time of the push}. The piped reads them with
    # its command poll (the piped row is loaded by authentication anyway) and fetches the newer ones.
    fetch_requests = models.JSONField(default=dict, blank=True)
    # App configs the piped found in its repositories that no application is registered for:
    # [{repo_id, path, config_filename, name, kind, labels, description}] — "add from suggestion".
    unregistered_apps = models.JSONField(default=list, blank=True)
    # Bumped whenever one of the piped's applications is added or changed, so the piped's cheap command
    # poll tells it to reload its application list.
    apps_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"],
                name="piped_unique_name",
                violation_error_message="A piped with this name already exists in the project.",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def status(self) -> str:
        if self.last_heartbeat_at is None:
            return PipedStatus.OFFLINE
        if self.stopped_at is not None and self.stopped_at >= self.last_heartbeat_at:
            return PipedStatus.OFFLINE
        window = timedelta(seconds=settings.PIPEPORTAL_PIPED_ONLINE_SECONDS)
        return PipedStatus.ONLINE if timezone.now() - self.last_heartbeat_at < window else PipedStatus.OFFLINE


class PipedKey(models.Model):
    """One of a piped's (at most two) keys. Only the keyed hash is stored."""

    piped = models.ForeignKey(Piped, on_delete=models.CASCADE, related_name="keys")
    key_hash = models.CharField(max_length=64, unique=True)
    creator = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"key {self.pk} of {self.piped_id}"
