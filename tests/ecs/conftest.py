"""Fixtures for the ECS stages: the moto server set up as a service that runs its tasks, PipeCD's ECS examples
with their placeholders replaced by the emulator's ARNs, and helpers that read back what AWS holds.

The piped is the in-process one of tests/pipedagent (real piped API, real Git, moto), driven step by step.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import boto3
import pytest
import requests
import yaml
from botocore.config import Config

from apps.pipedagent.platforms.ecs.emulator import create_ecs_environment
from tests.components import MotoServer, require
from tests.pipedagent.conftest import (  # noqa: F401  (fixtures used by the tests of this folder)
    add_app,
    make_agent,
    manifests,
    piped_client,
    second_application,
    second_client,
    second_piped_and_key,
)

EXAMPLES = (
    Path(__file__).resolve().parent.parent / "pipelineconfig" / "fixtures" / "pipecd" / "examples" / "ecs"
)
ACCOUNT = "123456789012"
NO_RETRIES = Config(retries={"total_max_attempts": 1})


@pytest.fixture(scope="session")
def moto_server():
    """The moto server as tests/pipedagent sets it up (services run the 2 tasks they ask for), plus tasks
    that stay RUNNING: by default moto moves a task one state on (RUNNING → DEACTIVATING → …) every time it
    is described, and the live state describes them. Both are gaps of the emulator, set here."""
    previous = os.environ.get("MOTO_ECS_SERVICE_RUNNING")
    os.environ["MOTO_ECS_SERVICE_RUNNING"] = "2"
    try:
        server = MotoServer()
    except (OSError, RuntimeError, TimeoutError) as exc:  # pragma: no cover - depends on the machine
        require(False, f"moto server ({exc})")
    finally:
        if previous is None:
            os.environ.pop("MOTO_ECS_SERVICE_RUNNING", None)
        else:
            os.environ["MOTO_ECS_SERVICE_RUNNING"] = previous
    requests.post(
        f"{server.endpoint}/moto-api/state-manager/set-transition",
        json={"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}},
        timeout=10,
    ).raise_for_status()
    yield server
    server.stop()


def clients(endpoint: str) -> tuple:
    kwargs = {"region_name": "us-east-1", "endpoint_url": endpoint, "config": NO_RETRIES}
    return boto3.client("ecs", **kwargs), boto3.client("elbv2", **kwargs)


@pytest.fixture
def ecs_values(aws) -> dict:
    """The demo's VPC, cluster, ALB (listener: primary 100 / canary 0) plus a service-discovery registry."""
    values = create_ecs_environment(aws.endpoint)
    kwargs = {"region_name": "us-east-1", "endpoint_url": aws.endpoint, "config": NO_RETRIES}
    discovery = boto3.client("servicediscovery", **kwargs)
    discovery.create_private_dns_namespace(Name="demo.local", Vpc=values["VPC_ID"])
    namespace = discovery.list_namespaces()["Namespaces"][0]["Id"]
    registry = discovery.create_service(
        Name="web", NamespaceId=namespace, DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 60}]}
    )["Service"]["Arn"]
    return {**values, "REGISTRY_ARN": registry}


def _fill(text: str, values: dict, image_tag: str) -> str:
    """Replace PipeCD's example placeholders (XXXX, YYYY, ZZZZ, ap-northeast-1) with the emulator's values."""
    text = re.sub(
        r"arn:aws:elasticloadbalancing:ap-northeast-1:XXXX:targetgroup/[^/\s]+/YYYY",
        values["PRIMARY_TARGET_GROUP_ARN"],
        text,
    )
    text = re.sub(
        r"arn:aws:elasticloadbalancing:ap-northeast-1:XXXX:targetgroup/[^/\s]+/ZZZZ",
        values["CANARY_TARGET_GROUP_ARN"],
        text,
    )
    text = text.replace("arn:aws:ecs:ap-northeast-1:XXXX:cluster/test-cluster", values["CLUSTER_ARN"])
    text = re.sub(
        r"arn:aws:servicediscovery:ap-northeast-1:XXXX:service/srv-XXXXX", values["REGISTRY_ARN"], text
    )
    text = text.replace("subnet-YYYY", values["SUBNET_A"], 1).replace("subnet-YYYY", values["SUBNET_B"], 1)
    text = text.replace("sg-YYYY", values["SECURITY_GROUP"])
    text = re.sub(r"(nginx|httpd):\d+", lambda m: f"{m.group(1)}:{image_tag}", text)
    return text.replace("XXXX", ACCOUNT).replace("ap-northeast-1", "us-east-1")


