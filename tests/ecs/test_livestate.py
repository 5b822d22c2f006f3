"""Live state: the service, its task sets and tasks and the traffic split, collected by the piped and stored
by the control plane; and the stability wait on task set counts.

moto gives task sets no runningCount / computedDesiredCount / pendingCount and every task set is
STEADY_STATE, and its tasks carry no startedBy of their task set nor a health status. The tests that need
those use botocore's Stubber with responses shaped like AWS's — for that gap only; everything else runs
against the moto server.
"""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from botocore.stub import Stubber

from apps.applications.models import ApplicationLiveState
from apps.pipedagent.executors import Continue, Done
from apps.pipedagent.livestate import Watchers
from apps.pipedagent.platforms.ecs.livestate import collect
from apps.pipedagent.platforms.ecs.provider import ECSProvider
from apps.pipedagent.platforms.ecs.resources import service_target, wait_until_steady
from apps.pipelineconfig import load_app_config, load_ecs_definitions

from .conftest import add_app, deploy_first_version, finish_stage, push_new_version, seed_files

CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/prod"
SERVICE_ARN = "arn:aws:ecs:us-east-1:123456789012:service/prod/hogehoge"
PRIMARY_TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-primary/1111111111111111"
CANARY_TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-canary/2222222222222222"
LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/3333333333333333"
LISTENER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/3333333333333333/4444"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def stubbed_provider() -> ECSProvider:
    config = SimpleNamespace(region="us-east-1", profile="", credentials_file="", role_arn="", token_file="")
    return ECSProvider("ECS", config, SimpleNamespace(aws_max_attempts=1))


def task_set(
    arn_id: str, status: str, td: str, tg: str, *, scale: float, running: int, desired: int, **extra
):
    return {
        "id": f"ecs-svc/{arn_id}",
        "taskSetArn": f"arn:aws:ecs:us-east-1:123456789012:task-set/prod/hogehoge/ecs-svc/{arn_id}",
        "serviceArn": SERVICE_ARN,
        "clusterArn": CLUSTER,
        "status": status,
        "taskDefinition": f"arn:aws:ecs:us-east-1:123456789012:task-definition/{td}",
        "computedDesiredCount": desired,
        "pendingCount": extra.pop("pending", 0),
        "runningCount": running,
        "createdAt": extra.pop("created", NOW),
        "launchType": "FARGATE",
        "loadBalancers": [{"targetGroupArn": tg, "containerName": "app", "containerPort": 8080}],
        "scale": {"value": scale, "unit": "PERCENT"},
        "stabilityStatus": extra.pop("stability", "STEADY_STATE"),
        "tags": [],
        **extra,
    }


def task(task_id: str, started_by: str, td: str, health: str) -> dict:
    return {
        "taskArn": f"arn:aws:ecs:us-east-1:123456789012:task/prod/{task_id}",
        "taskDefinitionArn": f"arn:aws:ecs:us-east-1:123456789012:task-definition/{td}",
        "lastStatus": "RUNNING",
        "desiredStatus": "RUNNING",
        "healthStatus": health,
        "startedBy": started_by,
        "group": "service:hogehoge",
        "availabilityZone": "us-east-1a",
        "startedAt": NOW,
    }


def test_the_stability_wait_reads_the_task_set_counts():
    """Stubbed (moto gap: no per-task-set counts, always STEADY_STATE)."""
    provider = stubbed_provider()
    arn = "arn:aws:ecs:us-east-1:123456789012:task-set/prod/hogehoge/ecs-svc/1"
    ctx = SimpleNamespace(
        metadata={"stable_deadline": (NOW + timedelta(minutes=5)).isoformat()},
        knobs=SimpleNamespace(ecs_poll=2.0, ecs_stable_timeout=300),
        logger=SimpleNamespace(error=lambda message: None),
        now=lambda: NOW,
    )
    service = {"services": [{"serviceArn": SERVICE_ARN, "status": "ACTIVE", "pendingCount": 0}]}
    looks = [
        ("STABILIZING", 1, 2, 1),  # one task still starting
        ("STEADY_STATE", 1, 2, 0),  # steady, yet one task short of the computed count
        ("STEADY_STATE", 2, 2, 0),
    ]
    with Stubber(provider.ecs) as ecs:
        for stability, running, desired, pending in looks:
            one = task_set("1", "ACTIVE", "hogehoge:2", CANARY_TG, scale=50, running=running, desired=desired)
            one.update(stabilityStatus=stability, pendingCount=pending)
            ecs.add_response("describe_task_sets", {"taskSets": [one]})
            ecs.add_response("describe_services", service)
        first = wait_until_steady(ctx, provider, CLUSTER, "hogehoge", arn)
        second = wait_until_steady(ctx, provider, CLUSTER, "hogehoge", arn)
        third = wait_until_steady(ctx, provider, CLUSTER, "hogehoge", arn)
    assert first == Continue(2.0, "stabilityStatus STABILIZING, 1 pending task(s), 1 of 2 running")
    assert second == Continue(2.0, "stabilityStatus STEADY_STATE, 0 pending task(s), 1 of 2 running")
    assert third is None

    ctx.now = lambda: NOW + timedelta(minutes=6)
    with Stubber(provider.ecs) as ecs:
        one = task_set("1", "ACTIVE", "hogehoge:2", CANARY_TG, scale=50, running=0, desired=2)
        one.update(stabilityStatus="STABILIZING", pendingCount=2)
        ecs.add_response("describe_task_sets", {"taskSets": [one]})
        ecs.add_response("describe_services", service)
        late = wait_until_steady(ctx, provider, CLUSTER, "hogehoge", arn)
    assert isinstance(late, Done) and late.status == "FAILURE"
    assert late.reason == (
        "Task set 1 did not become steady within 5m00s (stabilityStatus STABILIZING, 2 pending task(s), 0 of 2 running)."
    )


