"""The piped API's notification calls (`/api/piped/v1/notifications/…`), mounted on the piped NinjaAPI.

Authentication, error shapes and 404 scoping are the piped API's own (apps/pipeds/pipedapi.py):
`request.auth` is the calling piped.

| call | body -> answer |
|---|---|
| `POST /notifications/events` | `{event: {id, type, occurred_at, summary, application_id, deployment_id}}` -> `{new}`: false when the event id is known (another process sends it) |
| `POST /notifications/attempts` | `{attempts: [{event, receiver, kind, attempt, outcome, status_code, error, duration_ms, attempted_at}]}` -> `{received}` |
"""

from typing import Any

from ninja import Router, Schema

from . import services

router = Router(tags=["notifications"])


class EventIn(Schema):
    event: dict[str, Any]


class AttemptsIn(Schema):
    attempts: list[dict[str, Any]]


@router.post("/events")
def register_event(request, payload: EventIn):
    _, new = services.record_event(request.auth, payload.event)
    return {"new": new}


@router.post("/attempts")
def record_attempts(request, payload: AttemptsIn):
    return {"received": services.record_attempts(request.auth, payload.attempts)}
