"""Who may do what: PipeCD's built-in role matrix as one table, and the one function that reads it.

Nothing else in the code base compares role names; views, APIs and templates ask `can()`.
"""

from django.db import models

from .choices import APIKeyRole, Role


class Resource(models.TextChoices):
    APPLICATION = "application"
    DEPLOYMENT = "deployment"
    PIPED = "piped"
    PROJECT = "project"  # settings, user groups, SSO, static admin
    API_KEY = "apikey"
    AUDIT = "audit"


class Action(models.TextChoices):
    LIST = "list"
    GET = "get"
    CREATE = "create"
    UPDATE = (
        "update"  # applications: update and sync; deployments: cancel, approve, skip; pipeds: keys, disable
    )
    DELETE = "delete"


READ = frozenset({Action.LIST, Action.GET})
ALL = frozenset(Action)

POLICY: dict[str, dict[str, frozenset]] = {
    Role.ADMIN: {resource: ALL for resource in Resource},
    Role.EDITOR: {
        Resource.APPLICATION: ALL,
        Resource.DEPLOYMENT: ALL,
        Resource.PIPED: READ,
        Resource.PROJECT: READ,
    },
    Role.VIEWER: {
        Resource.APPLICATION: READ,
        Resource.DEPLOYMENT: READ,
        Resource.PIPED: READ,
        Resource.PROJECT: READ,
    },
    # API keys: READ_ONLY reads; READ_WRITE does what an Editor does plus register pipeds (as PipeCD's API
    # allows). No key manages keys, user groups or project settings.
    APIKeyRole.READ_ONLY: {
        Resource.APPLICATION: READ,
        Resource.DEPLOYMENT: READ,
        Resource.PIPED: READ,
    },
    APIKeyRole.READ_WRITE: {
        Resource.APPLICATION: ALL,
        Resource.DEPLOYMENT: ALL,
        Resource.PIPED: READ | {Action.CREATE},
    },
}


def can(role: str | None, resource: str, action: str) -> bool:
    if not role:
        return False
    return action in POLICY.get(role, {}).get(resource, frozenset())
