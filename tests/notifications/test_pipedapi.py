"""The piped API's notification calls: events registered once, attempts recorded once, scoped to the piped."""

import uuid

import pytest

from apps.applications.services import add_application
from apps.notifications.models import NotificationAttempt, NotificationEvent
from apps.projects.principal import system_principal

from .conftest import PipedClient

pytestmark = pytest.mark.django_db


def event(**fields) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "DEPLOYMENT_SUCCEEDED",
        "occurred_at": "2026-01-01T00:00:00Z",
        "summary": "Deployment of hello succeeded in 4m10s",
        **fields,
    }


def attempt(of: dict, number: int = 1, **fields) -> dict:
    return {
        "event": of,
        "receiver": "ci",
        "kind": "webhook",
        "attempt": number,
        "outcome": "DELIVERED",
        "status_code": 200,
        "error": "",
        "duration_ms": 12,
        "attempted_at": "2026-01-01T00:00:01Z",
        **fields,
    }


@pytest.fixture
def app_of_second_piped(project, second_piped_and_key):
    return add_application(
        system_principal(project.id),
        project,
        name="theirs",
        piped_id=second_piped_and_key[0].id,
        platform_provider="ECS",
        repo_id="manifests",
        path="apps/theirs",
    )


def test_an_event_is_new_once(piped_client, application, piped):
    sent = event(application_id=str(application.id))
    first = piped_client.post("/notifications/events", {"event": sent})
    again = piped_client.post("/notifications/events", {"event": sent})
    assert (first.status_code, first.json()) == (200, {"new": True})
    assert (again.status_code, again.json()) == (200, {"new": False})
    stored = NotificationEvent.objects.get(pk=sent["id"])
    assert (stored.piped_id, stored.application_id, stored.type) == (piped.id, application.id, sent["type"])


def test_another_pipeds_application_is_not_linked(piped_client, app_of_second_piped):
    sent = event(application_id=str(app_of_second_piped.id), deployment_id=str(uuid.uuid4()))
    assert piped_client.post("/notifications/events", {"event": sent}).json() == {"new": True}
    stored = NotificationEvent.objects.get(pk=sent["id"])
    assert (stored.application_id, stored.deployment_id) == (None, None)


def test_another_pipeds_event_id_is_not_new_and_gets_no_attempts(piped_client, second_client):
    theirs = event()
    assert second_client.post("/notifications/events", {"event": theirs}).json() == {"new": True}
    assert piped_client.post("/notifications/events", {"event": theirs}).json() == {"new": False}
    response = piped_client.post("/notifications/attempts", {"attempts": [attempt(theirs)]})
    assert response.status_code == 200
    assert not NotificationAttempt.objects.exists()


def test_attempts_are_recorded_once_with_their_event(piped_client, piped):
    sent = event()
    batch = [
        attempt(sent, 1, outcome="RETRYING", status_code=503, error="503 busy"),
        attempt(sent, 2),
    ]
    assert piped_client.post("/notifications/attempts", {"attempts": batch}).json() == {"received": 2}
    # The same batch again (its answer was lost on the way back): nothing doubles.
    assert piped_client.post("/notifications/attempts", {"attempts": batch}).status_code == 200
    rows = NotificationAttempt.objects.filter(event_id=sent["id"]).order_by("attempt")
    assert [(a.attempt, a.outcome, a.status_code, a.error) for a in rows] == [
        (1, "RETRYING", 503, "503 busy"),
        (2, "DELIVERED", 200, ""),
    ]
    assert {a.piped_id for a in rows} == {piped.id}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/notifications/events", {"event": {**event(), "type": "DEPLOYMENT_SUCCEDED"}}, "event.type"),
        ("/notifications/events", {"event": {**event(), "id": "not-a-uuid"}}, "event.id"),
        ("/notifications/events", {"event": {**event(), "occurred_at": "yesterday"}}, "event.occurred_at"),
        # Well formed, but no such month: parse_datetime raised ValueError, a 500.
        (
            "/notifications/events",
            {"event": {**event(), "occurred_at": "2020-13-45T00:00:00"}},
            "event.occurred_at",
        ),
        # Its UTC is in the year 10000: the database adapter overflowed, a 500.
        (
            "/notifications/attempts",
            {"attempts": [attempt(event(), attempted_at="9999-12-31T23:59:59-23:59")]},
            "attempts[0].attempted_at",
        ),
        (
            "/notifications/attempts",
            {"attempts": [attempt(event(), duration_ms=float("nan"))]},
            "attempts.0.duration_ms",
        ),
        ("/notifications/attempts", {"attempts": [attempt(event(), outcome="MAYBE")]}, "attempts[0].outcome"),
        ("/notifications/attempts", {"attempts": [attempt(event(), kind="email")]}, "attempts[0].kind"),
        ("/notifications/attempts", {"attempts": [attempt(event(), attempt=0)]}, "attempts[0].attempt"),
        ("/notifications/attempts", {"attempts": [attempt(event(), attempt="x")]}, "attempts[0]"),
        ("/notifications/attempts", {"attempts": "all"}, "attempts"),
        (
            "/notifications/attempts",
            {"attempts": [attempt(event()), attempt({**event(), "type": "NOPE"})]},
            "attempts[1].event.type",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(piped_client, path, body, field):
    response = piped_client.post(path, body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not NotificationAttempt.objects.exists()
    assert not NotificationEvent.objects.exists()


def test_a_wrong_key_gets_the_piped_apis_401(project, piped):
    intruder = PipedClient(project.id, piped.id, "not-the-key")
    response = intruder.post("/notifications/events", {"event": event()})
    assert (response.status_code, response.json()) == (401, {"detail": "Unauthorized"})
    assert not NotificationEvent.objects.exists()
