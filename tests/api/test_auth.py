"""How the API authenticates: only the API-KEY header, never the portal's session cookie, so no CSRF."""

from django.test import Client

from apps.deployments.models import Command

from .conftest import snapshot


def test_a_script_posts_without_any_csrf_token(keys, application):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        f"/api/v1/applications/{application.id}/sync",
        data="{}",
        content_type="application/json",
        headers={"Authorization": f"API-KEY {keys['rw']}"},
    )
    assert response.status_code == 200
    assert Command.objects.filter(pk=response.json()["command_id"]).exists()


def test_a_portal_session_does_not_authenticate_the_api(clients, application):
    before = snapshot()
    admin = clients["admin"]
    assert admin.get("/api/v1/applications").status_code == 401
    response = admin.post(
        f"/api/v1/applications/{application.id}/sync", data="{}", content_type="application/json"
    )
    assert response.status_code == 401
    assert snapshot() == before


def test_the_scheme_name_is_case_insensitive_and_spaces_are_tolerated(keys):
    for header in (f"api-key {keys['ro']}", f"API-KEY   {keys['ro']}  "):
        response = Client().get("/api/v1/pipeds", headers={"Authorization": header})
        assert response.status_code == 200, header


def test_the_browsable_docs_are_served(db):
    assert Client().get("/api/v1/docs").status_code == 200
