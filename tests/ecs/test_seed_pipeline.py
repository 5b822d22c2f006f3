"""The seed's pipeline — canary 20 % → canary traffic 10 % → approval → primary rollout → primary 100 % →
canary clean — with the approval given through the portal by an Editor (a Viewer is refused), and what the
portal shows on the way: the traffic split and task counts on the deployment page, the live state tree on
the application page."""

import pytest
from django.urls import reverse

from apps.deployments.choices import CommandType
from apps.deployments.models import Command
from apps.pipedagent.livestate import Watchers

from .conftest import (
    SEED_SERVICE,
    V1,
    add_app,
    deploy_first_version,
    finish_stage,
    logs,
    push_new_version,
    seed_files,
    stage_row,
    task_sets,
    weights,
)

pytestmark = pytest.mark.django_db

CANARY = ("ACTIVE", 20.0, "hogehoge:2", "canary-tg")
V2 = ("PRIMARY", 100.0, "hogehoge:2", "primary-tg")


def test_the_seed_pipeline_with_an_approval_from_the_portal(
    project, piped, ecs_agent, manifests, aws, ecs_values, clients
):
    app = add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values), "apps/hello")
    deployment = push_new_version(agent, manifests, seed_files(ecs_values, image_tag="v2"), "apps/hello")
    page = reverse("webui:deployment", kwargs={"deployment_id": deployment.id})
    app_page = reverse("webui:application", kwargs={"app_id": app.id})

    preview = clients["viewer"].get(page).content.decode()
    assert (
        "Plan preview" in preview
        and "+  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/hogehoge:v2" in preview
    )

    assert finish_stage(agent, deployment.id, "stage-0").status == "SUCCESS"  # ECS_CANARY_ROLLOUT 20
    watchers = Watchers(agent.scheduler)  # the piped's live state watcher, one round at a time
    watchers.live_state_once()
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V1, CANARY]
    assert weights(aws, ecs_values) == (100, 0)
    html = clients["viewer"].get(page).content.decode()
    assert 'aria-label="Canary"' in html and "(not routed yet)" in html
    assert 'hogehoge:2</strong> <span class="muted">hogehoge:v2</span> at 20 %' in html

    assert finish_stage(agent, deployment.id, "stage-1").status == "SUCCESS"  # ECS_TRAFFIC_ROUTING canary 10
    watchers.live_state_once()
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V1, CANARY]
    assert weights(aws, ecs_values) == (90, 10)
    html = clients["viewer"].get(page).content.decode()
    assert "demo-primary 90 % · demo-canary 10 %" in html
    assert "10 % of traffic" in html
    live = clients["viewer"].get(app_page).content.decode()
    assert 'id="live-state"' in live
    assert '<code>hogehoge:v2</code> <span class="badge tone-running">newest</span>' in live
    assert "<strong>10 %</strong> of traffic" in live and "<strong>90 %</strong> of traffic" in live
    fragment = clients["viewer"].get(app_page, {"fragment": "live-state"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.content.decode().lstrip().startswith('<section id="live-state"')

    agent.step(str(deployment.id))
    approval = stage_row(deployment.id, "stage-2")
    assert approval.name == "WAIT_APPROVAL" and approval.status == "RUNNING"
    approve = reverse("webui:stage_approve", kwargs={"deployment_id": deployment.id, "stage_id": "stage-2"})
    assert clients["viewer"].post(approve).status_code == 403
    assert clients["outsider"].post(approve).status_code == 404
    assert not Command.objects.filter(type=CommandType.APPROVE_STAGE).exists()
    response = clients["editor"].post(approve)
    assert response.status_code == 302
    command = Command.objects.get(type=CommandType.APPROVE_STAGE)
    assert (command.commander, command.stage_id) == ("erin", "stage-2")
    agent.poll_commands()
    approved = finish_stage(agent, deployment.id, "stage-2")
    assert (approved.status, approved.status_reason) == ("SUCCESS", "Approved by erin")
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V1, CANARY]
    assert weights(aws, ecs_values) == (90, 10)

    assert finish_stage(agent, deployment.id, "stage-3").status == "SUCCESS"  # ECS_PRIMARY_ROLLOUT
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V2, CANARY]
    assert weights(aws, ecs_values) == (90, 10)

    assert (
        finish_stage(agent, deployment.id, "stage-4").status == "SUCCESS"
    )  # ECS_TRAFFIC_ROUTING primary 100
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V2, CANARY]
    assert weights(aws, ecs_values) == (100, 0)

    assert finish_stage(agent, deployment.id, "stage-5").status == "SUCCESS"  # ECS_CANARY_CLEAN
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V2]
    assert weights(aws, ecs_values) == (100, 0)
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    assert "Got approval from erin." in logs(deployment.id, "stage-2")
    finished = clients["viewer"].get(page).content.decode()
    assert 'aria-label="Canary"' not in finished  # only while it runs
    assert "<details>" in finished.replace("<details >", "<details>") or "Plan preview" in finished