def example_files(
    name: str, values: dict, *, image_tag: str = "1", extra: dict | None = None
) -> dict[str, str]:
    """PipeCD's example `name` (e.g. "canary", "servicediscovery/simple") ready for the emulator.

    The wait-approval example has only its app config: it gets the canary example's input and definition
    files (the pipeline is the canary one with a WAIT_APPROVAL instead of the WAIT). `extra` is merged into
    the app config's spec (a test's own pipeline, planner…).
    """
    folder = EXAMPLES / name
    files = {path.name: path.read_text() for path in sorted(folder.iterdir()) if path.is_file()}
    if name == "wait-approval":
        canary = EXAMPLES / "canary"
        config = yaml.safe_load(files["app.pipecd.yaml"])
        config["spec"]["input"] = yaml.safe_load((canary / "app.pipecd.yaml").read_text())["spec"]["input"]
        files["app.pipecd.yaml"] = yaml.safe_dump(config, sort_keys=False)
        for definition in ("servicedef.yaml", "taskdef.yaml"):
            files[definition] = (canary / definition).read_text()
    if extra:
        config = yaml.safe_load(files["app.pipecd.yaml"])
        config["spec"].update(extra)
        files["app.pipecd.yaml"] = yaml.safe_dump(config, sort_keys=False)
    return {file: _fill(text, values, image_tag) for file, text in files.items()}


# --- Reading back what AWS holds -----------------------------------------------------------------------


def task_sets(aws, values: dict, service: str) -> list[tuple]:
    """(status, scale, task definition, where) for each live task set, PRIMARY first."""
    ecs, _ = clients(aws.endpoint)
    names = {values["PRIMARY_TARGET_GROUP_ARN"]: "primary-tg", values["CANARY_TARGET_GROUP_ARN"]: "canary-tg"}
    out = []
    for task_set in ecs.describe_task_sets(cluster=values["CLUSTER_ARN"], service=service)["taskSets"]:
        if task_set["status"] not in ("PRIMARY", "ACTIVE"):
            continue
        where = [
            names.get(lb["targetGroupArn"], lb["targetGroupArn"])
            for lb in task_set.get("loadBalancers") or []
        ]
        where += ["registry" for _ in task_set.get("serviceRegistries") or []]
        out.append(
            (
                task_set["status"],
                float(task_set["scale"]["value"]),
                task_set["taskDefinition"].rsplit("/", 1)[-1],
                ",".join(where),
            )
        )
    return sorted(out, key=lambda t: (t[0] != "PRIMARY", t))


