"""The operators' console login (`/admin/login/`) is throttled per client address like the static admin's."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

ATTACKER = "203.0.113.9"
LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("ops", "ops@example.com", "the-real-password-42")


def attempt(client: Client, password: str):
    return client.post(LOGIN, {"username": "ops", "password": password})


def test_guessing_the_console_password_is_throttled(operator):
    client = Client(REMOTE_ADDR=ATTACKER)
    for guess in range(5):
        response = attempt(client, f"guess-{guess}")
        assert response.status_code == 200 and "_auth_user_id" not in client.session
    # The sixth attempt is refused even with the right password.
    response = attempt(client, "the-real-password-42")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_another_address_still_logs_in_and_success_clears_the_count(operator):
    client = Client(REMOTE_ADDR=ATTACKER)
    for guess in range(5):
        attempt(client, f"guess-{guess}")
    colleague = Client(REMOTE_ADDR="198.51.100.30")
    response = attempt(colleague, "the-real-password-42")
    assert response.status_code == 302
    assert colleague.get("/admin/").status_code == 200

    careless = Client(REMOTE_ADDR="198.51.100.31")
    for guess in range(4):
        attempt(careless, f"typo-{guess}")
    assert attempt(careless, "the-real-password-42").status_code == 302
    careless.post("/admin/logout/")
    for guess in range(4):
        attempt(careless, f"typo-again-{guess}")
    assert attempt(careless, "the-real-password-42").status_code == 302


def test_force_login_and_existing_console_sessions_keep_working(operator):
    client = Client()
    client.force_login(operator)
    assert client.get("/admin/").status_code == 200
