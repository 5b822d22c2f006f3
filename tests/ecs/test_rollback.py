"""Rollback and cancel: whatever stage failed or was cancelled, a rollback leaves the weights at primary 100 /
canary 0, one PRIMARY task set of the last good version and no other task set this piped manages; a cancel
without rollback changes nothing and says so."""

import pytest

from apps.deployments.models import Deployment
from apps.deployments.services import cancel_deployment

from .conftest import (
    SEED_SERVICE,
    V1,
    add_app,
    clients,
    deploy_first_version,
    finish_stage,
    logs,
    push_new_version,
    revisions,
    seed_files,
    stage_row,
    task_sets,
    weights,
)

pytestmark = pytest.mark.django_db

CANARY_20 = {"name": "ECS_CANARY_ROLLOUT", "with": {"scale": 20}}
TRAFFIC_10 = {"name": "ECS_TRAFFIC_ROUTING", "with": {"canary": 10}}
FAIL = {"name": "SCRIPT_RUN", "with": {"run": "echo 'smoke test failed' && exit 3"}}


def _start(project, piped, ecs_agent, manifests, ecs_values, pipeline):
    add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values, pipeline=pipeline), "apps/hello")
    deployment = push_new_version(
        agent, manifests, seed_files(ecs_values, image_tag="v2", pipeline=pipeline), "apps/hello"
    )
    return agent, deployment


def _rolled_back(aws, ecs_values):
    assert weights(aws, ecs_values) == (100, 0)
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V1]
    # The rollback reused version 1's task definition: no revision was registered for it.
    assert revisions(aws, "hogehoge") == ["hogehoge:1", "hogehoge:2"]


def test_a_failure_after_traffic_routing_rolls_back_weights_first(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    agent, deployment = _start(
        project, piped, ecs_agent, manifests, ecs_values, [CANARY_20, TRAFFIC_10, FAIL]
    )
    finish_stage(agent, deployment.id, "stage-0")
    finish_stage(agent, deployment.id, "stage-1")
    assert weights(aws, ecs_values) == (90, 10)
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V1, ("ACTIVE", 20.0, "hogehoge:2", "canary-tg")]
    assert finish_stage(agent, deployment.id, "stage-2").status == "FAILURE"
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE", "CANCELLED"))
    assert done["status"] == "FAILURE"
    assert done["status_reason"].startswith("Stage SCRIPT_RUN (stage-2) failed")
    assert done["status_reason"].endswith("; rolled back")
    _rolled_back(aws, ecs_values)
    lines = logs(deployment.id, "rollback")
    weights_line = lines.index("listener HTTP:80, default rule: primary 90 → 100, canary 10 → 0")
    redeploy_line = next(i for i, line in enumerate(lines) if line.startswith("Rolling back to commit"))
    assert weights_line < redeploy_line, lines
    assert any(line.startswith("Deleted the previous task set") for line in lines)


def test_a_failure_after_the_primary_rollout_redeploys_the_last_good_version(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    pipeline = [
        {"name": "ECS_CANARY_ROLLOUT", "with": {"scale": 50}},
        {"name": "ECS_TRAFFIC_ROUTING", "with": {"canary": 50}},
        {"name": "ECS_PRIMARY_ROLLOUT"},
        FAIL,
    ]
    agent, deployment = _start(project, piped, ecs_agent, manifests, ecs_values, pipeline)
    for stage in ("stage-0", "stage-1", "stage-2"):
        assert finish_stage(agent, deployment.id, stage).status == "SUCCESS"
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [
        ("PRIMARY", 100.0, "hogehoge:2", "primary-tg"),
        ("ACTIVE", 50.0, "hogehoge:2", "canary-tg"),
    ]
    assert weights(aws, ecs_values) == (50, 50)
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "FAILURE" and done["status_reason"].endswith("rolled back"), done[
        "status_reason"
    ]
    _rolled_back(aws, ecs_values)
    rollback = stage_row(deployment.id, "rollback")
    assert rollback.status == "SUCCESS"
    assert rollback.status_reason == "hogehoge:1 is the primary task set of hogehoge"


def test_cancel_with_rollback_during_the_approval(
    project, piped, ecs_agent, manifests, aws, ecs_values, editor
):
    add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values), "apps/hello")
    deployment = push_new_version(agent, manifests, seed_files(ecs_values, image_tag="v2"), "apps/hello")
    finish_stage(agent, deployment.id, "stage-0")
    finish_stage(agent, deployment.id, "stage-1")
    agent.step(str(deployment.id))
    assert stage_row(deployment.id, "stage-2").status == "RUNNING"  # WAIT_APPROVAL
    assert weights(aws, ecs_values) == (90, 10)
    cancel_deployment(editor, deployment)
    agent.poll_commands()
    assert Deployment.objects.get(pk=deployment.pk).status == "ROLLING_BACK"
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("CANCELLED", "FAILURE", "SUCCESS"))
    assert done["status"] == "CANCELLED"
    assert done["status_reason"] == "Cancelled by erin; rolled back"
    assert stage_row(deployment.id, "stage-2").status == "CANCELLED"
    _rolled_back(aws, ecs_values)


