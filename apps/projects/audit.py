"""Writing the audit log. Services call `record` in the same transaction as the change they audit."""

from typing import Any

from .models import AuditEvent
from .principal import Principal


def record(
    principal: Principal | None,
    verb: str,
    *,
    project_id: str | None = None,
    obj: Any = None,
    object_type: str = "",
    object_id: str = "",
    details: dict | None = None,
    actor: str = "",
    actor_kind: str = "",
    source_ip: str = "",
) -> AuditEvent:
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id or str(obj.pk)
    return AuditEvent.objects.create(
        project_id=project_id if project_id is not None else (principal.project_id if principal else None),
        actor=actor or (principal.identity if principal else "anonymous"),
        actor_kind=actor_kind or (principal.kind if principal else "user"),
        verb=verb,
        object_type=object_type,
        object_id=object_id,
        source_ip=source_ip or (principal.source_ip if principal else ""),
        details=details or {},
    )
