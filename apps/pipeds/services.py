"""Business rules for pipeds: register, rotate keys, enable/disable, authenticate."""

import base64
import uuid

from django.db import IntegrityError, transaction

from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.core.keys import hash_key, new_secret
from apps.projects import audit
from apps.projects.models import Project
from apps.projects.principal import Principal
from apps.projects.roles import Action, Resource

from .choices import MAX_PIPED_KEYS
from .models import Piped, PipedKey


def encode_key(key: str) -> str:
    """The form pasted into piped-config.yaml as pipedKeyData."""
    return base64.b64encode(key.encode()).decode()


def get_piped(principal: Principal, piped_id, action: str = Action.GET) -> Piped:
    """A piped of the caller's project (404 otherwise), checked for `action`."""
    try:
        piped = Piped.objects.get(pk=uuid.UUID(str(piped_id)))
    except (Piped.DoesNotExist, ValueError):
        raise NotFound("Piped not found.") from None
    principal.authorize(Resource.PIPED, action, piped.project_id)
    return piped


@transaction.atomic
def register_piped(
    principal: Principal, project: Project, *, name: str, description: str = ""
) -> tuple[Piped, str]:
    """Returns the piped and its first key, to show once."""
    principal.authorize(Resource.PIPED, Action.CREATE, project.id)
    name = name.strip()
    if not name:
        raise InvalidInput("The piped name must not be empty.", field="name")
    if len(name) > 100:
        raise InvalidInput("The piped name is longer than 100 characters.", field="name")
    try:
        with transaction.atomic():
            piped = Piped.objects.create(project=project, name=name, description=description)
    except IntegrityError:
        raise Conflict(f"A piped named {name!r} already exists in this project.", field="name") from None
    key = new_secret(36)
    PipedKey.objects.create(piped=piped, key_hash=hash_key(key), creator=principal.identity)
    audit.record(principal, "piped.register", obj=piped, project_id=project.id, details={"name": name})
    return piped, key


@transaction.atomic
def update_piped(principal: Principal, piped: Piped, *, name: str, description: str) -> Piped:
    principal.authorize(Resource.PIPED, Action.UPDATE, piped.project_id)
    name = name.strip()
    if not name:
        raise InvalidInput("The piped name must not be empty.", field="name")
    if Piped.objects.filter(project_id=piped.project_id, name=name).exclude(pk=piped.pk).exists():
        raise Conflict(f"A piped named {name!r} already exists in this project.", field="name")
    piped.name, piped.description = name, description
    piped.save(update_fields=["name", "description", "updated_at"])
    audit.record(principal, "piped.update", obj=piped, details={"name": name})
    return piped


@transaction.atomic
def add_piped_key(principal: Principal, piped: Piped) -> str:
    """Add a second key for rotation. Returns the new key, to show once."""
    principal.authorize(Resource.PIPED, Action.UPDATE, piped.project_id)
    # Lock the piped row so two concurrent calls cannot both see one key and add two.
    Piped.objects.select_for_update().get(pk=piped.pk)
    if piped.keys.count() >= MAX_PIPED_KEYS:
        raise Conflict(f"A piped has at most {MAX_PIPED_KEYS} keys: delete the old one first.")
    key = new_secret(36)
    PipedKey.objects.create(piped=piped, key_hash=hash_key(key), creator=principal.identity)
    audit.record(principal, "piped.add_key", obj=piped)
    return key


@transaction.atomic
def delete_piped_key(principal: Principal, piped: Piped, key_id: int) -> None:
    principal.authorize(Resource.PIPED, Action.UPDATE, piped.project_id)
    Piped.objects.select_for_update().get(pk=piped.pk)
    try:
        key = piped.keys.get(pk=key_id)
    except (PipedKey.DoesNotExist, ValueError):
        raise NotFound("Piped key not found.") from None
    if piped.keys.count() <= 1:
        raise Conflict("This is the piped's only key: add a new key and switch the piped to it first.")
    key.delete()
    audit.record(principal, "piped.delete_key", obj=piped, details={"key_id": key_id})


@transaction.atomic
def set_piped_disabled(principal: Principal, piped: Piped, disabled: bool) -> Piped:
    principal.authorize(Resource.PIPED, Action.UPDATE, piped.project_id)
    piped.disabled = disabled
    piped.save(update_fields=["disabled", "updated_at"])
    audit.record(principal, "piped.disable" if disabled else "piped.enable", obj=piped)
    return piped


def authenticate_piped(project_id: str, piped_id: str, key: str) -> Piped | None:
    """The enabled piped owning this key, or None. One indexed query; no detail about what was wrong."""
    try:
        piped_uuid = uuid.UUID(piped_id)
    except ValueError:
        return None
    if not key:
        return None
    match = (
        PipedKey.objects.select_related("piped")
        .filter(key_hash=hash_key(key), piped_id=piped_uuid, piped__project_id=project_id)
        .first()
    )
    if match is None or match.piped.disabled:
        return None
    return match.piped
