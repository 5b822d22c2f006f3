"""Live fragments answer with real status codes, and secrets are shown once, in the POST response only."""

import base64
import logging
import re

import pytest
from django.urls import reverse

from apps.deployments.choices import DeploymentStatus, StageStatus
from apps.deployments.services import transition_deployment, transition_stage
from apps.pipeds.models import PipedKey
from apps.pipeds.services import authenticate_piped
from apps.projects.models import APIKey, AuditEvent
from apps.projects.services import authenticate_api_key

HTMX = {"HTTP_HX_REQUEST": "true"}


def live(world, deployment, **params):
    query = "&".join(f"{k}={v}" for k, v in {"fragment": "live", **params}.items())
    return reverse("webui:deployment", args=[deployment.id]) + "?" + query


def test_it_sends_an_anonymous_htmx_request_to_the_login_page(world):
    current = reverse("webui:deployment", args=[world.waiting.id])
    response = world.clients["anonymous"].get(
        live(world, world.waiting), HTTP_HX_CURRENT_URL=f"http://testserver{current}", **HTMX
    )
    assert response.status_code == 401
    assert response["HX-Redirect"] == f"/login/?next={current.replace('/', '%2F')}"


@pytest.mark.parametrize(
    ("persona", "status", "text"),
    [("viewer", 403, "may not update deployments"), ("outsider", 404, "not found")],
)
def test_it_answers_htmx_refusals_with_the_status_and_a_fragment(world, persona, status, text):
    url = reverse("webui:stage_approve", args=[world.waiting.id, "approve"])
    response = world.clients[persona].post(url, **HTMX)
    assert response.status_code == status
    body = response.content.decode()
    assert text in body.lower() or text in body
    assert "<html" not in body  # a fragment: the page's error box shows it


def test_it_polls_a_running_deployment_and_stops_when_it_completes(world):
    client = world.clients["viewer"]
    body = client.get(live(world, world.waiting, shown="approve"), **HTMX).content.decode()
    assert 'hx-trigger="every 2s"' in body
    assert body.lstrip().startswith('<div id="deployment-live"')
    assert "stage-log" not in body  # the log shown is still the one the page follows
    assert "Waiting for approval" in body

    stages = {s.stage_id: s for s in world.waiting.stages.all()}
    transition_stage(stages["approve"].pk, StageStatus.SUCCESS)
    transition_stage(stages["primary-rollout"].pk, StageStatus.RUNNING)
    body = client.get(live(world, world.waiting, shown="approve"), **HTMX).content.decode()
    # The followed stage moved on: its log comes along out of band, polling too.
    assert 'id="stage-log" class="card log-card" hx-swap-oob="true"' in body
    assert reverse("webui:stage_logs", args=[world.waiting.id, "primary-rollout"]) in body

    transition_deployment(world.waiting.id, DeploymentStatus.FAILURE, "ECS said no")
    body = client.get(live(world, world.waiting, shown="primary-rollout"), **HTMX).content.decode()
    assert "hx-trigger" not in body
    assert "ECS said no" in body


def test_it_keeps_a_chosen_stage_while_polling(world):
    body = (
        world.clients["viewer"]
        .get(live(world, world.waiting, stage="canary-rollout", shown="canary-rollout"), **HTMX)
        .content.decode()
    )
    assert "stage=canary-rollout" in body
    assert "stage-log" not in body


def test_it_serves_stage_logs_as_a_fragment_or_a_page(world):
    url = reverse("webui:stage_logs", args=[world.waiting.id, "canary-rollout"])
    fragment = world.clients["viewer"].get(url, **HTMX).content.decode()
    assert fragment.lstrip().startswith('<section id="stage-log"')
    assert "ECS_CANARY_ROLLOUT: step 3 of 3" in fragment
    assert "hx-trigger" not in fragment  # that stage is over: nothing more to fetch
    page = world.clients["viewer"].get(url).content.decode()
    assert "<title>Log of canary-rollout" in page
    running = world.clients["viewer"].get(
        reverse("webui:stage_logs", args=[world.waiting.id, "approve"]), **HTMX
    )
    assert 'hx-trigger="every 2s"' in running.content.decode()


# --- Secrets shown once ----------------------------------------------------------------------------------


def assert_shown_once(response, secret: str, client, later_urls, caplog) -> None:
    assert response.status_code == 201
    assert secret in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    for url in later_urls:
        assert secret not in client.get(url).content.decode()
    assert secret not in str(dict(client.session.items()))
    assert secret not in caplog.text
    for event in AuditEvent.objects.all():
        assert secret not in str(event.details)


def test_it_shows_a_new_pipeds_key_once_with_the_config_to_paste(world, caplog, settings):
    caplog.set_level(logging.DEBUG)
    client = world.clients["admin"]
    response = client.post(reverse("webui:settings_piped_add"), {"name": "staging", "description": "eu"})
    body = response.content.decode()
    piped_id = re.search(r"pipedID: ([0-9a-f-]{36})", body).group(1)
    key_base64 = re.search(r"pipedKeyData: (\S+)", body).group(1)
    key = base64.b64decode(key_base64).decode()
    assert "projectID: demo" in body
    assert f"apiAddress: {settings.PIPEPORTAL_BASE_URL}" in body
    assert authenticate_piped("demo", piped_id, key) is not None
    assert not PipedKey.objects.filter(key_hash__in=[key, key_base64]).exists()
    assert_shown_once(
        response,
        key_base64,
        client,
        [reverse("webui:settings_piped", args=[piped_id]), reverse("webui:settings_pipeds")],
        caplog,
    )


def test_it_shows_a_second_piped_key_once(world, caplog):
    caplog.set_level(logging.DEBUG)
    client = world.clients["admin"]
    response = client.post(reverse("webui:settings_piped_key_add", args=[world.piped.id]))
    key_base64 = re.search(r'id="piped-key">([^<]+)<', response.content.decode()).group(1)
    key = base64.b64decode(key_base64).decode()
    assert authenticate_piped("demo", str(world.piped.id), key) == world.piped
    assert world.piped.keys.count() == 2
    assert_shown_once(
        response, key_base64, client, [reverse("webui:settings_piped", args=[world.piped.id])], caplog
    )


def test_it_shows_a_new_api_key_once(world, caplog):
    caplog.set_level(logging.DEBUG)
    client = world.clients["admin"]
    response = client.post(reverse("webui:settings_api_keys"), {"name": "deployer", "role": "READ_WRITE"})
    raw = re.search(r'id="api-key">([^<]+)<', response.content.decode()).group(1)
    api_key = authenticate_api_key(raw)
    assert api_key is not None and api_key.name == "deployer"
    assert not APIKey.objects.filter(key_hash=raw.partition(".")[2]).exists()
    assert_shown_once(response, raw, client, [reverse("webui:settings_api_keys")], caplog)


def test_it_shows_the_webhook_secret_to_admins_only(world):
    secret = world.project.git_webhook_secret
    assert secret in world.clients["admin"].get(reverse("webui:settings_project")).content.decode()
    for persona in ("editor", "viewer"):
        assert secret not in world.clients[persona].get(reverse("webui:settings_project")).content.decode()
