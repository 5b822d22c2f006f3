"""The caller of a service: a person in a project, a static admin, an API key, a piped or the system."""

from dataclasses import dataclass, field

from apps.core.errors import Forbidden, NotFound

from .choices import ActorKind, Role
from .roles import can


@dataclass(frozen=True)
class Principal:
    project_id: str | None
    kind: str
    name: str
    role: str
    groups: tuple[str, ...] = field(default=())
    source_ip: str = ""

    @property
    def identity(self) -> str:
        """The name written to the audit log and counted as an approver."""
        if self.kind == ActorKind.API_KEY:
            return f"apikey:{self.name}"
        if self.kind == ActorKind.PIPED:
            return f"piped:{self.name}"
        return self.name

    def can(self, resource: str, action: str) -> bool:
        return can(self.role, resource, action)

    def authorize(self, resource: str, action: str, project_id: str | None = None) -> None:
        """404 for another project's object (existence is not revealed), 403 for a missing permission."""
        if self.kind != ActorKind.SYSTEM and project_id is not None and project_id != self.project_id:
            raise NotFound(f"{resource} not found")
        if not self.can(resource, action):
            raise Forbidden(f"Your role ({self.role}) may not {action} {resource}s.")


def system_principal(project_id: str | None = None, name: str = "system") -> Principal:
    """Management commands and the operators' console act with full rights."""
    return Principal(project_id=project_id, kind=ActorKind.SYSTEM, name=name, role=Role.ADMIN)
