"""Task sets left behind by earlier deployments (a cancel without rollback keeps its canary, or a 100 % task set
it created before the promotion) are cleaned by the next pipeline, never while they get traffic nobody else
serves: no stale version keeps serving requests, and the service never reaches ECS's limit of task sets."""

import pytest

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
    seed_files,
    task_sets,
    weights,
)

pytestmark = pytest.mark.django_db

PIPELINE = [
    {"name": "ECS_CANARY_ROLLOUT", "with": {"scale": 20}},
    {"name": "ECS_TRAFFIC_ROUTING", "with": {"canary": 10}},
    {"name": "ECS_PRIMARY_ROLLOUT"},
    {"name": "ECS_TRAFFIC_ROUTING", "with": {"primary": 100}},
    {"name": "ECS_CANARY_CLEAN"},
]


def _files(values, tag):
    return seed_files(values, image_tag=tag, pipeline=PIPELINE)


def test_the_canary_a_cancel_left_is_replaced_by_the_next_canary_and_cleaned(
    project, piped, ecs_agent, manifests, aws, ecs_values, editor
):
    add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, _files(ecs_values, "v1"), "apps/hello")
    cancelled = push_new_version(agent, manifests, _files(ecs_values, "v2"), "apps/hello")
    finish_stage(agent, cancelled.id, "stage-0")
    finish_stage(agent, cancelled.id, "stage-1")
    cancel_deployment(editor, cancelled, force_no_rollback=True)
    agent.poll_commands()
    cancelled.refresh_from_db()
    assert cancelled.status == "CANCELLED"
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V1, ("ACTIVE", 20.0, "hogehoge:2", "canary-tg")]
    assert weights(aws, ecs_values) == (90, 10)

    deployment = push_new_version(agent, manifests, _files(ecs_values, "v3"), "apps/hello")
    assert finish_stage(agent, deployment.id, "stage-0").status == "SUCCESS"
    # Once the new canary serves the canary target group, the old one goes: one version per target group.
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V1, ("ACTIVE", 20.0, "hogehoge:3", "canary-tg")]
    assert any(
        line.startswith("Deleted the leftover canary task set") and "of an earlier deployment" in line
        for line in logs(deployment.id, "stage-0")
    ), logs(deployment.id, "stage-0")

    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [("PRIMARY", 100.0, "hogehoge:3", "primary-tg")]
    assert weights(aws, ecs_values) == (100, 0)


def test_a_stale_task_set_in_the_primary_target_group_goes_with_the_old_primary(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    add_app(project, piped)
    agent = ecs_agent()
    first = deploy_first_version(agent, manifests, _files(ecs_values, "v1"), "apps/hello")
    # What a primary rollout cancelled (without rollback) between its CreateTaskSet and the promotion leaves:
    # a full task set of another version, serving the primary target group beside the primary.
    ecs, _ = clients(aws.endpoint)
    ecs.create_task_set(
        cluster=ecs_values["CLUSTER_ARN"],
        service=SEED_SERVICE,
        taskDefinition="hogehoge:1",
        externalId="pipeportal-primary",
        scale={"unit": "PERCENT", "value": 100.0},
        launchType="FARGATE",
        loadBalancers=[
            {
                "targetGroupArn": ecs_values["PRIMARY_TARGET_GROUP_ARN"],
                "containerName": "app",
                "containerPort": 8080,
            }
        ],
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [ecs_values["SUBNET_A"]],
                "securityGroups": [ecs_values["SECURITY_GROUP"]],
            }
        },
        tags=[
            {"key": "pipecd-dev-managed-by", "value": "piped"},
            {"key": "pipecd-dev-piped", "value": str(piped.id)},
            {"key": "pipecd-dev-application", "value": str(first.application_id)},
            {"key": "pipecd-dev-commit-hash", "value": "0" * 40},
        ],
    )
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V1, ("ACTIVE", 100.0, "hogehoge:1", "primary-tg")]

    deployment = push_new_version(agent, manifests, _files(ecs_values, "v2"), "apps/hello")
    for stage in ("stage-0", "stage-1", "stage-2"):
        assert finish_stage(agent, deployment.id, stage).status == "SUCCESS"
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [
        ("PRIMARY", 100.0, "hogehoge:2", "primary-tg"),
        ("ACTIVE", 20.0, "hogehoge:2", "canary-tg"),
    ]
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [("PRIMARY", 100.0, "hogehoge:2", "primary-tg")]
