"""Drift detection: the Git head's service and task definitions against the live ones, AWS's defaults
normalised away; OUT_OF_SYNC with a readable diff, SYNCED again once restored; onOutOfSync redeploys."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.applications.models import Application, ApplicationLiveState
from apps.deployments.models import Deployment
from apps.pipedagent.livestate import Watchers
from apps.pipedagent.platforms.ecs.drift import (
    OUT_OF_SYNC,
    SYNCED,
    compare,
    live_service_input,
    normalise_services,
    normalise_task,
)

from .conftest import SEED_SERVICE, add_app, clients, deploy_first_version, seed_files

GIT_TASK = {
    "family": "web",
    "networkMode": "awsvpc",
    "cpu": "256",
    "memory": "512",
    "requiresCompatibilities": ["FARGATE"],
    "containerDefinitions": [
        {
            "name": "app",
            "image": "registry/web:v1",
            "portMappings": [{"containerPort": 8080}],
            "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
        }
    ],
    "tags": [{"key": "team", "value": "web"}],
}
LIVE_TASK = {
    "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:4",
    "revision": 4,
    "status": "ACTIVE",
    "family": "web",
    "networkMode": "awsvpc",
    "cpu": "256",
    "memory": "512",
    "compatibilities": ["EC2", "FARGATE"],
    "requiresCompatibilities": ["FARGATE"],
    "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
    "registeredAt": "2026-05-01T12:00:00Z",
    "placementConstraints": [],
    "volumes": [],
    "containerDefinitions": [
        {
            "name": "app",
            "image": "registry/web:v1",
            "cpu": 0,
            "essential": True,
            "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
            "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "mountPoints": [],
            "volumesFrom": [],
        }
    ],
    "tags": [
        {"key": "pipecd-dev-managed-by", "value": "piped"},
        {"key": "pipecd-dev-commit-hash", "value": "abc"},
        {"key": "team", "value": "web"},
    ],
}


def test_aws_defaults_and_echoes_are_not_drift():
    result = compare(
        {"service": {}, "taskDefinition": normalise_task(LIVE_TASK)},
        {"service": {}, "taskDefinition": normalise_task(GIT_TASK)},
    )
    assert result.status == SYNCED, result.diff
    git_service = {
        "cluster": "prod",
        "serviceName": "web",
        "deploymentController": {"type": "EXTERNAL"},
        "launchType": "FARGATE",
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-b", "subnet-a"]}},
        "tags": [],
    }
    live = live_service_input(
        {
            "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/prod/web",
            "serviceName": "web",
            "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
            "desiredCount": 7,  # autoscaling's business: Git leaves desiredCount unset
            "runningCount": 7,
            "status": "ACTIVE",
            "schedulingStrategy": "REPLICA",
            "propagateTags": "NONE",
            "enableECSManagedTags": False,
            "deploymentController": {"type": "EXTERNAL"},
            "events": [{"message": "steady"}],
            "tags": [{"key": "pipecd-dev-piped", "value": "p"}],
        },
        {
            "status": "PRIMARY",
            "launchType": "FARGATE",
            "platformVersion": "LATEST",
            "networkConfiguration": {
                "awsvpcConfiguration": {"subnets": ["subnet-a", "subnet-b"], "assignPublicIp": "DISABLED"}
            },
        },
    )
    live_service, git = normalise_services(live, git_service)
    assert compare({"service": live_service}, {"service": git}).status == SYNCED


def test_a_changed_image_and_count_read_as_a_diff():
    changed = {
        **LIVE_TASK,
        "containerDefinitions": [{**LIVE_TASK["containerDefinitions"][0], "image": "registry/web:hotfix"}],
    }
    result = compare(
        {"service": {"desiredCount": 5}, "taskDefinition": normalise_task(changed)},
        {"service": {"desiredCount": 2}, "taskDefinition": normalise_task(GIT_TASK)},
    )
    assert result.status == OUT_OF_SYNC
    assert result.summary == (
        "2 fields differ from Git: service.desiredCount, taskDefinition.containerDefinitions[app].image"
    )
    lines = result.diff.splitlines()
    assert lines[:2] == ["--- live", "+++ Git"]
    assert "-  desiredCount: 5" in lines and "+  desiredCount: 2" in lines
    assert "-    image: registry/web:hotfix" in lines and "+    image: registry/web:v1" in lines


@pytest.fixture
def deployed(project, piped, ecs_agent, manifests, aws, ecs_values):
    app = add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values), "apps/hello")
    return app, agent


def _state(app):
    app.refresh_from_db()
    return app.sync_status, ApplicationLiveState.objects.get(application=app)


@pytest.mark.django_db
def test_a_live_change_is_out_of_sync_at_the_next_check_and_synced_once_restored(deployed, aws, ecs_values):
    app, agent = deployed
    watchers = Watchers(agent.scheduler)
    assert watchers.drift_once() == 1
    status, row = _state(app)
    assert (status, row.drift_status) == (SYNCED, SYNCED)
    assert app.sync_short_reason.startswith("The live state matches Git at ")

    ecs, _ = clients(aws.endpoint)
    cluster = ecs_values["CLUSTER_ARN"]
    ecs.update_service(cluster=cluster, service=SEED_SERVICE, desiredCount=5)
    watchers.drift_once()  # the first check after the change sees it
    status, row = _state(app)
    assert status == OUT_OF_SYNC and row.drift_status == OUT_OF_SYNC
    assert row.drift_summary == "1 field differs from Git: service.desiredCount"
    assert app.sync_short_reason == row.drift_summary
    assert "-  desiredCount: 5\n+  desiredCount: 2" in row.drift_diff
    assert row.drift_diff.startswith("--- live\n+++ Git\n")
    assert row.drift_commit == app.most_recent_successful_deployment.commit_hash

    ecs.update_service(cluster=cluster, service=SEED_SERVICE, desiredCount=2)
    watchers.drift_once()
    status, row = _state(app)
    assert (status, row.drift_status, row.drift_diff) == (SYNCED, SYNCED, "")

    # Someone deploys a task definition by hand: a new revision with an extra variable becomes primary.
    live = ecs.describe_task_sets(cluster=cluster, service=SEED_SERVICE)["taskSets"][0]
    definition = ecs.describe_task_definition(taskDefinition=live["taskDefinition"])["taskDefinition"]
    container = {**definition["containerDefinitions"][0], "environment": [{"name": "DEBUG", "value": "1"}]}
    keys = (
        "family",
        "networkMode",
        "requiresCompatibilities",
        "cpu",
        "memory",
        "executionRoleArn",
        "taskRoleArn",
    )
    manual = ecs.register_task_definition(
        **{k: definition[k] for k in keys}, containerDefinitions=[container]
    )
    by_hand = ecs.create_task_set(
        cluster=cluster,
        service=SEED_SERVICE,
        taskDefinition=manual["taskDefinition"]["taskDefinitionArn"],
        launchType="FARGATE",
        networkConfiguration=live["networkConfiguration"],
        scale={"unit": "PERCENT", "value": 100.0},
    )["taskSet"]["taskSetArn"]
    ecs.update_service_primary_task_set(cluster=cluster, service=SEED_SERVICE, primaryTaskSet=by_hand)
    watchers.drift_once()
    status, row = _state(app)
    assert status == OUT_OF_SYNC
    assert (
        row.drift_summary == "1 field differs from Git: taskDefinition.containerDefinitions[app].environment"
    )
    assert "-    - name: DEBUG\n-      value: '1'" in row.drift_diff

    ecs.update_service_primary_task_set(
        cluster=cluster, service=SEED_SERVICE, primaryTaskSet=live["taskSetArn"]
    )
    ecs.delete_task_set(cluster=cluster, service=SEED_SERVICE, taskSet=by_hand)
    watchers.drift_once()
    assert _state(app)[0] == SYNCED


@pytest.mark.django_db
def test_drift_leaves_a_deploying_application_alone(deployed, aws, ecs_values):
    app, agent = deployed
    ecs, _ = clients(aws.endpoint)
    ecs.update_service(cluster=ecs_values["CLUSTER_ARN"], service=SEED_SERVICE, desiredCount=4)
    Application.objects.filter(pk=app.pk).update(deploying=True, sync_status="DEPLOYING")
    agent.scheduler.refresh_apps()
    assert Watchers(agent.scheduler).drift_once() == 0
    app.refresh_from_db()
    assert app.sync_status == "DEPLOYING"
    assert not ApplicationLiveState.objects.filter(application=app).exclude(drift_status="").exists()


@pytest.mark.django_db
def test_on_out_of_sync_redeploys_the_git_head(project, piped, ecs_agent, manifests, aws, ecs_values):
    app = add_app(project, piped)
    agent = ecs_agent()
    trigger = {"onOutOfSync": {"disabled": False, "minWindow": "1m"}}
    first = deploy_first_version(agent, manifests, seed_files(ecs_values, trigger=trigger), "apps/hello")
    Deployment.objects.filter(pk=first.pk).update(completed_at=datetime.now(UTC) - timedelta(minutes=5))
    ecs, _ = clients(aws.endpoint)
    ecs.update_service(cluster=ecs_values["CLUSTER_ARN"], service=SEED_SERVICE, desiredCount=6)
    watchers = Watchers(agent.scheduler)
    watchers.drift_once()
    assert _state(app)[0] == OUT_OF_SYNC
    assert agent.scheduler.pollers["manifests"]._wake.is_set()  # the poller looks at the app at once
    agent.poll_git()
    redeploy = Deployment.objects.order_by("-created_at").first()
    assert (redeploy.trigger_kind, redeploy.sync_strategy) == ("ON_OUT_OF_SYNC", "QUICK_SYNC")
    done = agent.run(str(redeploy.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    service = ecs.describe_services(cluster=ecs_values["CLUSTER_ARN"], services=[SEED_SERVICE])["services"][0]
    assert service["desiredCount"] == 2
    agent.scheduler.refresh_apps()
    watchers.drift_once()
    assert _state(app)[0] == SYNCED