def test_cancel_without_rollback_leaves_everything_and_says_so(
    project, piped, ecs_agent, manifests, aws, ecs_values, editor
):
    add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values), "apps/hello")
    deployment = push_new_version(agent, manifests, seed_files(ecs_values, image_tag="v2"), "apps/hello")
    finish_stage(agent, deployment.id, "stage-0")
    finish_stage(agent, deployment.id, "stage-1")
    agent.step(str(deployment.id))
    before = task_sets(aws, ecs_values, SEED_SERVICE)
    assert before == [V1, ("ACTIVE", 20.0, "hogehoge:2", "canary-tg")]
    cancel_deployment(editor, deployment, force_no_rollback=True)
    agent.poll_commands()
    deployment.refresh_from_db()
    assert deployment.status == "CANCELLED"
    assert (
        deployment.status_reason
        == "Cancelled by erin; no rollback was done, so the resources were left as they are"
    )
    assert task_sets(aws, ecs_values, SEED_SERVICE) == before
    assert weights(aws, ecs_values) == (90, 10)
    assert stage_row(deployment.id, "rollback").status == "NOT_STARTED_YET"
    lines = logs(deployment.id, "stage-2")
    assert "Cancelled by erin; no rollback was done, so the resources were left as they are." in lines
    assert any(
        line.startswith("The canary task set") and "(hogehoge:2, 20 %) keeps running." in line
        for line in lines
    )
    assert "The listener weights stay at primary 90 %, canary 10 %." in lines


def test_a_first_deployment_cannot_roll_back_and_says_so(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    add_app(project, piped)
    agent = ecs_agent()
    files = seed_files(
        ecs_values, pipeline=[CANARY_20, TRAFFIC_10, FAIL], planner={"alwaysUsePipeline": True}
    )
    manifests.write(files, under="apps/hello")
    manifests.commit_and_push("First, with a pipeline")
    agent.poll_git()
    deployment = Deployment.objects.get()
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "FAILURE"
    assert (
        "the rollback failed: Unable to roll back: there is no earlier successful deployment"
        in done["status_reason"]
    )
    # Still, the traffic went back to the primary target group first.
    assert weights(aws, ecs_values) == (100, 0)
    assert "Unable to roll back" in " ".join(logs(deployment.id, "rollback"))


def test_the_rollback_is_safe_to_run_again_after_a_crash(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    agent, deployment = _start(
        project, piped, ecs_agent, manifests, ecs_values, [CANARY_20, TRAFFIC_10, FAIL]
    )
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "FAILURE"
    _rolled_back(aws, ecs_values)
    # A piped killed at the end of the rollback, before it recorded anything, runs it again from scratch.
    rollback = stage_row(deployment.id, "rollback")
    type(rollback).objects.filter(pk=rollback.pk).update(status="RUNNING", metadata={}, completed_at=None)
    Deployment.objects.filter(pk=deployment.pk).update(status="ROLLING_BACK", completed_at=None)
    restarted = ecs_agent()
    again = restarted.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert again["status"] == "FAILURE" and again["status_reason"].endswith("rolled back")
    _rolled_back(aws, ecs_values)
    ecs, _ = clients(aws.endpoint)
    assert (
        len(ecs.describe_task_sets(cluster=ecs_values["CLUSTER_ARN"], service=SEED_SERVICE)["taskSets"]) == 1
    )
