"""Public API v1: pipeds (list, get, register). Not the piped's own API: that is pipedapi.py."""

from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Field, Router, Schema, Status
from pydantic import BaseModel, ConfigDict

from apps.pipelineconfig.types import mask_url_credentials
from apps.projects.roles import Action, Resource
from apps.projects.services import get_project
from pipeportal.api_support import (
    LIMIT_QUERY,
    ErrorOut,
    cursor_uuid,
    decode_cursor,
    keyset_after,
    page,
    principal_of,
)

from . import services
from .models import Piped

router = Router(tags=["pipeds"])
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}


class PipedIn(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""


class RegisteredPipedOut(BaseModel):
    piped_id: str
    piped_key: str = Field(description="Shown once: keep it, it cannot be read back.")
    piped_key_base64: str = Field(description="The key as pipedKeyData for piped-config.yaml.")


class PipedOut(BaseModel):
    id: str
    project_id: str
    name: str
    description: str
    status: str = Field(description="ONLINE while heartbeats arrive, else OFFLINE.")
    disabled: bool
    version: str
    repositories: list[Any]
    platform_providers: list[Any]
    started_at: datetime | None
    last_heartbeat_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PipedPage(BaseModel):
    items: list[PipedOut]
    next_cursor: str | None = None


def _repository_out(repository: Any) -> Any:
    """A repository as the piped reported it, minus any credential written into its remote URL."""
    if isinstance(repository, dict) and isinstance(repository.get("remote"), str):
        return {**repository, "remote": mask_url_credentials(repository["remote"])}
    return repository


def piped_out(piped: Piped) -> dict:
    return {
        "id": str(piped.id),
        "project_id": piped.project_id,
        "name": piped.name,
        "description": piped.description,
        "status": piped.status,
        "disabled": piped.disabled,
        "version": piped.version,
        "repositories": [_repository_out(r) for r in piped.repositories or []],
        "platform_providers": piped.platform_providers or [],
        "started_at": piped.started_at,
        "last_heartbeat_at": piped.last_heartbeat_at,
        "created_at": piped.created_at,
        "updated_at": piped.updated_at,
    }


@router.get("", response={200: PipedPage, **ERRORS}, summary="List pipeds")
def list_pipeds(
    request: HttpRequest,
    cursor: str | None = None,
    limit: int = LIMIT_QUERY,
):
    principal = principal_of(request)
    principal.authorize(Resource.PIPED, Action.LIST)
    after = decode_cursor(cursor, 2)
    queryset = Piped.objects.filter(project_id=principal.project_id)
    if after:
        queryset = queryset.filter(keyset_after(("name", "id"), (after[0], cursor_uuid(after[1])), False))
    rows = list(queryset.order_by("name", "id")[: limit + 1])
    rows, next_cursor = page(rows, limit, lambda p: [p.name, p.id])
    return {"items": [piped_out(p) for p in rows], "next_cursor": next_cursor}


@router.post("", response={201: RegisteredPipedOut, **ERRORS}, summary="Register a piped")
def register_piped(request: HttpRequest, payload: PipedIn, response: HttpResponse):
    """READ_WRITE keys only. The key is in this answer and nowhere else: store it now."""
    response["Cache-Control"] = "no-store"
    principal = principal_of(request)
    piped, key = services.register_piped(
        principal, get_project(principal.project_id), name=payload.name, description=payload.description
    )
    return Status(
        201, {"piped_id": str(piped.id), "piped_key": key, "piped_key_base64": services.encode_key(key)}
    )


@router.get("/{piped_id}", response={200: PipedOut, **ERRORS}, summary="Get a piped")
def get_piped(request: HttpRequest, piped_id: str):
    return piped_out(services.get_piped(principal_of(request), piped_id))
