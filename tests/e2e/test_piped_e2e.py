"""End to end: a real Git repository, the moto server, the control plane on a real port, and the piped as a
separate process (`manage.py piped --insecure`), with a database URL that leads nowhere."""

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from apps.applications.choices import SyncStatus
from apps.deployments.choices import CommandStatus, CommandType
from apps.deployments.models import Command, Deployment, Stage, StageLogBlock
from apps.deployments.services import approve_stage
from apps.pipedagent.platforms.ecs.emulator import ecs_client
from apps.pipeds.models import Piped
from tests.components import redis_available, require

from .conftest import add_app, app_files, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("piped-e2e")]

APPROVAL = """\
pipeline:
  stages:
    - id: approve
      name: WAIT_APPROVAL
      with:
        approvers: [erin, alice]
        minApproverNum: 2
        timeout: {timeout}
    - name: ECS_SYNC
planner:
  alwaysUsePipeline: true
  autoRollback: false
"""


def deployment_of(commit: str) -> Deployment | None:
    return Deployment.objects.filter(commit_hash=commit).order_by("-created_at").first()


def finished(commit: str):
    deployment = deployment_of(commit)
    return deployment if deployment and deployment.status in ("SUCCESS", "FAILURE", "CANCELLED") else None


def live_task_sets(aws, values) -> list[tuple[str, str]]:
    sets = ecs_client(aws.endpoint).describe_task_sets(cluster=values["CLUSTER_ARN"], service="hogehoge")[
        "taskSets"
    ]
    return sorted((t["status"], t["taskDefinition"].rsplit("/", 1)[-1]) for t in sets)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_push_becomes_a_deployment_that_reaches_ecs(
    project, piped, manifests, ecs_values, aws, start_piped, recorded, control_plane
):
    manifests.write(app_files(ecs_values), under="apps/hello")
    first_commit = manifests.commit_and_push("Add hello")
    app = add_app(project, piped)
    process = start_piped()
    # Added application → deployed once at its head (quick sync), without waiting for the sync interval.
    first = wait_for(lambda: finished(first_commit), 60, message="the first deployment did not finish")
    assert first.status == "SUCCESS", first.status_reason
    assert live_task_sets(aws, ecs_values) == [("PRIMARY", "hogehoge:1")]

    manifests.write(app_files(ecs_values, image_tag="v2"), under="apps/hello")
    head = manifests.commit_and_push("Bump hello to v2")
    push = json.dumps(
        {"ref": "refs/heads/main", "after": head, "repository": {"clone_url": manifests.remote}}
    ).encode()
    url = f"{control_plane.url}/webhooks/git?project={project.id}"
    forged = requests.post(url, data=push, headers={"X-Hub-Signature-256": sign("guess", push)}, timeout=10)
    assert forged.status_code == 401
    signed = requests.post(
        url,
        data=push,
        headers={"X-Hub-Signature-256": sign(project.git_webhook_secret, push), "X-GitHub-Event": "push"},
        timeout=10,
    )
    assert signed.status_code == 200
    assert signed.json()["matched"] == [{"piped_id": str(piped.id), "repo_id": "manifests"}]
    # The sync interval is a minute: only the webhook makes the piped fetch this soon.
    second = wait_for(lambda: deployment_of(head), 10, message="the webhook did not make the piped fetch")
    done = wait_for(lambda: finished(head), 60, message="the second deployment did not finish")
    assert done.status == "SUCCESS", done.status_reason
    assert done.summary.startswith("Quick sync to deploy image hogehoge:v2")

    # The control plane heard PENDING → PLANNED → RUNNING → SUCCESS, in that order.
    reports = []
    for _, path, body in recorded:
        if path == "/deployments" and body.get("commit", {}).get("hash") == head:
            reports.append("PENDING")
        elif path == f"/deployments/{second.id}/planned":
            reports.append("PLANNED")
        elif path == f"/deployments/{second.id}/status":
            reports.append(body["status"])
        elif path.startswith(f"/deployments/{second.id}/stages/") and path.endswith("/start"):
            reports.append("RUNNING")  # the first stage's start moves the deployment to RUNNING
    assert [s for i, s in enumerate(reports) if i == 0 or s != reports[i - 1]] == [
        "PENDING",
        "PLANNED",
        "RUNNING",
        "SUCCESS",
    ]
    # ECS: exactly one task set, PRIMARY, of the new task definition.
    assert live_task_sets(aws, ecs_values) == [("PRIMARY", "hogehoge:2")]
    lines = list(
        StageLogBlock.objects.filter(stage__deployment=second).order_by("index").values_list("log", flat=True)
    )
    assert "Registered task definition hogehoge:2." in lines
    assert lines[-1] == "Service hogehoge runs hogehoge:2 in one primary task set."
    app.refresh_from_db()
    assert app.sync_status == SyncStatus.SYNCED
    assert app.most_recent_successful_deployment_id == second.id
    piped.refresh_from_db()
    assert piped.status == "ONLINE"
    assert piped.repository_status["manifests"]["head"] == head
    assert process.stop() == 0
    piped.refresh_from_db()
    assert piped.status == "OFFLINE"
    assert "Traceback" not in process.log()