@pytest.fixture
def seed_target(tmp_path):
    from apps.pipedagent.demo_support import render_app

    values = {
        "REGION": "us-east-1",
        "CLUSTER_ARN": CLUSTER,
        "SUBNET_A": "subnet-a",
        "SUBNET_B": "subnet-b",
        "SECURITY_GROUP": "sg-a",
        "PRIMARY_TARGET_GROUP_ARN": PRIMARY_TG,
        "CANARY_TARGET_GROUP_ARN": CANARY_TG,
    }
    for name, text in render_app(values).items():
        (tmp_path / name).write_text(text)
    spec = load_app_config(str(tmp_path / "app.pipecd.yaml")).spec

    class Source:
        commit = "c" * 40

        def __init__(self):
            self.spec = spec

        def ecs_definitions(self):
            return load_ecs_definitions(tmp_path, spec)

    return service_target(Source(), "c" * 40)


def test_live_state_attributes_tasks_and_splits_traffic_by_running_tasks(seed_target):
    """Stubbed (moto gap: task sets without counts, tasks without startedBy or health)."""
    provider = stubbed_provider()
    primary = task_set("10", "PRIMARY", "hogehoge:1", PRIMARY_TG, scale=100, running=3, desired=3)
    canary = task_set(
        "20",
        "ACTIVE",
        "hogehoge:2",
        CANARY_TG,
        scale=20,
        running=1,
        desired=1,
        created=NOW + timedelta(minutes=1),
    )
    tasks = [
        task("a", "ecs-svc/10", "hogehoge:1", "HEALTHY"),
        task("b", "ecs-svc/10", "hogehoge:1", "HEALTHY"),
        task("c", "ecs-svc/10", "hogehoge:1", "UNHEALTHY"),
        task("d", "ecs-svc/20", "hogehoge:2", "HEALTHY"),
    ]

    def definition(revision: str, tag: str) -> dict:
        return {
            "taskDefinition": {
                "taskDefinitionArn": f"arn:aws:ecs:us-east-1:123456789012:task-definition/hogehoge:{revision}",
                "family": "hogehoge",
                "containerDefinitions": [{"name": "app", "image": f"registry/hogehoge:{tag}"}],
            },
            "tags": [],
        }

    def group(arn: str, name: str) -> dict:
        return {"TargetGroups": [{"TargetGroupArn": arn, "TargetGroupName": name, "LoadBalancerArns": [LB]}]}

    forward = {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [
                {"TargetGroupArn": PRIMARY_TG, "Weight": 90},
                {"TargetGroupArn": CANARY_TG, "Weight": 10},
            ]
        },
    }
    with Stubber(provider.ecs) as ecs, Stubber(provider.elbv2) as elbv2:
        ecs.add_response(
            "describe_services",
            {
                "services": [
                    {
                        "serviceArn": SERVICE_ARN,
                        "serviceName": "hogehoge",
                        "status": "ACTIVE",
                        "desiredCount": 3,
                        "runningCount": 4,
                        "pendingCount": 0,
                        "launchType": "FARGATE",
                        "deploymentController": {"type": "EXTERNAL"},
                    }
                ]
            },
        )
        ecs.add_response("describe_task_sets", {"taskSets": [primary, canary]})
        ecs.add_response("list_tasks", {"taskArns": [t["taskArn"] for t in tasks]})
        ecs.add_response("describe_tasks", {"tasks": tasks})
        ecs.add_response("describe_task_definition", definition("1", "v1"))
        ecs.add_response("describe_task_definition", definition("2", "v2"))
        elbv2.add_response("describe_target_groups", group(PRIMARY_TG, "web-primary"))
        elbv2.add_response("describe_target_groups", group(CANARY_TG, "web-canary"))
        elbv2.add_response(
            "describe_listeners",
            {
                "Listeners": [
                    {"ListenerArn": LISTENER, "LoadBalancerArn": LB, "Port": 443, "Protocol": "HTTPS"}
                ]
            },
        )
        elbv2.add_response(
            "describe_rules",
            {
                "Rules": [
                    {
                        "RuleArn": f"{LISTENER}/default",
                        "Priority": "default",
                        "IsDefault": True,
                        "Actions": [forward],
                    }
                ]
            },
        )
        snapshot = collect(provider, seed_target, piped_id="p", commit="c" * 40)
    old, new = snapshot["task_sets"]
    assert (old["status"], old["version"], old["running"], old["healthy"], old["unhealthy"]) == (
        "PRIMARY",
        "hogehoge:v1",
        3,
        2,
        1,
    )
    assert [t["id"] for t in old["tasks"]] == ["a", "b", "c"]
    assert (new["status"], new["version"], new["running"], new["desired"], new["healthy"]) == (
        "ACTIVE",
        "hogehoge:v2",
        1,
        1,
        1,
    )
    assert (old["traffic_percent"], new["traffic_percent"]) == (90.0, 10.0)
    assert snapshot["traffic"]["rule"] == "listener HTTPS:443, default rule"
    assert snapshot["traffic"]["target_groups"] == [
        {"arn": PRIMARY_TG, "name": "web-primary", "percent": 90.0},
        {"arn": CANARY_TG, "name": "web-canary", "percent": 10.0},
    ]
    assert snapshot["versions"] == [
        {
            "version": "hogehoge:v2",
            "traffic_percent": 10.0,
            "tasks": 1,
            "task_sets": 1,
            "newest": True,
            "tasks_total": 4,
        },
        {
            "version": "hogehoge:v1",
            "traffic_percent": 90.0,
            "tasks": 3,
            "task_sets": 1,
            "newest": False,
            "tasks_total": 4,
        },
    ]


