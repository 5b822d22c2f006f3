"""Enumerations of the notifications app."""

from django.db import models

from apps.pipelineconfig.constants import NOTIFICATION_EVENTS


class Outcome(models.TextChoices):
    """What one delivery attempt came to (`apps.notifications.delivery` uses the same names)."""

    DELIVERED = "DELIVERED", "Delivered"
    RETRYING = "RETRYING", "Failed, retrying"
    FAILED = "FAILED", "Failed"
    DROPPED = "DROPPED", "Dropped (queue full)"
    ABANDONED = "ABANDONED", "Abandoned (piped stopped)"


class Source(models.TextChoices):
    PIPED = "PIPED", "Piped"
    CONTROL_PLANE = "CONTROL_PLANE", "Control plane"


class ReceiverKind(models.TextChoices):
    SLACK = "slack", "Slack"
    WEBHOOK = "webhook", "Webhook"


EVENT_TYPES = [(name, name) for name in NOTIFICATION_EVENTS]
