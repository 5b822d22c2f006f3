"""Settings → Project: the Git webhook's absolute URL, its secret for Admins only, rotating it, and how to
set it up on GitHub. The URL and secret shown are checked against the real webhook endpoint."""

import hashlib
import hmac
import json
import re

import pytest
from django.urls import reverse

from apps.projects.models import AuditEvent, Project

PUSH = {
    "ref": "refs/heads/main",
    "repository": {"clone_url": "https://github.com/example/infra.git"},
}


def settings_page(world, persona: str) -> str:
    response = world.clients[persona].get(reverse("webui:settings_project"))
    assert response.status_code == 200
    return response.content.decode()


def webhook_card(page: str) -> str:
    return re.search(r'<section class="card" id="git-webhook">(.*?)</section>', page, re.S).group(1)


def deliver(client, url: str, secret: str):
    """What GitHub sends: the JSON body signed with the secret."""
    body = json.dumps(PUSH).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post(
        url,
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature,
        HTTP_X_GITHUB_EVENT="push",
    )


def test_it_shows_the_absolute_webhook_url_of_the_project(world, settings):
    settings.PIPEPORTAL_BASE_URL = "https://cd.example.com"
    card = webhook_card(settings_page(world, "viewer"))
    assert (
        '<code class="break" id="webhook-url">https://cd.example.com/webhooks/git?project=demo</code>' in card
    )
    assert "<code>application/json</code>" in card


@pytest.mark.parametrize("persona", ["editor", "viewer"])
def test_members_who_are_not_admins_see_that_a_secret_exists_but_not_the_secret(world, persona):
    card = webhook_card(settings_page(world, persona))
    assert world.project.git_webhook_secret not in card
    assert "set; only Admins can see it" in card
    assert "ask an Admin of this project for it" in card
    assert reverse("webui:settings_webhook_rotate") not in card


def test_an_admin_sees_the_secret_and_a_github_how_to(world):
    card = webhook_card(settings_page(world, "admin"))
    assert f'id="webhook-secret">{world.project.git_webhook_secret}</code>' in card
    assert "How to add it on GitHub" in card
    assert "Just the push event" in card
    assert "X-Hub-Signature-256" in card
    assert reverse("webui:settings_webhook_rotate") in card


def test_the_url_and_secret_shown_are_the_ones_the_webhook_accepts_and_rotating_replaces_the_secret(
    world, client, settings
):
    page = settings_page(world, "admin")
    url = re.search(r'id="webhook-url">([^<]+)</code>', page).group(1).replace("&amp;", "&")
    path = url.removeprefix(settings.PIPEPORTAL_BASE_URL)
    assert path == "/webhooks/git?project=demo"
    old_secret = re.search(r'id="webhook-secret">([^<]+)</code>', page).group(1)
    assert deliver(client, path, old_secret).status_code == 200

    response = world.clients["admin"].post(reverse("webui:settings_webhook_rotate"))
    assert response.status_code == 302
    page = world.clients["admin"].get(response["Location"]).content.decode()
    assert "New webhook secret generated" in page
    new_secret = re.search(r'id="webhook-secret">([^<]+)</code>', page).group(1)
    assert new_secret != old_secret
    assert Project.objects.get(pk="demo").git_webhook_secret == new_secret
    assert AuditEvent.objects.filter(project_id="demo", verb__contains="webhook").exists()
    assert deliver(client, path, old_secret).status_code == 401
    assert deliver(client, path, new_secret).status_code == 200
    # The secret never lands in the audit log.
    for event in AuditEvent.objects.filter(project_id="demo"):
        assert new_secret not in str(event.details) and old_secret not in str(event.details)
