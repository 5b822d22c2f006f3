"""Enumerations of the projects app, with PipeCD's names."""

from django.db import models


class Role(models.TextChoices):
    ADMIN = "Admin", "Admin"
    EDITOR = "Editor", "Editor"
    VIEWER = "Viewer", "Viewer"


# Higher wins when several user groups match one person.
ROLE_RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.ADMIN: 3}


class APIKeyRole(models.TextChoices):
    READ_ONLY = "READ_ONLY", "Read only"
    READ_WRITE = "READ_WRITE", "Read and write"


class ActorKind(models.TextChoices):
    USER = "user", "User"
    STATIC_ADMIN = "static_admin", "Static admin"
    API_KEY = "apikey", "API key"
    PIPED = "piped", "Piped"
    SYSTEM = "system", "System"
