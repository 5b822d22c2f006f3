"""Project, UserGroup, APIKey and AuditEvent."""

from django.core.validators import RegexValidator
from django.db import models

from .choices import ActorKind, APIKeyRole, Role

project_id_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$",
    "A project ID is 1 to 50 lowercase letters, digits and dashes, starting and ending with a letter or digit.",
)


class Project(models.Model):
    id = models.CharField(primary_key=True, max_length=50, validators=[project_id_validator])
    description = models.TextField(blank=True)
    static_admin_username = models.CharField(max_length=100)
    static_admin_password = models.CharField(
        max_length=200, help_text="Hashed with Django's password hasher."
    )
    static_admin_disabled = models.BooleanField(default=False)
    shared_sso_config = models.CharField(
        max_length=100, blank=True, help_text="Name of a sharedSSOConfigs entry of the control-plane config."
    )
    allow_stray_as_viewer = models.BooleanField(
        default=False, help_text="SSO users who match no user group get the Viewer role instead of a refusal."
    )
    # Verifies GitHub-style push webhooks (X-Hub-Signature-256); shown to Admins in Settings.
    git_webhook_secret = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id


class UserGroup(models.Model):
    """An SSO group whose members get a role in the project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="user_groups")
    sso_group = models.CharField(max_length=200)
    role = models.CharField(max_length=10, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sso_group"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "sso_group"],
                name="usergroup_unique_sso_group",
                violation_error_message="This SSO group is already mapped to a role in the project.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.sso_group} → {self.role}"


class APIKey(models.Model):
    """A key for scripts. Shown once as `<id>.<secret>`; only the secret's keyed hash is stored."""

    id = models.CharField(primary_key=True, max_length=32)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=10, choices=APIKeyRole.choices)
    key_hash = models.CharField(max_length=64)
    disabled = models.BooleanField(default=False)
    creator = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"],
                name="apikey_unique_name",
                violation_error_message="An API key with this name already exists in the project.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.role})"


class AuditEvent(models.Model):
    """One state change: who did what to which object, from where."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    actor = models.CharField(max_length=200, help_text="e.g. alice, static-admin, apikey:ci, piped:<id>")
    actor_kind = models.CharField(max_length=20, choices=ActorKind.choices)
    verb = models.CharField(max_length=64)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    source_ip = models.CharField(max_length=45, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "-id"], name="audit_project_recent")]

    def __str__(self) -> str:
        return f"{self.actor} {self.verb} {self.object_type}:{self.object_id}"
