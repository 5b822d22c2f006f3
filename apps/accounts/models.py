"""PortalSession: who is logged in to which project, with which role, so an Admin can end sessions."""

from django.db import models

from apps.projects.choices import Role
from apps.projects.models import Project


class PortalSession(models.Model):
    session_key = models.CharField(max_length=40, primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="portal_sessions")
    username = models.CharField(max_length=200)
    role = models.CharField(max_length=10, choices=Role.choices)
    groups = models.JSONField(default=list, blank=True, help_text="The SSO groups the role came from.")
    method = models.CharField(max_length=50, help_text="static_admin, or the SSO config's name.")
    source_ip = models.CharField(max_length=45, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "username"], name="portalsession_user")]

    def __str__(self) -> str:
        return f"{self.username}@{self.project_id} ({self.role})"
