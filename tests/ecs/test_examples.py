"""PipeCD's ECS examples deployed end to end against the moto server, stage by stage: after every stage the
task sets (which is primary, scale, task definition revision, where they are registered) and the listener
weights are what the stage promises.

The example files are the copies in tests/pipelineconfig/fixtures (placeholders replaced by the emulator's
ARNs). Each application is deployed once at version 1 (a first deployment is a quick sync), then gets a
new image, which runs its pipeline.
"""

import pytest

from apps.deployments.models import Deployment
from apps.deployments.services import approve_stage

from .conftest import (
    add_app,
    age_wait,
    deploy_first_version,
    example_files,
    finish_stage,
    logs,
    push_new_version,
    revisions,
    task_sets,
    weights,
)

pytestmark = pytest.mark.django_db

PRIMARY, ACTIVE = "PRIMARY", "ACTIVE"
FAMILY = "nginx-service-fam"


def test_simple_quick_syncs_each_version(project, piped, ecs_agent, manifests, aws, ecs_values):
    add_app(project, piped, name="simple", path="apps/simple")
    agent = ecs_agent()
    first = deploy_first_version(agent, manifests, example_files("simple", ecs_values), "apps/simple")
    assert [s.name for s in first.stages.order_by("index")] == ["ECS_SYNC", "ROLLBACK"]
    assert task_sets(aws, ecs_values, "nginx-service") == [(PRIMARY, 100.0, f"{FAMILY}:1", "primary-tg")]
    assert weights(aws, ecs_values) == (100, 0)

    manifests.write(example_files("simple", ecs_values, image_tag="2"), under="apps/simple")
    manifests.commit_and_push("nginx 2")
    agent.poll_git()
    second = Deployment.objects.exclude(pk=first.pk).get()
    done = agent.run(str(second.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    assert done["trigger"]["sync_strategy"] == "QUICK_SYNC"
    assert task_sets(aws, ecs_values, "nginx-service") == [(PRIMARY, 100.0, f"{FAMILY}:2", "primary-tg")]
    assert revisions(aws, FAMILY) == [f"{FAMILY}:1", f"{FAMILY}:2"]


def _canary_like(agent, manifests, aws, values, name: str, service: str, *, scale: float, canary_weight: int):
    """The canary and blue/green examples: rollout, routing, WAIT, primary rollout, routing back, clean."""
    add_app_files = example_files(name, values)
    deploy_first_version(agent, manifests, add_app_files, f"apps/{name}")
    v1 = (PRIMARY, 100.0, f"{FAMILY}:1", "primary-tg")
    assert task_sets(aws, values, service) == [v1]

    deployment = push_new_version(
        agent, manifests, example_files(name, values, image_tag="2"), f"apps/{name}"
    )
    assert deployment.summary == "Sync progressively because of updating image nginx from 1 to 2"
    stages = [s.stage_id for s in deployment.stages.filter(visible=True).order_by("index")]
    assert stages == [f"stage-{i}" for i in range(6)]

    canary = finish_stage(agent, deployment.id, "stage-0")  # ECS_CANARY_ROLLOUT
    assert canary.status == "SUCCESS", canary.status_reason
    assert task_sets(aws, values, service) == [v1, (ACTIVE, scale, f"{FAMILY}:2", "canary-tg")]
    assert weights(aws, values) == (100, 0)

    routing = finish_stage(agent, deployment.id, "stage-1")  # ECS_TRAFFIC_ROUTING canary
    assert routing.status == "SUCCESS", routing.status_reason
    assert task_sets(aws, values, service) == [v1, (ACTIVE, scale, f"{FAMILY}:2", "canary-tg")]
    assert weights(aws, values) == (100 - canary_weight, canary_weight)
    assert (
        f"listener HTTP:80, default rule: primary 100 → {100 - canary_weight}, canary 0 → {canary_weight}"
        in logs(deployment.id, "stage-1")
    )

    agent.step(str(deployment.id))  # WAIT starts
    age_wait(deployment.id, "stage-2")
    assert finish_stage(agent, deployment.id, "stage-2").status == "SUCCESS"
    assert task_sets(aws, values, service) == [v1, (ACTIVE, scale, f"{FAMILY}:2", "canary-tg")]
    assert weights(aws, values) == (100 - canary_weight, canary_weight)

    primary = finish_stage(agent, deployment.id, "stage-3")  # ECS_PRIMARY_ROLLOUT
    assert primary.status == "SUCCESS", primary.status_reason
    assert task_sets(aws, values, service) == [
        (PRIMARY, 100.0, f"{FAMILY}:2", "primary-tg"),
        (ACTIVE, scale, f"{FAMILY}:2", "canary-tg"),
    ]
    assert weights(aws, values) == (100 - canary_weight, canary_weight)
    assert any(line.startswith("Deleted the old primary task set") for line in logs(deployment.id, "stage-3"))

    back = finish_stage(agent, deployment.id, "stage-4")  # ECS_TRAFFIC_ROUTING primary 100
    assert back.status == "SUCCESS", back.status_reason
    assert weights(aws, values) == (100, 0)
    assert len(task_sets(aws, values, service)) == 2

    clean = finish_stage(agent, deployment.id, "stage-5")  # ECS_CANARY_CLEAN
    assert clean.status == "SUCCESS", clean.status_reason
    assert task_sets(aws, values, service) == [(PRIMARY, 100.0, f"{FAMILY}:2", "primary-tg")]
    assert weights(aws, values) == (100, 0)
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    # One task definition revision per version, whatever the number of stages that used it.
    assert revisions(aws, FAMILY) == [f"{FAMILY}:1", f"{FAMILY}:2"]
    return deployment


def test_canary(project, piped, ecs_agent, manifests, aws, ecs_values):
    add_app(project, piped, name="canary", path="apps/canary")
    _canary_like(
        ecs_agent(),
        manifests,
        aws,
        ecs_values,
        "canary",
        "nginx-canary-service",
        scale=30.0,
        canary_weight=20,
    )


def test_bluegreen(project, piped, ecs_agent, manifests, aws, ecs_values):
    add_app(project, piped, name="bluegreen", path="apps/bluegreen")
    deployment = _canary_like(
        ecs_agent(),
        manifests,
        aws,
        ecs_values,
        "bluegreen",
        "nginx-bluegreen-service",
        scale=100.0,
        canary_weight=100,
    )
    # The old primary had no traffic left (all of it on the canary): deleting it was safe.
    assert "Deleted the old primary task set" in " ".join(logs(deployment.id, "stage-3"))


def test_wait_approval(project, piped, ecs_agent, manifests, aws, ecs_values, editor):
    add_app(project, piped, name="wait-approval", path="apps/wa")
    agent = ecs_agent()
    deploy_first_version(agent, manifests, example_files("wait-approval", ecs_values), "apps/wa")
    service = "nginx-canary-service"
    deployment = push_new_version(
        agent, manifests, example_files("wait-approval", ecs_values, image_tag="2"), "apps/wa"
    )
    v1 = (PRIMARY, 100.0, f"{FAMILY}:1", "primary-tg")
    canary = (ACTIVE, 30.0, f"{FAMILY}:2", "canary-tg")
    finish_stage(agent, deployment.id, "stage-0")
    assert task_sets(aws, ecs_values, service) == [v1, canary]
    finish_stage(agent, deployment.id, "stage-1")
    assert weights(aws, ecs_values) == (80, 20)
    agent.step(str(deployment.id))
    agent.step(str(deployment.id))
    assert deployment.stages.get(stage_id="stage-2").status == "RUNNING"  # waiting for approval
    assert task_sets(aws, ecs_values, service) == [v1, canary]
    approve_stage(editor, deployment, "stage-2")
    agent.poll_commands()
    assert finish_stage(agent, deployment.id, "stage-2").status == "SUCCESS"
    finish_stage(agent, deployment.id, "stage-3")
    assert task_sets(aws, ecs_values, service) == [(PRIMARY, 100.0, f"{FAMILY}:2", "primary-tg"), canary]
    assert weights(aws, ecs_values) == (80, 20)
    finish_stage(agent, deployment.id, "stage-4")
    assert weights(aws, ecs_values) == (100, 0)
    finish_stage(agent, deployment.id, "stage-5")
    assert task_sets(aws, ecs_values, service) == [(PRIMARY, 100.0, f"{FAMILY}:2", "primary-tg")]
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]


def test_service_discovery_simple(project, piped, ecs_agent, manifests, aws, ecs_values):
    add_app(project, piped, name="sd-simple", path="apps/sd")
    agent = ecs_agent()
    deploy_first_version(agent, manifests, example_files("servicediscovery/simple", ecs_values), "apps/sd")
    service = "nginx-discovery-simple-service"
    assert task_sets(aws, ecs_values, service) == [(PRIMARY, 100.0, f"{FAMILY}:1", "registry")]
    manifests.write(example_files("servicediscovery/simple", ecs_values, image_tag="3"), under="apps/sd")
    manifests.commit_and_push("httpd 3")
    agent.poll_git()
    second = Deployment.objects.order_by("-created_at").first()
    done = agent.run(str(second.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    assert task_sets(aws, ecs_values, service) == [(PRIMARY, 100.0, f"{FAMILY}:2", "registry")]
    # No target group anywhere: the listener was never touched.
    assert weights(aws, ecs_values) == (100, 0)


def test_service_discovery_canary(project, piped, ecs_agent, manifests, aws, ecs_values):
    add_app(project, piped, name="sd-canary", path="apps/sdc")
    agent = ecs_agent()
    name = "servicediscovery/canary"
    deploy_first_version(agent, manifests, example_files(name, ecs_values), "apps/sdc")
    service = "nginx-canary-service"
    v1 = (PRIMARY, 100.0, f"{FAMILY}:1", "registry")
    assert task_sets(aws, ecs_values, service) == [v1]
    deployment = push_new_version(
        agent, manifests, example_files(name, ecs_values, image_tag="2"), "apps/sdc"
    )
    assert [s.name for s in deployment.stages.filter(visible=True).order_by("index")] == [
        "ECS_CANARY_ROLLOUT",
        "WAIT",
        "ECS_PRIMARY_ROLLOUT",
        "ECS_CANARY_CLEAN",
    ]
    canary = (ACTIVE, 100.0, f"{FAMILY}:2", "registry")
    assert finish_stage(agent, deployment.id, "stage-0").status == "SUCCESS"
    assert task_sets(aws, ecs_values, service) == [v1, canary]
    agent.step(str(deployment.id))
    age_wait(deployment.id, "stage-1")
    finish_stage(agent, deployment.id, "stage-1")
    assert task_sets(aws, ecs_values, service) == [v1, canary]
    primary = finish_stage(agent, deployment.id, "stage-2")
    assert primary.status == "SUCCESS", primary.status_reason
    # Canary and new primary are both at 100 % of the same version in the same registry: two task sets.
    assert task_sets(aws, ecs_values, service) == [(PRIMARY, 100.0, f"{FAMILY}:2", "registry"), canary]
    clean = finish_stage(agent, deployment.id, "stage-3")
    assert clean.status == "SUCCESS", clean.status_reason
    assert task_sets(aws, ecs_values, service) == [(PRIMARY, 100.0, f"{FAMILY}:2", "registry")]
    assert weights(aws, ecs_values) == (100, 0)


def test_standalone_task_fargate(project, piped, ecs_agent, manifests, aws, ecs_values):
    from .conftest import clients

    add_app(project, piped, name="standalone", path="apps/task")
    agent = ecs_agent()
    first = deploy_first_version(
        agent, manifests, example_files("standalone-task/launch-type/fargate", ecs_values), "apps/task"
    )
    assert first.stages.get(stage_id="stage-0").status_reason == "Started 1 standalone task(s)"
    ecs, _ = clients(aws.endpoint)
    tasks = ecs.describe_tasks(
        cluster=ecs_values["CLUSTER_ARN"],
        tasks=ecs.list_tasks(cluster=ecs_values["CLUSTER_ARN"])["taskArns"],
    )["tasks"]
    assert [t["taskDefinitionArn"].rsplit("/", 1)[-1] for t in tasks] == ["nginx-test-fam-1:1"]
    assert tasks[0]["launchType"] == "FARGATE"
