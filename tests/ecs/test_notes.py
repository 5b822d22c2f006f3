"""A step's notes (progress a re-run finds again) travel with its next call, but never behind a change in
AWS: at every call that changes something, what the stage did before is already recorded — the same states
a crash could leave as when every note was saved at once. Checked on the seed pipeline, run as the piped's
Celery tasks run it (a stage that ends starts the next in the same call)."""

from collections import defaultdict

import pytest

from apps.deployments.models import Deployment, Stage
from apps.deployments.services import approve_stage
from apps.pipedagent import worker
from apps.pipedagent.platforms.ecs.resources import (
    META_CANARY,
    META_PRIMARY,
    META_TASK_DEFINITION,
    META_TRAFFIC,
)

from .conftest import SEED_SERVICE, add_app, deploy_first_version, push_new_version, seed_files, task_sets

pytestmark = pytest.mark.django_db

CHANGES = (
    "ecs.RegisterTaskDefinition",
    "ecs.UpdateService",
    "ecs.CreateTaskSet",
    "ecs.UpdateServicePrimaryTaskSet",
    "ecs.DeleteTaskSet",
    "elbv2.ModifyListener",
    "elbv2.ModifyRule",
)


def test_every_change_in_aws_follows_the_record_of_what_came_before(
    project, piped, ecs_agent, manifests, aws, ecs_values, editor
):
    add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values), "apps/hello")
    deployment = push_new_version(agent, manifests, seed_files(ecs_values, image_tag="v2"), "apps/hello")
    seen: dict[str, list[tuple]] = defaultdict(list)

    def recorded(model=None, **kwargs) -> None:
        """What the control plane holds at the moment the piped asks AWS for a change."""
        running = Stage.objects.filter(deployment_id=deployment.id, status="RUNNING").first()
        metadata = Deployment.objects.get(pk=deployment.id).metadata
        seen[model.name].append((running.stage_id if running else None, dict(running.metadata), metadata))

    provider = agent.runtime.platform_provider("ECS", "ECS")
    for client in (provider.ecs, provider.elbv2):
        for change in CHANGES:
            client.meta.events.register(f"before-call.{change}", recorded)

    worker.run_stage(agent.runtime, str(deployment.id), "stage-0", chain=True)  # up to the approval
    approve_stage(editor, Deployment.objects.get(pk=deployment.id), "stage-2")
    agent.poll_commands()
    worker.run_stage(agent.runtime, str(deployment.id), "stage-2", chain=True)  # to the end
    assert Deployment.objects.get(pk=deployment.id).status == "SUCCESS"
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [("PRIMARY", 100.0, "hogehoge:2", "primary-tg")]

    # The canary: the deployment's task definition revision is recorded before anything uses it.
    [(stage, _, metadata)] = [s for s in seen["CreateTaskSet"] if s[0] == "stage-0"]
    assert metadata[META_TASK_DEFINITION].endswith("task-definition/hogehoge:2")
    # Traffic: the listeners are remembered before any weight changes (both routing stages).
    routed = seen["ModifyListener"] + seen["ModifyRule"]
    assert {s[0] for s in routed} == {"stage-1", "stage-4"}
    assert all(s[2][META_TRAFFIC]["listeners"] for s in routed)
    # The canary noted on the way is recorded by the time the next change happens.
    assert all(META_CANARY in s[2] for s in routed)
    # The primary rollout: the old primary is recorded before the promotion, the promotion before deleting.
    [(stage, promoting, metadata)] = seen["UpdateServicePrimaryTaskSet"]
    assert stage == "stage-3" and promoting["phase"] == "created" and promoting["old_primary_arns"]
    assert metadata[META_PRIMARY]["task_set_arn"] == promoting["task_set_arn"]
    deleting = [s for s in seen["DeleteTaskSet"] if s[0] == "stage-3"]
    assert deleting and all(s[1]["phase"] == "promoted" for s in deleting)
