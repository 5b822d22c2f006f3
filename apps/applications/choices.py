"""Enumerations of the applications app, with PipeCD's names."""

from django.db import models


class ApplicationKind(models.TextChoices):
    ECS = "ECS", "ECS"
    # Room for PipeCD's other kinds; only ECS is deployed today.
    KUBERNETES = "KUBERNETES", "Kubernetes"
    TERRAFORM = "TERRAFORM", "Terraform"
    LAMBDA = "LAMBDA", "Lambda"
    CLOUDRUN = "CLOUDRUN", "Cloud Run"


SUPPORTED_KINDS = frozenset({ApplicationKind.ECS})


class SyncStatus(models.TextChoices):
    UNKNOWN = "UNKNOWN", "Unknown"
    SYNCED = "SYNCED", "Synced"
    DEPLOYING = "DEPLOYING", "Deploying"
    OUT_OF_SYNC = "OUT_OF_SYNC", "Out of sync"
    INVALID_CONFIG = "INVALID_CONFIG", "Invalid config"


DEFAULT_CONFIG_FILENAME = "app.pipecd.yaml"