def weights(aws, values: dict, listener: str | None = None) -> tuple[int, int]:
    """(primary, canary) weights of the listener's default rule."""
    _, elbv2 = clients(aws.endpoint)
    listener = listener or values["LISTENER_ARN"]
    [described] = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"]
    groups = {
        g["TargetGroupArn"]: g["Weight"]
        for g in described["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    }
    return groups[values["PRIMARY_TARGET_GROUP_ARN"]], groups[values["CANARY_TARGET_GROUP_ARN"]]


def rule_weights(aws, rule_arn: str, values: dict) -> tuple[int, int] | dict:
    _, elbv2 = clients(aws.endpoint)
    [rule] = elbv2.describe_rules(RuleArns=[rule_arn])["Rules"]
    forward = next(a for a in rule["Actions"] if a["Type"] == "forward")
    if "ForwardConfig" not in forward or len(forward["ForwardConfig"].get("TargetGroups", [])) < 2:
        return {
            "single": forward.get("TargetGroupArn")
            or forward["ForwardConfig"]["TargetGroups"][0]["TargetGroupArn"]
        }
    groups = {g["TargetGroupArn"]: g["Weight"] for g in forward["ForwardConfig"]["TargetGroups"]}
    return groups[values["PRIMARY_TARGET_GROUP_ARN"]], groups[values["CANARY_TARGET_GROUP_ARN"]]


def revisions(aws, family: str) -> list[str]:
    ecs, _ = clients(aws.endpoint)
    return [
        a.rsplit("/", 1)[-1] for a in ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
    ]


# --- Driving a deployment ------------------------------------------------------------------------------


def logs(deployment_id, stage_id: str) -> list[str]:
    from apps.deployments.models import StageLogBlock

    return list(
        StageLogBlock.objects.filter(stage__deployment_id=deployment_id, stage__stage_id=stage_id)
        .order_by("retried_count", "index")
        .values_list("log", flat=True)
    )


def stage_row(deployment_id, stage_id: str):
    from apps.deployments.models import Stage

    return Stage.objects.get(deployment_id=deployment_id, stage_id=stage_id)


def newest_deployment():
    from apps.deployments.models import Deployment

    return Deployment.objects.order_by("-created_at").first()


TERMINAL = ("SUCCESS", "FAILURE", "CANCELLED", "SKIPPED", "EXITED")


def finish_stage(agent, deployment_id, stage_id: str, *, steps: int = 8):
    """Step the deployment until `stage_id` has ended; answers the stage row."""
    for _ in range(steps):
        stage = stage_row(deployment_id, stage_id)
        if stage.status in TERMINAL:
            return stage
        agent.step(str(deployment_id))
    stage = stage_row(deployment_id, stage_id)
    assert stage.status in TERMINAL, f"{stage_id} is still {stage.status}: {logs(deployment_id, stage_id)}"
    return stage


def age_wait(deployment_id, stage_id: str, seconds: float = 10**6) -> None:
    """Pretend the WAIT stage started long ago (what the scheduler's clock would see after its duration)."""
    from datetime import UTC, datetime, timedelta

    stage = stage_row(deployment_id, stage_id)
    stage.metadata["wait_started_at"] = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()
    stage.save(update_fields=["metadata"])


def deploy_first_version(agent, repo, files: dict, under: str, message: str = "Add the application"):
    """Commit the files, let the piped deploy them once (quick sync), and answer the finished deployment."""
    repo.write(files, under=under)
    repo.commit_and_push(message)
    agent.poll_git()
    first = newest_deployment()
    done = agent.run(str(first.id), lambda d: d["status"] in ("SUCCESS", "FAILURE", "CANCELLED"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    return first


def push_new_version(agent, repo, files: dict, under: str, message: str = "Bump the image"):
    repo.write(files, under=under)
    repo.commit_and_push(message)
    agent.poll_git()
    deployment = newest_deployment()
    agent.step(str(deployment.id))  # planned
    deployment.refresh_from_db()
    assert deployment.status == "PLANNED", deployment.status_reason
    return deployment


def seed_files(
    values: dict, *, image_tag: str = "v1", pipeline: list | None = None, **spec
) -> dict[str, str]:
    """The seed's application (apps/pipedagent/demo_assets/hello: the seed's files with its containerName
    mistake fixed), optionally with another pipeline and extra spec keys (planner, trigger…)."""
    from apps.pipedagent.demo_support import render_app

    files = render_app(values, image_tag=image_tag)
    if pipeline is not None or spec:
        config = yaml.safe_load(files["app.pipecd.yaml"])
        if pipeline is not None:
            config["spec"]["pipeline"] = {"stages": pipeline}
        config["spec"].update(spec)
        files["app.pipecd.yaml"] = yaml.safe_dump(config, sort_keys=False)
    return files


SEED_SERVICE = "hogehoge"
V1 = ("PRIMARY", 100.0, "hogehoge:1", "primary-tg")


@pytest.fixture
def ecs_agent(request):
    """tests/pipedagent's in-process piped, with a claim lease long enough that the renewer thread never
    has to talk to the test database while a slow step runs on a loaded machine."""
    make = request.getfixturevalue("make_agent")
    return lambda **knobs: make(**{"claim_lease": 60, **knobs})
