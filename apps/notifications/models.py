"""NotificationEvent and NotificationAttempt: what was sent where, as the pipeds (and the control plane) report it."""

import uuid

from django.db import models

from apps.applications.models import Application
from apps.deployments.models import Deployment
from apps.pipeds.models import Piped
from apps.projects.models import Project

from .choices import Outcome, ReceiverKind, Source


class NotificationEvent(models.Model):
    """One event that reached at least one receiver. Its id comes from the piped and is the same for the
    same change seen twice, so the second process learns it is a duplicate and sends nothing."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    piped = models.ForeignKey(Piped, on_delete=models.CASCADE, related_name="notification_events")
    type = models.CharField(max_length=40)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.PIPED)
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    summary = models.CharField(max_length=500, blank=True)
    # Control-plane events raised once per cause (PIPED_OFFLINE: one per outage); NULLs never collide.
    dedup_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [models.Index(fields=["piped", "-occurred_at"], name="notif_event_piped_recent")]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class NotificationAttempt(models.Model):
    """One try to deliver one event to one receiver."""

    event = models.ForeignKey(NotificationEvent, on_delete=models.CASCADE, related_name="attempts")
    # Denormalised from the event: the piped's attempts page is served by one index.
    piped = models.ForeignKey(Piped, on_delete=models.CASCADE, related_name="+")
    receiver = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ReceiverKind.choices)
    attempt = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    attempted_at = models.DateTimeField()

    class Meta:
        ordering = ["-attempted_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "receiver", "attempt"],
                name="notif_attempt_unique",
                violation_error_message="This attempt is already recorded.",
            )
        ]
        indexes = [models.Index(fields=["piped", "-attempted_at", "-id"], name="notif_attempt_piped_recent")]

    def __str__(self) -> str:
        return f"{self.receiver} #{self.attempt} {self.outcome}"
