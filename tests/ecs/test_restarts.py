"""Every ECS stage is safe to run again after a crash: a piped killed after AWS answered but before anything
was recorded (stage and deployment metadata lost) finds its task definition and task sets again by their
tags instead of creating more; and quickSync.recreate."""

import pytest

from apps.deployments.models import Deployment, Stage
from apps.pipedagent.platforms.ecs.resources import META_CANARY, META_PRIMARY, META_TASK_DEFINITION

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

CANARY = ("ACTIVE", 20.0, "hogehoge:2", "canary-tg")


def crash(deployment_id, stage_id: str, *forget: str) -> None:
    """As if the piped died at the end of the stage before reporting: the stage runs again from nothing."""
    stage = stage_row(deployment_id, stage_id)
    Stage.objects.filter(pk=stage.pk).update(status="RUNNING", metadata={}, completed_at=None)
    deployment = Deployment.objects.get(pk=deployment_id)
    metadata = {k: v for k, v in deployment.metadata.items() if k not in forget}
    Deployment.objects.filter(pk=deployment_id).update(metadata=metadata, status="RUNNING", completed_at=None)


def test_each_seed_stage_run_twice_changes_nothing_more(
    project, piped, ecs_agent, manifests, aws, ecs_values, editor
):
    from apps.deployments.services import approve_stage

    add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values), "apps/hello")
    deployment = push_new_version(agent, manifests, seed_files(ecs_values, image_tag="v2"), "apps/hello")

    finish_stage(agent, deployment.id, "stage-0")
    crash(deployment.id, "stage-0", META_CANARY, META_TASK_DEFINITION)
    restarted = ecs_agent()
    assert finish_stage(restarted, deployment.id, "stage-0").status == "SUCCESS"
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V1, CANARY]
    assert revisions(aws, "hogehoge") == ["hogehoge:1", "hogehoge:2"]
    assert any(line.startswith("Found canary task set") for line in logs(deployment.id, "stage-0"))

    finish_stage(restarted, deployment.id, "stage-1")
    crash(deployment.id, "stage-1")
    assert finish_stage(ecs_agent(), deployment.id, "stage-1").status == "SUCCESS"
    assert weights(aws, ecs_values) == (90, 10)
    assert "listener HTTP:80, default rule: already primary 90, canary 10" in logs(deployment.id, "stage-1")

    restarted.step(str(deployment.id))
    approve_stage(editor, Deployment.objects.get(pk=deployment.id), "stage-2")
    restarted.poll_commands()
    finish_stage(restarted, deployment.id, "stage-2")

    # The primary rollout: first a crash right after CreateTaskSet (nothing recorded), then one after the
    # promotion (the old primary is already gone or still there; either way only one primary stays).
    agent = ecs_agent()
    agent.step(str(deployment.id))
    assert stage_row(deployment.id, "stage-3").status == "SUCCESS"
    crash(deployment.id, "stage-3", META_PRIMARY, META_TASK_DEFINITION)
    assert finish_stage(ecs_agent(), deployment.id, "stage-3").status == "SUCCESS"
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [
        ("PRIMARY", 100.0, "hogehoge:2", "primary-tg"),
        CANARY,
    ]

    for stage in ("stage-4", "stage-5"):
        finish_stage(agent, deployment.id, stage)
        crash(deployment.id, stage)
        assert finish_stage(ecs_agent(), deployment.id, stage).status == "SUCCESS"
    assert "The canary task set is already gone; nothing to clean." in logs(deployment.id, "stage-5")
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [("PRIMARY", 100.0, "hogehoge:2", "primary-tg")]
    assert weights(aws, ecs_values) == (100, 0)
    assert revisions(aws, "hogehoge") == ["hogehoge:1", "hogehoge:2"]


def test_a_primary_rollout_resumed_after_the_promotion_deletes_the_old_primary(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    pipeline = [{"name": "ECS_PRIMARY_ROLLOUT"}]
    add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values, pipeline=pipeline), "apps/hello")
    deployment = push_new_version(
        agent, manifests, seed_files(ecs_values, image_tag="v2", pipeline=pipeline), "apps/hello"
    )
    # Promote by hand what the stage would have created, then "crash": nothing recorded anywhere.
    finish_stage(agent, deployment.id, "stage-0")
    ecs, _ = clients(aws.endpoint)
    first_primary = ecs.create_task_set(
        cluster=ecs_values["CLUSTER_ARN"],
        service=SEED_SERVICE,
        taskDefinition="hogehoge:1",
        scale={"unit": "PERCENT", "value": 100.0},
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [ecs_values["SUBNET_A"]],
                "securityGroups": [ecs_values["SECURITY_GROUP"]],
            }
        },
        tags=[
            {"key": "pipecd-dev-managed-by", "value": "piped"},
            {"key": "pipecd-dev-piped", "value": str(piped.id)},
            {"key": "pipecd-dev-application", "value": str(deployment.application_id)},
            {"key": "pipecd-dev-commit-hash", "value": "0" * 40},
        ],
    )["taskSet"]["taskSetArn"]
    crash(deployment.id, "stage-0", META_PRIMARY)
    assert finish_stage(ecs_agent(), deployment.id, "stage-0").status == "SUCCESS"
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [("PRIMARY", 100.0, "hogehoge:2", "primary-tg")]
    assert f"Deleted the old primary task set {first_primary.rsplit('/', 1)[-1]}." in logs(
        deployment.id, "stage-0"
    )


def test_quick_sync_recreate_scales_to_zero_and_stops_the_tasks_first(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    from tests.pipedagent.conftest import app_files

    add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, app_files(ecs_values), "apps/hello")
    ecs, _ = clients(aws.endpoint)
    cluster = ecs_values["CLUSTER_ARN"]
    network = {
        "awsvpcConfiguration": {
            "subnets": [ecs_values["SUBNET_A"]],
            "securityGroups": [ecs_values["SECURITY_GROUP"]],
        }
    }
    # One task of the service (as ECS would start it) and one of something else in the same cluster.
    own = ecs.run_task(
        cluster=cluster,
        taskDefinition="hogehoge:1",
        group="service:hogehoge",
        launchType="FARGATE",
        networkConfiguration=network,
    )["tasks"][0]["taskArn"]
    other = ecs.run_task(
        cluster=cluster,
        taskDefinition="hogehoge:1",
        group="family:batch",
        launchType="FARGATE",
        networkConfiguration=network,
    )["tasks"][0]["taskArn"]
    manifests.write(
        app_files(ecs_values, image_tag="v2", extra="quickSync:\n  recreate: true\n"), under="apps/hello"
    )
    manifests.commit_and_push("v2, recreated")
    agent.poll_git()
    second = Deployment.objects.order_by("-created_at").first()
    done = agent.run(str(second.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    lines = logs(second.id, "stage-0")
    assert "recreate: scaled service hogehoge down to 0 (it ran 2)." in lines
    assert "recreate: stopped 1 running task(s) of hogehoge." in lines
    statuses = {
        t["taskArn"]: t["lastStatus"]
        for t in ecs.describe_tasks(cluster=cluster, tasks=[own, other])["tasks"]
    }
    assert statuses[own] == "STOPPED" and statuses[other] != "STOPPED"
    service = ecs.describe_services(cluster=cluster, services=[SEED_SERVICE])["services"][0]
    assert service["desiredCount"] == 2
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [("PRIMARY", 100.0, "hogehoge:2", "primary-tg")]
