"""Enumerations of the pipeds app."""

from django.db import models


class PipedStatus(models.TextChoices):
    ONLINE = "ONLINE", "Online"
    OFFLINE = "OFFLINE", "Offline"


MAX_PIPED_KEYS = 2
