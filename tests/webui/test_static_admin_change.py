"""The static admin changing its own credentials stays logged in; its other sessions end."""

from django.test import Client
from django.urls import reverse


def login(client: Client, project_id: str, username: str, password: str) -> None:
    response = client.post(f"/login/{project_id}/", {"username": username, "password": password})
    assert response.status_code == 302, response.content


def test_the_session_that_changes_the_password_stays_and_the_others_end(project_credentials):
    project, username, password = project_credentials
    here, elsewhere = Client(), Client()
    login(here, project.id, username, password)
    login(elsewhere, project.id, username, password)
    response = here.post(
        reverse("webui:settings_static_admin"),
        {"username": username, "password": "a-brand-new-password", "password_again": "a-brand-new-password"},
    )
    assert response.status_code == 302, response.content
    assert here.get(reverse("webui:settings_static_admin")).status_code == 200
    assert elsewhere.get(reverse("webui:settings_static_admin")).status_code == 302