def test_an_approval_stage_needs_two_distinct_approvers_and_times_out_alone(
    project, piped, manifests, ecs_values, start_piped, editor, admin, aws
):
    manifests.write(app_files(ecs_values, extra=APPROVAL.format(timeout="1h")), under="apps/hello")
    head = manifests.commit_and_push("Add hello with an approval")
    add_app(project, piped)
    start_piped(PIPED_SYNC_INTERVAL_SECONDS="1")

    def approval():
        stage = Stage.objects.filter(deployment__commit_hash=head, stage_id="approve").first()
        return stage if stage and stage.status == "RUNNING" else None

    stage = wait_for(approval, 30, message="the approval stage did not start")
    deployment = stage.deployment
    assert (stage.authorized_approvers, stage.min_approver_num) == (["erin", "alice"], 2)
    approve_stage(editor, deployment, "approve")
    # A command for someone not listed, and a second one by the same person, as if they had slipped past
    # the portal's own checks: the piped refuses both.
    for commander in ("mallory", "erin"):
        Command.objects.create(
            project=project,
            piped=piped,
            deployment=deployment,
            stage_id="approve",
            type=CommandType.APPROVE_STAGE,
            commander=commander,
        )
    wait_for(lambda: not Command.objects.filter(status=CommandStatus.NOT_HANDLED_YET).exists(), 10)
    refused = dict(Command.objects.filter(status=CommandStatus.FAILED).values_list("commander", "result"))
    assert "not an approver" in refused["mallory"]["error"]
    assert "already approved" in refused["erin"]["error"]
    time.sleep(1)
    stage.refresh_from_db()
    assert stage.status == "RUNNING" and stage.metadata["approved_by"] == ["erin"]
    approved_at = time.monotonic()
    approve_stage(admin, deployment, "approve")
    wait_for(lambda: Stage.objects.get(pk=stage.pk).status == "SUCCESS", 10)
    wait_for(
        lambda: Stage.objects.get(deployment=deployment, stage_id="stage-1").status != "NOT_STARTED_YET", 10
    )
    # Commands reach a running deployment within 2 s (measured in bench/; here with room for a busy CI).
    assert time.monotonic() - approved_at < 6
    done = wait_for(lambda: finished(head), 30)
    assert done.status == "SUCCESS", done.status_reason

    # Left alone, the approval times out and the deployment fails with the reason.
    manifests.write(
        app_files(ecs_values, image_tag="v2", extra=APPROVAL.format(timeout="2s")), under="apps/hello"
    )
    lonely = manifests.commit_and_push("Nobody will approve this one")
    failed = wait_for(lambda: finished(lonely), 30, message="the approval did not time out")
    assert failed.status == "FAILURE"
    assert failed.status_reason.startswith("Stage WAIT_APPROVAL (approve) failed: Timed out after 2s waiting")
    assert Stage.objects.get(deployment=failed, stage_id="stage-1").status == "NOT_STARTED_YET"