@pytest.mark.django_db
def test_the_piped_reports_the_live_state_during_a_canary(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    app = add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values), "apps/hello")
    deployment = push_new_version(agent, manifests, seed_files(ecs_values, image_tag="v2"), "apps/hello")
    finish_stage(agent, deployment.id, "stage-0")
    watchers = Watchers(agent.scheduler)
    assert watchers.live_state_once() == 1
    after_canary = ApplicationLiveState.objects.get(application=app)
    assert [(t["status"], t["version"]) for t in after_canary.snapshot["task_sets"]] == [
        ("PRIMARY", "hogehoge:v1"),
        ("ACTIVE", "hogehoge:v2"),
    ]
    # While the deployment runs, the watcher refreshes just this application between its full rounds.
    assert watchers.live_state_once(only={"another-app"}) == 0
    finish_stage(agent, deployment.id, "stage-1")
    assert watchers.live_state_once(only={str(app.id)}) == 1
    state = ApplicationLiveState.objects.get(application=app)
    snapshot = state.snapshot
    assert state.updated_at is not None and state.snapshot_key == ""
    assert snapshot["service"]["name"] == "hogehoge" and snapshot["service"]["desired"] == 2
    primary, canary = snapshot["task_sets"]
    assert (
        primary["variant"],
        primary["scale"],
        primary["target_groups"][0]["name"],
        primary["traffic_percent"],
    ) == (
        "primary",
        100.0,
        "demo-primary",
        90.0,
    )
    assert (
        canary["variant"],
        canary["scale"],
        canary["target_groups"][0]["name"],
        canary["traffic_percent"],
    ) == (
        "canary",
        20.0,
        "demo-canary",
        10.0,
    )
    assert canary["managed"] is True and canary["commit"] == deployment.commit_hash
    assert snapshot["traffic"]["target_groups"][0] == {
        "arn": ecs_values["PRIMARY_TARGET_GROUP_ARN"],
        "name": "demo-primary",
        "percent": 90.0,
    }
    newest = snapshot["versions"][0]
    assert (newest["version"], newest["newest"], newest["traffic_percent"]) == ("hogehoge:v2", True, 10.0)
