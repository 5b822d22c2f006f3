"""Traffic routing over every listener rule of the load balancer, and the rules that keep traffic safe: no
rule forwarding to both target groups is an error that names the rule to change, and no task set that still
gets traffic nobody else serves is deleted."""

import pytest

from .conftest import (
    SEED_SERVICE,
    V1,
    add_app,
    clients,
    deploy_first_version,
    finish_stage,
    logs,
    push_new_version,
    rule_weights,
    seed_files,
    task_sets,
    weights,
)

pytestmark = pytest.mark.django_db


CANARY_THEN_ROUTING = [
    {"name": "ECS_CANARY_ROLLOUT", "with": {"scale": 20}},
    {"name": "ECS_TRAFFIC_ROUTING", "with": {"canary": 10}},
]


def reach_the_routing(project, piped, ecs_agent, manifests, ecs_values):
    """v1 deployed, v2's canary rolled out: (agent, deployment) with stage-1 (the routing) to run next."""
    add_app(project, piped)
    agent = ecs_agent()
    files = seed_files(ecs_values, pipeline=CANARY_THEN_ROUTING)
    deploy_first_version(agent, manifests, files, "apps/hello")
    deployment = push_new_version(
        agent, manifests, seed_files(ecs_values, image_tag="v2", pipeline=CANARY_THEN_ROUTING), "apps/hello"
    )
    assert finish_stage(agent, deployment.id, "stage-0").status == "SUCCESS"
    return agent, deployment


def _forward(values, primary: int | None = 100, canary: int | None = 0) -> list[dict]:
    groups = []
    if primary is not None:
        groups.append({"TargetGroupArn": values["PRIMARY_TARGET_GROUP_ARN"], "Weight": primary})
    if canary is not None:
        groups.append({"TargetGroupArn": values["CANARY_TARGET_GROUP_ARN"], "Weight": canary})
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}]


def _path(pattern: str) -> list[dict]:
    return [{"Field": "path-pattern", "PathPatternConfig": {"Values": [pattern]}}]


@pytest.fixture
def more_rules(aws, ecs_values):
    """A second listener (default: both target groups), a path rule to both, a legacy path rule to the
    primary only, and a fixed response."""
    _, elbv2 = clients(aws.endpoint)
    second = elbv2.create_listener(
        LoadBalancerArn=ecs_values["LOAD_BALANCER_ARN"],
        Protocol="HTTP",
        Port=8080,
        DefaultActions=_forward(ecs_values),
    )["Listeners"][0]["ListenerArn"]
    listener = ecs_values["LISTENER_ARN"]
    api = elbv2.create_rule(
        ListenerArn=listener, Priority=10, Conditions=_path("/api/*"), Actions=_forward(ecs_values)
    )["Rules"][0]["RuleArn"]
    legacy = elbv2.create_rule(
        ListenerArn=listener,
        Priority=20,
        Conditions=_path("/legacy/*"),
        Actions=[{"Type": "forward", "TargetGroupArn": ecs_values["PRIMARY_TARGET_GROUP_ARN"]}],
    )["Rules"][0]["RuleArn"]
    elbv2.create_rule(
        ListenerArn=listener,
        Priority=30,
        Conditions=_path("/health"),
        Actions=[
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {
                    "StatusCode": "200",
                    "ContentType": "text/plain",
                    "MessageBody": "ok",
                },
            }
        ],
    )
    return {"second": second, "api": api, "legacy": legacy}


