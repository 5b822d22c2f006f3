"""Plan preview: a pending deployment waiting behind another gets a predicted preview from the scheduler,
planning records the planned one; both carry the definition diffs between the running and target commits."""

import pytest

from apps.deployments.models import Deployment

from .conftest import add_app, deploy_first_version, seed_files

pytestmark = pytest.mark.django_db


def test_a_waiting_deployment_gets_a_predicted_preview_and_planning_the_real_one(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    add_app(project, piped)
    agent = ecs_agent()
    first = deploy_first_version(agent, manifests, seed_files(ecs_values), "apps/hello")
    # v2 starts its pipeline; v3 is pushed meanwhile and waits.
    manifests.write(seed_files(ecs_values, image_tag="v2"), under="apps/hello")
    manifests.commit_and_push("v2")
    agent.poll_git()
    running = Deployment.objects.order_by("-created_at").first()
    agent.step(str(running.id))
    files = seed_files(ecs_values, image_tag="v3")
    files["servicedef.yaml"] = files["servicedef.yaml"].replace(
        "desiredCount: 2", "desiredCount: 2\n  healthCheckGracePeriodSeconds: 30"
    )
    manifests.write(files, under="apps/hello")
    manifests.commit_and_push("v3 with a grace period")
    agent.poll_git()
    waiting = Deployment.objects.order_by("-created_at").first()
    assert waiting.status == "PENDING"

    agent.scheduler.dispatch_once()
    waiting.refresh_from_db()
    preview = waiting.metadata["plan_preview"]
    assert preview["predicted"] is True and preview["error"] == ""
    assert preview["running_commit"] == first.commit_hash
    assert preview["sync_strategy"] == "PIPELINE"
    assert preview["summary"] == "Sync progressively because of updating image hogehoge from v1 to v3"
    assert [s["name"] for s in preview["stages"]] == [
        "ECS_CANARY_ROLLOUT",
        "ECS_TRAFFIC_ROUTING",
        "WAIT_APPROVAL",
        "ECS_PRIMARY_ROLLOUT",
        "ECS_TRAFFIC_ROUTING",
        "ECS_CANARY_CLEAN",
    ]
    task, service = preview["diffs"]
    assert task["file"] == "taskdef.yaml" and service["file"] == "servicedef.yaml"
    assert f"--- running ({first.commit_hash[:7]})" in task["diff"]
    assert "-  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/hogehoge:v1" in task["diff"]
    assert "+  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/hogehoge:v3" in task["diff"]
    assert "+healthCheckGracePeriodSeconds: 30" in service["diff"]
    computed = preview["computed_at"]
    agent.scheduler.dispatch_once()
    waiting.refresh_from_db()
    assert waiting.metadata["plan_preview"]["computed_at"] == computed  # made once

    # The running one was planned with its own preview, no longer predicted.
    running.refresh_from_db()
    planned = running.metadata["plan_preview"]
    assert planned["predicted"] is False
    assert [s["id"] for s in planned["stages"]] == [f"stage-{i}" for i in range(6)]
    assert planned["diffs"][1]["diff"] == ""  # v2 changed the image only


def test_a_preview_that_cannot_be_made_says_why(project, piped, ecs_agent, manifests, aws, ecs_values):
    add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values), "apps/hello")
    manifests.write(seed_files(ecs_values, image_tag="v2"), under="apps/hello")
    manifests.commit_and_push("v2")
    agent.poll_git()
    agent.step(str(Deployment.objects.order_by("-created_at").first().id))
    files = seed_files(ecs_values, image_tag="v3")
    files["taskdef.yaml"] = "family: [broken"
    manifests.write(files, under="apps/hello")
    manifests.commit_and_push("broken task definition")
    waiting_commit = manifests.head()
    # The config is valid, so a deployment is triggered; its task definition cannot be read.
    agent.poll_git()
    waiting = Deployment.objects.get(commit_hash=waiting_commit)
    agent.scheduler.dispatch_once()
    waiting.refresh_from_db()
    preview = waiting.metadata["plan_preview"]
    assert preview["error"].startswith("It cannot be planned as it is: 1 problem in apps/hello/taskdef.yaml")
    assert "taskdef.yaml" in preview["error"]
