"""The static admin's login over HTTP: it lands where the person was going, and repeated failures are
throttled per project and client address (5 in 5 minutes by default) and audited."""

import time

from django.test import Client
from django.urls import reverse

from apps.projects.models import AuditEvent
from apps.projects.principal import system_principal
from apps.projects.services import create_project

ATTACKER = "203.0.113.7"


def login_url(project_id: str) -> str:
    return reverse("accounts:project_login", args=[project_id])


def test_it_logs_in_through_the_forms_and_goes_where_the_person_was_going(project_credentials):
    project, username, password = project_credentials
    client = Client()
    wanted = reverse("webui:applications") + "?kind=ECS"
    response = client.get(wanted)
    assert response.status_code == 302
    choose = response["Location"]
    assert choose == "/login/?next=/applications/%3Fkind%3DECS"
    response = client.post(choose, {"project": project.id})
    assert response.status_code == 302
    response = client.post(response["Location"], {"username": username, "password": password})
    assert response.status_code == 302
    assert response["Location"] == wanted
    page = client.get(wanted).content.decode()
    assert 'title="Your role in this project">Admin</span>' in page
    assert AuditEvent.objects.filter(verb="login.success", project=project, actor=username).count() == 1


def test_it_throttles_after_five_failures_from_one_address_and_audits_them(project_credentials):
    project, username, password = project_credentials
    client = Client(REMOTE_ADDR=ATTACKER)
    for attempt in range(5):
        response = client.post(login_url(project.id), {"username": username, "password": f"guess-{attempt}"})
        assert response.status_code == 400
        assert "Wrong username or password." in response.content.decode()

    # The sixth try is refused before the password is even looked at: the right one does not help.
    response = client.post(login_url(project.id), {"username": username, "password": password})
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert client.get(reverse("webui:applications")).status_code == 302  # still anonymous

    failures = AuditEvent.objects.filter(project=project, verb="login.failure")
    assert failures.count() == 5
    assert set(failures.values_list("source_ip", "actor")) == {(ATTACKER, username)}
    throttled = AuditEvent.objects.get(project=project, verb="login.throttled")
    assert throttled.source_ip == ATTACKER

    # Hammering on is refused as well, and audited no more: one row says the throttle engaged.
    for attempt in range(20):
        response = client.post(login_url(project.id), {"username": username, "password": f"more-{attempt}"})
        assert response.status_code == 429
    assert AuditEvent.objects.filter(project=project, verb="login.throttled").count() == 1
    assert AuditEvent.objects.filter(project=project, verb="login.failure").count() == 5


def test_it_throttles_per_project_and_address(project_credentials):
    project, username, password = project_credentials
    other, other_username, other_password = create_project(system_principal(), "elsewhere")
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(5):
        attacker.post(login_url(project.id), {"username": username, "password": "wrong"})
    assert (
        attacker.post(login_url(project.id), {"username": username, "password": password}).status_code == 429
    )

    # The same address may still log in to another project, and another address to this one.
    response = attacker.post(login_url(other.id), {"username": other_username, "password": other_password})
    assert response.status_code == 302
    colleague = Client(REMOTE_ADDR="198.51.100.20")
    response = colleague.post(login_url(project.id), {"username": username, "password": password})
    assert response.status_code == 302


def test_it_does_not_believe_x_forwarded_for_unless_told_to(project_credentials):
    project, username, password = project_credentials
    client = Client(REMOTE_ADDR=ATTACKER)
    for attempt in range(5):
        client.post(
            login_url(project.id),
            {"username": username, "password": "wrong"},
            HTTP_X_FORWARDED_FOR=f"10.0.0.{attempt}",
        )
    response = client.post(
        login_url(project.id), {"username": username, "password": password}, HTTP_X_FORWARDED_FOR="10.0.0.99"
    )
    assert response.status_code == 429


def test_a_successful_login_clears_the_failures(project_credentials):
    project, username, password = project_credentials
    client = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(4):
        client.post(login_url(project.id), {"username": username, "password": "wrong"})
    assert client.post(login_url(project.id), {"username": username, "password": password}).status_code == 302
    client.post(reverse("accounts:logout"))
    for _ in range(4):
        response = client.post(login_url(project.id), {"username": username, "password": "wrong"})
        assert response.status_code == 400


def test_the_throttle_lifts_after_the_window(project_credentials, settings):
    settings.PIPEPORTAL_LOGIN_FAILURE_WINDOW = 1
    project, username, password = project_credentials
    client = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(5):
        client.post(login_url(project.id), {"username": username, "password": "wrong"})
    assert client.post(login_url(project.id), {"username": username, "password": password}).status_code == 429
    time.sleep(1.5)  # the failure counter's cache entry expires with the window
    assert client.post(login_url(project.id), {"username": username, "password": password}).status_code == 302


def test_an_ended_session_is_logged_out(world):
    """An Admin ends a person's sessions; that person's next request is anonymous."""
    assert world.clients["viewer"].get(reverse("webui:applications")).status_code == 200
    response = world.clients["admin"].post(reverse("webui:settings_sessions_end"), {"username": "victor"})
    assert response.status_code == 302
    response = world.clients["viewer"].get(reverse("webui:applications"))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert AuditEvent.objects.filter(verb="session.end", details__username="victor").exists()
