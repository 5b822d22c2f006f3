"""Routing: PipeCD's route rules, and the seed's routes delivering to real receivers."""

import base64
import re

import pytest

from apps.applications.services import add_application
from apps.notifications import hooks
from apps.notifications.notifier import notifier_for
from apps.pipelineconfig import load_piped_config
from apps.pipelineconfig.piped import NotificationRoute
from apps.projects.principal import system_principal

from .conftest import FIXTURES

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("notifications-live")]


def route(**fields) -> NotificationRoute:
    return NotificationRoute(name="r", receiver="x", **fields)


# --- The rules (pure) -----------------------------------------------------------------------------------


def test_an_empty_route_takes_everything():
    assert route().matches("DEPLOYMENT_SUCCEEDED", "web", {"env": "dev"})
    assert route().matches("PIPED_STARTED")


def test_ignore_rules_win_over_every_include_rule():
    wide = {"events": ["DEPLOYMENT_SUCCEEDED"], "apps": ["web"], "labels": {"env": "dev"}}
    event = ("DEPLOYMENT_SUCCEEDED", "web", {"env": "dev", "team": "a"})
    assert route(**wide).matches(*event)
    assert not route(**wide, ignore_events=["DEPLOYMENT_SUCCEEDED"]).matches(*event)
    assert not route(**wide, ignore_groups=["DEPLOYMENT"]).matches(*event)
    assert not route(**wide, ignore_apps=["web"]).matches(*event)
    assert not route(**wide, ignore_labels={"team": "a"}).matches(*event)
    assert route(**wide, ignore_labels={"team": "b"}).matches(*event)


def test_groups_are_pipecds_including_out_of_sync():
    sync = route(groups=["APPLICATION_SYNC"])
    assert sync.matches("APPLICATION_SYNCED", "web")
    assert sync.matches("APPLICATION_OUT_OF_SYNC", "web")
    assert not sync.matches("DEPLOYMENT_SUCCEEDED", "web")
    assert route(groups=["STAGE"]).matches("STAGE_FAILED", "web")
    assert not route(ignore_groups=["APPLICATION_SYNC"]).matches("APPLICATION_OUT_OF_SYNC", "web")


def test_apps_and_labels_filter_only_events_about_an_application():
    labelled = route(apps=["web"], labels={"env": "dev"})
    assert labelled.matches("PIPED_STARTED")
    assert labelled.matches("PIPED_OFFLINE")
    assert not labelled.matches("DEPLOYMENT_SUCCEEDED", "api", {"env": "dev"})
    assert not labelled.matches("DEPLOYMENT_SUCCEEDED", "web", {"env": "prod"})
    # PipeCD lets an application without any label through a labels filter; PipePortal does not.
    assert not labelled.matches("DEPLOYMENT_SUCCEEDED", "web", {})


# --- The seed's routes, delivered -----------------------------------------------------------------------


def seed_runtime(make_runtime, project, piped_and_key, control_plane, slack_url, webhook_url):
    piped, key = piped_and_key
    env = {
        "PROJECT_ID": project.id,
        "PIPED_ID": str(piped.id),
        "PIPED_KEY_DATA": base64.b64encode(key.encode()).decode(),
        "API_ADDRESS": control_plane.url,
        "REPO": "manifests",
        "SLACK_WEBHOOK_URL": slack_url,
        "WEBHOOK_URL": webhook_url,
    }
    spec = load_piped_config(FIXTURES / "piped-config.yaml", env=env).spec
    return make_runtime(spec=spec)


def deploy(runtime, project, piped, name: str, labels: dict, n: int) -> dict:
    app = add_application(
        system_principal(project.id),
        project,
        name=name,
        piped_id=piped.id,
        platform_provider="ECS",
        repo_id="manifests",
        path=f"apps/{name}",
        labels=labels,
    )
    deployment, _ = runtime.client.create_deployment(
        application_id=str(app.id),
        trigger_kind="ON_COMMIT",
        trigger_key=f"ON_COMMIT:{n}",
        commit={"hash": f"{n:040x}", "message": "Release", "author": "dev", "branch": "main"},
    )
    return deployment


def test_the_seed_route_fires_for_the_matching_app_only(
    make_runtime, project, piped_and_key, control_plane, receivers
):
    slack, hook = receivers(), receivers()
    runtime = seed_runtime(make_runtime, project, piped_and_key, control_plane, slack.url, hook.url)
    piped = piped_and_key[0]
    matching = deploy(runtime, project, piped, "test-app", {"app": "test-app", "env": "dev"}, 1)
    prod = deploy(runtime, project, piped, "test-app-prod", {"app": "test-app", "env": "prod"}, 2)
    other = deploy(runtime, project, piped, "other-app", {"app": "other-app", "env": "dev"}, 3)
    unlabelled = deploy(runtime, project, piped, "bare-app", {}, 4)
    for deployment in (matching, prod, other, unlabelled):
        hooks.deployment_status(runtime, deployment, "SUCCESS", "The deployment completed successfully")
    hooks.deployment_status(runtime, matching, "FAILURE", "Stage ECS_SYNC failed")
    notifier_for(runtime).flush()

    [request] = hook.requests
    body = request.json()
    assert (body["type"], body["application"]["name"]) == ("DEPLOYMENT_SUCCEEDED", "test-app")
    assert body["labels"] == {"app": "test-app", "env": "dev"}
    assert body["deployment"]["id"] == matching["id"]
    # The seed's Slack CI notice takes every app, for the four events it lists.
    slack_texts = sorted(re.sub(r" (in|after) \d+s$", "", r.json()["text"]) for r in slack.requests)
    assert slack_texts == sorted(
        [
            "Deployment of test-app succeeded",
            "Deployment of test-app-prod succeeded",
            "Deployment of other-app succeeded",
            "Deployment of bare-app succeeded",
            "Deployment of test-app failed",
        ]
    )


def test_ignore_rules_win_when_delivering(make_runtime, project, piped_and_key, receivers):
    hook = receivers()
    runtime = make_runtime(
        f"""\
        notifications:
          routes:
            - name: dev-but-not-noisy
              labels: {{env: dev}}
              ignoreApps: [noisy]
              ignoreEvents: [DEPLOYMENT_TRIGGERED]
              ignoreLabels: {{team: experiments}}
              receiver: hook
          receivers:
            - name: hook
              webhook: {{url: {hook.url}}}
        """
    )
    piped = piped_and_key[0]
    web = deploy(runtime, project, piped, "web", {"env": "dev"}, 1)
    noisy = deploy(runtime, project, piped, "noisy", {"env": "dev"}, 2)
    lab = deploy(runtime, project, piped, "lab", {"env": "dev", "team": "experiments"}, 3)
    for deployment in (web, noisy, lab):
        hooks.deployment_triggered(runtime, deployment)
        hooks.deployment_status(runtime, deployment, "SUCCESS", "")
    notifier_for(runtime).flush()
    assert [(r.json()["type"], r.json()["application"]["name"]) for r in hook.requests] == [
        ("DEPLOYMENT_SUCCEEDED", "web")
    ]