def test_every_rule_forwarding_to_both_is_rewritten_and_put_back_by_the_rollback(
    project, piped, ecs_agent, manifests, aws, ecs_values, more_rules
):
    pipeline = [
        {"name": "ECS_CANARY_ROLLOUT", "with": {"scale": 20}},
        {"name": "ECS_TRAFFIC_ROUTING", "with": {"canary": 25}},
        {"name": "SCRIPT_RUN", "with": {"run": "exit 1"}},
    ]
    add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values, pipeline=pipeline), "apps/hello")
    deployment = push_new_version(
        agent, manifests, seed_files(ecs_values, image_tag="v2", pipeline=pipeline), "apps/hello"
    )
    finish_stage(agent, deployment.id, "stage-0")
    routing = finish_stage(agent, deployment.id, "stage-1")
    assert routing.status == "SUCCESS", routing.status_reason
    assert routing.status_reason == "Primary 75 %, canary 25 % on 3 listener rule(s)"
    assert weights(aws, ecs_values) == (75, 25)
    assert weights(aws, ecs_values, more_rules["second"]) == (75, 25)
    assert rule_weights(aws, more_rules["api"], ecs_values) == (75, 25)
    assert rule_weights(aws, more_rules["legacy"], ecs_values) == {
        "single": ecs_values["PRIMARY_TARGET_GROUP_ARN"]
    }
    lines = logs(deployment.id, "stage-1")
    assert "listener HTTP:80, default rule: primary 100 → 75, canary 0 → 25" in lines
    assert "listener HTTP:80, rule 10 (path-pattern /api/*): primary 100 → 75, canary 0 → 25" in lines
    assert "listener HTTP:8080, default rule: primary 100 → 75, canary 0 → 25" in lines
    assert (
        "Warning: listener HTTP:80, rule 20 (path-pattern /legacy/*) forwards to the primary target group "
        "demo-primary only, so its traffic stays on the primary; add demo-canary to that forward action "
        "(weight 0) to have this stage route it too."
    ) in lines

    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "FAILURE" and done["status_reason"].endswith("rolled back")
    assert weights(aws, ecs_values) == (100, 0)
    assert weights(aws, ecs_values, more_rules["second"]) == (100, 0)
    assert rule_weights(aws, more_rules["api"], ecs_values) == (100, 0)
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V1]


def test_no_rule_forwarding_to_both_fails_and_names_the_rule_to_change(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    _, elbv2 = clients(aws.endpoint)
    elbv2.modify_listener(
        ListenerArn=ecs_values["LISTENER_ARN"],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": ecs_values["PRIMARY_TARGET_GROUP_ARN"]}],
    )
    agent, deployment = reach_the_routing(project, piped, ecs_agent, manifests, ecs_values)
    routing = finish_stage(agent, deployment.id, "stage-1")
    assert routing.status == "FAILURE"
    assert routing.status_reason == (
        "No listener rule of load balancer demo-alb forwards to both demo-primary and demo-canary, so the "
        "traffic cannot be split: change listener HTTP:80, default rule to forward to both target groups "
        "(weights primary 100, canary 0)."
    )
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "FAILURE"
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V1]


def test_canary_clean_refuses_while_the_canary_still_gets_traffic(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    pipeline = [
        {"name": "ECS_CANARY_ROLLOUT", "with": {"scale": 20}},
        {"name": "ECS_TRAFFIC_ROUTING", "with": {"canary": 30}},
        {"name": "ECS_CANARY_CLEAN"},
    ]
    add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values, pipeline=pipeline), "apps/hello")
    deployment = push_new_version(
        agent, manifests, seed_files(ecs_values, image_tag="v2", pipeline=pipeline), "apps/hello"
    )
    finish_stage(agent, deployment.id, "stage-0")
    finish_stage(agent, deployment.id, "stage-1")
    clean = finish_stage(agent, deployment.id, "stage-2")
    assert clean.status == "FAILURE"
    assert "its target group demo-canary still gets 30 % of the traffic (listener HTTP:80, default rule)" in (
        clean.status_reason
    )
    assert (
        "Route the traffic to the primary first (ECS_TRAFFIC_ROUTING with primary: 100)."
        in clean.status_reason
    )
    # The canary was still there until the rollback moved the traffic back and then removed it.
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "FAILURE"
    assert weights(aws, ecs_values) == (100, 0)
    assert task_sets(aws, ecs_values, SEED_SERVICE) == [V1]


