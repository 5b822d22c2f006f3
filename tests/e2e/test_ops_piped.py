"""Operating the piped, end to end: a piped process (`manage.py piped`) against the control plane on a real
port and the moto server, with its metrics served on a free port and LOG_FORMAT=json. Its /metrics is
scraped over HTTP, its log lines are read back, and the control plane's /metrics is scraped after the
deployments."""

import json
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from apps.deployments.models import Deployment, Stage
from apps.deployments.services import approve_stage
from tests.components import free_port

from .conftest import add_app, app_files, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("piped-e2e")]

APPROVAL_PIPELINE = """\
pipeline:
  stages:
    - id: approve
      name: WAIT_APPROVAL
    - name: ECS_SYNC
planner:
  alwaysUsePipeline: true
  autoRollback: false
"""


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text page: {(name, sorted labels): value}."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text[:500]
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def series(samples: dict, name: str, **labels: str) -> dict[tuple, float]:
    """The samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return {key[1]: v for key, v in samples.items() if key[0] == name and wanted <= set(key[1])}


def finished(commit: str):
    deployment = Deployment.objects.filter(commit_hash=commit).order_by("-created_at").first()
    return deployment if deployment and deployment.status in ("SUCCESS", "FAILURE", "CANCELLED") else None


def waiting_approval(commit: str):
    return Stage.objects.filter(
        deployment__commit_hash=commit, name="WAIT_APPROVAL", status="RUNNING"
    ).first()


def test_the_piped_serves_its_metrics_and_writes_json_logs_through_deployments(
    project, piped, manifests, ecs_values, aws, start_piped, editor
):
    started_at = time.time()
    manifests.write(app_files(ecs_values, extra=APPROVAL_PIPELINE), under="apps/hello")
    first_commit = manifests.commit_and_push("Add hello")
    app = add_app(project, piped)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    process = start_piped(
        "--metrics-addr", f"127.0.0.1:{port}", LOG_FORMAT="json", PIPED_SYNC_INTERVAL_SECONDS="1"
    )

    first_stage = wait_for(lambda: waiting_approval(first_commit), 60, message="no approval was reached")
    # A second push while the first deployment waits: its deployment waits (PENDING) behind the first.
    manifests.write(app_files(ecs_values, image_tag="v2", extra=APPROVAL_PIPELINE), under="apps/hello")
    second_commit = manifests.commit_and_push("hello v2")
    wait_for(lambda: Deployment.objects.filter(commit_hash=second_commit).exists(), 30)

    def pending_work_seen():
        samples = scrape(url)
        running = value(samples, "pipeportal_piped_deployments", status="RUNNING")
        pending = value(samples, "pipeportal_piped_deployments", status="PENDING")
        return samples if (running, pending) == (1.0, 1.0) else None

    samples = wait_for(pending_work_seen, 15, interval=0.3, message="the waiting deployments were not shown")
    assert value(samples, "pipeportal_piped_control_plane_up") == 1.0
    assert value(samples, "pipeportal_piped_steps_queued") is not None
    assert value(samples, "pipeportal_piped_notifications_queued") == 0.0

    approve_stage(editor, first_stage.deployment, "approve")
    first = wait_for(lambda: finished(first_commit), 60, message="the first deployment did not finish")
    assert first.status == "SUCCESS", first.status_reason
    second_stage = wait_for(lambda: waiting_approval(second_commit), 60, message="no second approval")
    approve_stage(editor, second_stage.deployment, "approve")
    second = wait_for(lambda: finished(second_commit), 60, message="the second deployment did not finish")
    assert second.status == "SUCCESS", second.status_reason

    samples = scrape(url)
    # Git: the first fetch into the empty work directory was a clone, later ones fetches; none failed.
    assert (
        value(
            samples,
            "pipeportal_piped_git_fetch_duration_seconds_count",
            repository="manifests",
            operation="clone",
        )
        >= 1
    )
    fetches = value(
        samples,
        "pipeportal_piped_git_fetch_duration_seconds_count",
        repository="manifests",
        operation="fetch",
    )
    assert fetches >= 1  # the second push: the worker fetched the new commit, or the poller did
    for operation in ("clone", "fetch"):
        assert (
            value(
                samples,
                "pipeportal_piped_git_fetch_failures_total",
                repository="manifests",
                operation=operation,
            )
            == 0.0
        )
    last_fetch = value(
        samples, "pipeportal_piped_git_last_fetch_success_timestamp_seconds", repository="manifests"
    )
    assert started_at <= last_fetch <= time.time()

    # AWS: a histogram per operation, with buckets that add up, for every call an ECS_SYNC makes.
    for operation in (
        "RegisterTaskDefinition",
        "CreateService",
        "CreateTaskSet",
        "UpdateServicePrimaryTaskSet",
    ):
        labels = {"service": "ecs", "operation": operation}
        count = value(samples, "pipeportal_piped_aws_request_duration_seconds_count", **labels)
        assert count is not None and count >= 1, operation
        buckets = sorted(
            (float(dict(key)["le"]), v)
            for key, v in series(
                samples, "pipeportal_piped_aws_request_duration_seconds_bucket", **labels
            ).items()
        )
        assert buckets[-1] == (float("inf"), count)
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)
        assert 0 < value(samples, "pipeportal_piped_aws_request_duration_seconds_sum", **labels) < 60 * count
    # Two deployments registered two revisions of the task definition.
    assert (
        value(
            samples,
            "pipeportal_piped_aws_request_duration_seconds_count",
            service="ecs",
            operation="RegisterTaskDefinition",
        )
        == 2
    )
    # The live state reads the load balancer: ELB calls are measured under their IAM prefix.
    assert series(
        samples, "pipeportal_piped_aws_request_duration_seconds_count", service="elasticloadbalancing"
    )

    # Pending work once everything is done, and the process itself.
    assert value(samples, "pipeportal_piped_deployments", status="PENDING") == 0.0
    assert value(samples, "pipeportal_piped_deployments", status="RUNNING") == 0.0
    assert value(samples, "pipeportal_piped_steps_running") == 0.0
    assert value(samples, "process_resident_memory_bytes") > 10 * 2**20
    assert value(samples, "process_cpu_seconds_total") > 0
    assert series(samples, "python_info")

    assert process.stop() == 0
    # Every line the piped wrote is a JSON object; the lines about a deployment name it.
    lines = [line for line in process.log().splitlines() if line and not line.startswith("--- start")]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")], records
    for deployment in (first, second):
        about = [r for r in records if str(deployment.id) in r["message"]]
        assert about, f"no line about deployment {deployment.id}"
        assert all(r.get("deployment_id") == str(deployment.id) for r in about), about
        assert all(r.get("application_id") == str(app.id) for r in about), about
        # The status lines (the runtime's): "deployment <id> of <app>: <STATUS> <reason>".
        statuses = {
            r["message"].split(": ", 1)[1].split()[0]: r
            for r in about
            if r["logger"] == "apps.pipedagent.runtime" and ": " in r["message"]
        }
        # RUNNING is reported by the first stage's step, SUCCESS by the last one's: both carry that stage.
        assert statuses["RUNNING"].get("stage_id") == "approve", statuses["RUNNING"]
        assert statuses["SUCCESS"].get("stage_id") == "stage-1", statuses["SUCCESS"]
    assert any(r["message"].startswith("metrics at http://127.0.0.1:") for r in records)


def test_the_control_plane_shows_a_deployments_stage_durations_after_a_run(
    project, piped, manifests, ecs_values, aws, start_piped, control_plane
):
    manifests.write(app_files(ecs_values), under="apps/hello")
    commit = manifests.commit_and_push("Add hello")
    add_app(project, piped)
    process = start_piped()
    deployment = wait_for(lambda: finished(commit), 60, message="the deployment did not finish")
    assert deployment.status == "SUCCESS", deployment.status_reason
    stage = Stage.objects.get(deployment=deployment, name="ECS_SYNC")
    assert stage.status == "SUCCESS"
    seconds = (stage.completed_at - stage.started_at).total_seconds()

    samples = scrape(f"{control_plane.url}/metrics")
    labels = {"stage": "ECS_SYNC", "status": "SUCCESS"}
    assert value(samples, "pipeportal_stage_duration_seconds_gcount", **labels) == 1.0
    assert value(samples, "pipeportal_stage_duration_seconds_gsum", **labels) == pytest.approx(
        seconds, abs=1e-3
    )
    buckets = {
        float(dict(key)["le"]): v
        for key, v in series(samples, "pipeportal_stage_duration_seconds_bucket", **labels).items()
    }
    # The stage lands in the first bucket at least as long as it took, and in every one after it.
    assert buckets == {bound: (1.0 if bound >= seconds else 0.0) for bound in buckets}
    assert (
        value(samples, "pipeportal_deployments", project=project.id, application="hello", status="SUCCESS")
        == 1.0
    )
    assert value(samples, "pipeportal_metrics_database_up") == 1.0
    assert process.stop() == 0
