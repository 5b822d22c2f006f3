"""The piped's notification deliveries page: Admins only (Editor/Viewer 403, another project 404), every
attempt newest first, a filter, pages."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from apps.notifications import services
from apps.notifications.models import NotificationAttempt

pytestmark = pytest.mark.django_db
START = datetime(2026, 1, 1, tzinfo=UTC)


def report(piped, *, count: int, outcome: str = "DELIVERED", application=None, start=START) -> None:
    for n in range(count):
        services.record_attempts(
            piped,
            [
                {
                    "event": {
                        "id": str(uuid.uuid4()),
                        "type": "DEPLOYMENT_SUCCEEDED",
                        "occurred_at": start.isoformat(),
                        "summary": f"Deployment of hello succeeded ({n})",
                        "application_id": str(application.id) if application else None,
                    },
                    "receiver": "ci",
                    "kind": "webhook",
                    "attempt": 1,
                    "outcome": outcome,
                    "status_code": 200 if outcome == "DELIVERED" else 503,
                    "error": "" if outcome == "DELIVERED" else "503 upstream busy",
                    "duration_ms": 30,
                    "attempted_at": (start + timedelta(seconds=n)).isoformat(),
                }
            ],
        )


def url(piped) -> str:
    return reverse("notifications:piped_attempts", args=[piped.id])


@pytest.mark.parametrize(
    ("persona", "status"), [("admin", 200), ("editor", 403), ("viewer", 403), ("outsider", 404)]
)
def test_only_admins_see_the_attempts(clients, piped, application, persona, status):
    report(piped, count=1, application=application)
    response = clients[persona].get(url(piped))
    assert response.status_code == status
    body = response.content.decode()
    if status == 200:
        assert "Deployment of hello succeeded (0)" in body
        assert f'href="{reverse("webui:application", args=[application.id])}"' in body
    elif status == 403:
        assert "may not see the notification deliveries of pipeds" in body
        assert "succeeded (0)" not in body
    else:
        assert "not found" in body.lower()
        assert "succeeded (0)" not in body


def test_an_anonymous_caller_is_sent_to_the_login_page(clients, piped):
    response = clients["anonymous"].get(url(piped))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login") + "?next=")


def test_a_piped_that_does_not_exist_is_404(clients):
    response = clients["admin"].get(reverse("notifications:piped_attempts", args=[uuid.uuid4()]))
    assert response.status_code == 404


def test_the_piped_page_links_to_it_for_admins_only(clients, piped):
    link = url(piped)
    assert link in clients["admin"].get(reverse("webui:settings_piped", args=[piped.id])).content.decode()
    assert (
        link not in clients["viewer"].get(reverse("webui:settings_piped", args=[piped.id])).content.decode()
    )


def test_newest_first_in_pages_of_fifty(clients, piped):
    report(piped, count=60)
    first = clients["admin"].get(url(piped))
    body = first.content.decode()
    assert body.count("Deployment of hello succeeded (") == 50
    assert body.index("succeeded (59)") < body.index("succeeded (58)")
    assert "succeeded (9)" not in body
    older = first.context["next_before"]
    second = clients["admin"].get(url(piped), {"before": older}).content.decode()
    assert second.count("Deployment of hello succeeded (") == 10
    assert "succeeded (9)" in second and "succeeded (10)" not in second


def test_the_outcome_filter_shows_failures_only(clients, piped):
    report(piped, count=3)
    report(piped, count=2, outcome="FAILED", start=START + timedelta(hours=1))
    body = clients["admin"].get(url(piped), {"outcome": "FAILED"}).content.decode()
    assert body.count("503 upstream busy") == 2
    assert NotificationAttempt.objects.count() == 5


@pytest.mark.parametrize(
    "query", [{"outcome": "MAYBE"}, {"before": "yesterday|1"}, {"before": "2026-01-01|x"}]
)
def test_bad_filters_are_a_400_with_the_reason(clients, piped, query):
    response = clients["admin"].get(url(piped), query)
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
