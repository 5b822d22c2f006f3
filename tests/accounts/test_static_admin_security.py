"""Static admin login: the throttle cannot be walked around, and a reset password ends the old sessions."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse

from apps.accounts.models import PortalSession
from apps.accounts.services import SESSION_KEY
from apps.projects.models import AuditEvent
from apps.projects.principal import system_principal
from apps.projects.services import create_project, set_static_admin, set_static_admin_disabled

ATTACKER = "203.0.113.7"
LOAD_BALANCER = "10.0.3.25"


def login_url(project_id: str) -> str:
    return reverse("accounts:project_login", args=[project_id])


def settings_page() -> str:
    return reverse("webui:settings_static_admin")


@pytest.fixture
def creds(db):
    return create_project(system_principal(), "guarded", shared_sso_config="corp")


def test_behind_a_load_balancer_a_made_up_x_forwarded_for_does_not_reset_the_throttle(settings, creds):
    # The ALB appends the address it saw to what the client sent: only the last entry is the client's.
    settings.PIPEPORTAL_TRUST_X_FORWARDED_FOR = True
    project, username, password = creds
    client = Client(REMOTE_ADDR=LOAD_BALANCER)
    for attempt in range(5):
        response = client.post(
            login_url(project.id),
            {"username": username, "password": "wrong"},
            HTTP_X_FORWARDED_FOR=f"10.9.9.{attempt}, {ATTACKER}",
        )
        assert response.status_code == 400
    response = client.post(
        login_url(project.id),
        {"username": username, "password": password},
        HTTP_X_FORWARDED_FOR=f"10.9.9.99, {ATTACKER}",
    )
    assert response.status_code == 429
    throttled = AuditEvent.objects.get(verb="login.throttled", project=project)
    assert throttled.source_ip == ATTACKER


def test_behind_a_load_balancer_other_addresses_still_log_in(settings, creds):
    settings.PIPEPORTAL_TRUST_X_FORWARDED_FOR = True
    project, username, password = creds
    client = Client(REMOTE_ADDR=LOAD_BALANCER)
    for _ in range(5):
        client.post(
            login_url(project.id), {"username": username, "password": "wrong"}, HTTP_X_FORWARDED_FOR=ATTACKER
        )
    colleague = Client(REMOTE_ADDR=LOAD_BALANCER)
    response = colleague.post(
        login_url(project.id),
        {"username": username, "password": password},
        HTTP_X_FORWARDED_FOR="198.51.100.20",
    )
    assert response.status_code == 302
    assert PortalSession.objects.get(project=project).source_ip == "198.51.100.20"


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_parallel_guesses_gets_no_more_tries_than_the_limit(settings):
    # A slow hasher (the production one) keeps every guess in flight at once: counting only after the
    # password check let each of them read "no failures yet".
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    project, username, _ = create_project(system_principal(), "burst")
    guesses = 8
    barrier = threading.Barrier(guesses)

    def guess(index: int) -> int:
        try:
            client = Client(REMOTE_ADDR=ATTACKER)
            barrier.wait()
            return client.post(
                login_url(project.id), {"username": username, "password": f"guess-{index}"}
            ).status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(guesses) as pool:
        codes = sorted(pool.map(guess, range(guesses)))
    assert codes == [400] * 5 + [429] * 3
    assert AuditEvent.objects.filter(project=project, verb="login.failure").count() == 5


def logged_in_static_admin(project, username, password) -> Client:
    client = Client()
    assert client.post(login_url(project.id), {"username": username, "password": password}).status_code == 302
    assert client.get(settings_page()).status_code == 200
    return client


def test_a_reset_password_ends_the_sessions_opened_with_the_old_one(creds):
    project, username, password = creds
    stolen = logged_in_static_admin(project, username, password)
    set_static_admin(system_principal(project.id), project, username=username, password="a-new-password-123")

    response = stolen.get(settings_page())
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert SESSION_KEY not in stolen.session
    assert not PortalSession.objects.filter(project=project).exists()
    # The new password opens a session that works.
    fresh = logged_in_static_admin(project, username, "a-new-password-123")
    assert fresh.get(settings_page()).status_code == 200


def test_disabling_the_static_admin_ends_its_sessions(creds, settings):
    settings.PIPEPORTAL_SSO_FROM_ENV = [
        {"kind": "openid_connect", "name": "corp", "issuer": "https://idp.example.com", "client_id": "portal"}
    ]
    project, username, password = creds
    client = logged_in_static_admin(project, username, password)
    set_static_admin_disabled(system_principal(project.id), project, True)

    assert client.get(settings_page()).status_code == 302
    assert SESSION_KEY not in client.session


def test_a_renamed_static_admin_logs_in_again(creds):
    project, username, password = creds
    client = logged_in_static_admin(project, username, password)
    set_static_admin(system_principal(project.id), project, username="ops-admin", password=password)
    assert client.get(settings_page()).status_code == 302


def test_sso_sessions_do_not_depend_on_the_static_admin(clients, project):
    set_static_admin(
        system_principal(project.id), project, username=project.static_admin_username, password="x" * 16
    )
    assert clients["admin"].get(settings_page()).status_code == 200


def test_the_page_asked_for_survives_the_project_picker_whole(creds):
    project, username, password = creds
    wanted = "/deployments/?status=RUNNING&application=web#latest"
    client = Client()
    picked = client.post(reverse("accounts:login"), {"project": project.id, "next": wanted})
    assert picked.status_code == 302
    login_page = picked["Location"]
    response = client.post(login_page, {"username": username, "password": password})
    assert response.status_code == 302
    assert response["Location"] == wanted


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"]
)
def test_next_never_leaves_the_portal(creds, target):
    project, username, password = creds
    client = Client()
    picked = client.post(reverse("accounts:login"), {"project": project.id, "next": target})
    assert "evil" not in picked["Location"] and "javascript" not in picked["Location"]
    response = client.post(
        f"{login_url(project.id)}?next={target}", {"username": username, "password": password, "next": target}
    )
    assert response["Location"] == "/"


def test_the_static_admin_changing_its_own_password_keeps_its_session_only(creds, rf):
    from apps.accounts.services import keep_static_admin_session, principal_from_session

    project, username, password = creds
    mine = logged_in_static_admin(project, username, password)
    other = logged_in_static_admin(project, username, password)
    set_static_admin(
        system_principal(project.id), project, username="ops-admin", password="a-new-password-123"
    )

    # What a view does after the change, with the session of the request that made it.
    request = rf.get("/")
    request.session = mine.session
    keep_static_admin_session(request, project)
    request.session.save()

    assert mine.get(settings_page()).status_code == 200
    assert mine.session[SESSION_KEY]["username"] == "ops-admin"
    assert PortalSession.objects.get(session_key=mine.session.session_key).username == "ops-admin"
    assert other.get(settings_page()).status_code == 302
    # Anyone else's session is left as it is.
    sso_request = rf.get("/")
    sso_request.session = Client().session
    keep_static_admin_session(sso_request, project)
    assert principal_from_session(sso_request) is None