def test_the_old_primary_stays_while_its_target_group_gets_traffic_nobody_else_serves(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    """Version 2 moves the service to another primary target group; the listener still sends everything to
    the old one, which only the old primary task set serves."""
    _, elbv2 = clients(aws.endpoint)
    blue = elbv2.create_target_group(
        Name="demo-blue", Protocol="HTTP", Port=8080, VpcId=ecs_values["VPC_ID"], TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    add_app(project, piped)
    agent = ecs_agent()
    pipeline = [{"name": "ECS_PRIMARY_ROLLOUT"}]
    deploy_first_version(agent, manifests, seed_files(ecs_values, pipeline=pipeline), "apps/hello")
    moved = seed_files({**ecs_values, "PRIMARY_TARGET_GROUP_ARN": blue}, image_tag="v2", pipeline=pipeline)
    deployment = push_new_version(agent, manifests, moved, "apps/hello")
    rollout = finish_stage(agent, deployment.id, "stage-0")
    assert rollout.status == "SUCCESS", rollout.status_reason
    ecs, _ = clients(aws.endpoint)
    live = ecs.describe_task_sets(cluster=ecs_values["CLUSTER_ARN"], service=SEED_SERVICE)["taskSets"]
    assert sorted((t["status"], t["taskDefinition"].rsplit("/", 1)[-1]) for t in live) == [
        ("ACTIVE", "hogehoge:1"),
        ("PRIMARY", "hogehoge:2"),
    ]
    assert any(
        line.startswith("Warning: left the old primary task set")
        and "its target group demo-primary still gets 100 % of the traffic (listener HTTP:80, default rule) "
        "and no other task set serves it"
        in line
        for line in logs(deployment.id, "stage-0")
    )
    assert weights(aws, ecs_values) == (100, 0)


def test_no_traffic_goes_to_a_target_group_no_task_set_serves(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    # A pipeline that routes to the canary without a canary rollout before it (or after a canary clean)
    # would send that share of the requests to an empty target group: they would all fail.
    pipeline = [{"name": "ECS_TRAFFIC_ROUTING", "with": {"canary": 10}}]
    add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values, pipeline=pipeline), "apps/hello")
    deployment = push_new_version(
        agent, manifests, seed_files(ecs_values, image_tag="v2", pipeline=pipeline), "apps/hello"
    )
    routing = finish_stage(agent, deployment.id, "stage-0")
    assert routing.status == "FAILURE"
    assert routing.status_reason == (
        "No task set of service hogehoge is registered in target group demo-canary, so the 10 % of the "
        "traffic routed to it would fail: run ECS_CANARY_ROLLOUT before this stage."
    )
    assert weights(aws, ecs_values) == (100, 0)


def test_no_traffic_goes_to_a_primary_target_group_left_without_tasks(
    project, piped, ecs_agent, manifests, aws, ecs_values
):
    # The primary task set was scaled to 0 outside PipePortal: 90 % of the requests would have nowhere to go.
    agent, deployment = reach_the_routing(project, piped, ecs_agent, manifests, ecs_values)
    ecs, _ = clients(aws.endpoint)
    primary = next(
        t
        for t in ecs.describe_task_sets(cluster=ecs_values["CLUSTER_ARN"], service=SEED_SERVICE)["taskSets"]
        if t["status"] == "PRIMARY"
    )
    ecs.update_task_set(
        cluster=ecs_values["CLUSTER_ARN"],
        service=SEED_SERVICE,
        taskSet=primary["taskSetArn"],
        scale={"value": 0, "unit": "PERCENT"},
    )
    routing = finish_stage(agent, deployment.id, "stage-1")
    assert routing.status == "FAILURE"
    assert routing.status_reason == (
        "No task set of service hogehoge is registered in target group demo-primary, so the 90 % of the "
        "traffic routed to it would fail: run ECS_PRIMARY_ROLLOUT before this stage."
    )
    assert weights(aws, ecs_values) == (100, 0)