def test_a_killed_piped_resumes_and_keeps_the_wait(project, piped, manifests, ecs_values, start_piped, aws):
    pipeline = "pipeline:\n  stages:\n    - name: WAIT\n      with:\n        duration: 6s\n    - name: ECS_SYNC\nplanner:\n  alwaysUsePipeline: true\n"
    manifests.write(app_files(ecs_values, extra=pipeline), under="apps/hello")
    head = manifests.commit_and_push("Add hello behind a wait")
    add_app(project, piped)
    process = start_piped()

    def waiting():
        stage = Stage.objects.filter(
            deployment__commit_hash=head, stage_id="stage-0", status="RUNNING"
        ).first()
        return stage if stage and stage.metadata.get("wait_started_at") else None

    stage = wait_for(waiting, 30, message="the WAIT stage did not start")
    started_at = stage.metadata["wait_started_at"]
    time.sleep(1)
    process.kill()
    time.sleep(1)
    restarted_at = timezone.now()
    start_piped()
    done = wait_for(lambda: finished(head), 60, message="the deployment did not finish after the restart")
    assert done.status == "SUCCESS", done.status_reason
    stage.refresh_from_db()
    assert stage.status == "SUCCESS"
    # The wait kept its start time: it lasted its 6 s from when it began. Started again by the new process,
    # it could not have ended before 6 s after the restart.
    assert stage.metadata["wait_started_at"] == started_at
    assert (stage.completed_at - stage.started_at).total_seconds() >= 6
    assert stage.completed_at < restarted_at + timedelta(seconds=6)
    assert live_task_sets(aws, ecs_values) == [("PRIMARY", "hogehoge:1")]
    assert StageLogBlock.objects.filter(stage=stage, log__startswith="Waiting for 6s").count() == 1


def test_one_scheduler_and_two_workers_share_the_work_through_redis(
    project, piped, manifests, ecs_values, start_piped, aws, recorded
):
    broker = "redis://127.0.0.1:6379/5"
    require(redis_available(broker), "Redis (redis://127.0.0.1:6379/5)")
    import redis

    redis.Redis.from_url(broker).flushdb()
    pipeline = (
        "pipeline:\n  stages:\n"
        + "".join("    - name: WAIT\n      with:\n        duration: 1s\n" for _ in range(4))
        + "    - name: ECS_SYNC\nplanner:\n  alwaysUsePipeline: true\n"
    )
    manifests.write(app_files(ecs_values, extra=pipeline), under="apps/hello")
    head = manifests.commit_and_push("Add hello")
    add_app(project, piped)
    scheduler = start_piped("--broker", broker, "--role", "scheduler")
    workers = [
        start_piped("--broker", broker, "--role", "worker", PIPED_WORKER_CONCURRENCY="1") for _ in range(2)
    ]
    done = wait_for(lambda: finished(head), 90, message="the deployment did not finish")
    assert done.status == "SUCCESS", done.status_reason
    assert live_task_sets(aws, ecs_values) == [("PRIMARY", "hogehoge:1")]
    claimers = {
        body["worker_id"].split("/")[1]
        for _, path, body in recorded
        # A step claims its stage with /claim (or /start), and reports it with /report.
        if path.endswith(("/claim", "/start", "/report")) and f"/deployments/{done.id}/" in path
    }
    assert claimers == {str(w.pid) for w in workers}, "both workers ran steps, the scheduler none"
    assert str(scheduler.pid) not in claimers
    assert Piped.objects.get(pk=piped.pk).status == "ONLINE"
