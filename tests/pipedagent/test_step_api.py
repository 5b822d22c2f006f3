"""The piped API's two calls around a stage's step: `start` (claim + RUNNING, only when the stage may run)
and `report` (logs, metadata, outcome, release and the next stage's start in one transaction)."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.applications.choices import SyncStatus
from apps.applications.models import Application
from apps.deployments.choices import DeploymentStatus, StageStatus
from apps.deployments.models import Deployment, Stage, StageLogBlock

from .conftest import PipedClient, new_deployment, plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def planned(piped_client, application):
    """A PLANNED deployment: stage-0 WAIT, stage-1 WAIT_APPROVAL, a hidden rollback stage."""
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    return deployment["id"]


def stage(deployment_id, stage_id) -> Stage:
    return Stage.objects.get(deployment_id=deployment_id, stage_id=stage_id)


def start(client, deployment_id, stage_id, worker="w1", lease=30):
    return client.post(
        f"/deployments/{deployment_id}/stages/{stage_id}/start", {"worker_id": worker, "lease_seconds": lease}
    )


def report(client, deployment_id, stage_id, **body):
    return client.post(f"/deployments/{deployment_id}/stages/{stage_id}/report", {"worker_id": "w1", **body})


def blocks(*lines, start_at=0):
    return [{"index": start_at + i, "log": line, "severity": "INFO"} for i, line in enumerate(lines)]


def test_start_claims_the_stage_and_marks_it_and_the_deployment_running(piped_client, planned, application):
    answer = start(piped_client, planned, "stage-0").json()
    assert answer["claimed"] is True and answer["runnable"] is True
    assert answer["started"] is True and answer["deployment_started"] is True
    assert answer["deployment"]["status"] == "RUNNING"
    first = next(s for s in answer["deployment"]["stages"] if s["id"] == "stage-0")
    assert first["status"] == "RUNNING" and first["claimed_by"] == "w1" and first["next_log_index"] == 0
    row = stage(planned, "stage-0")
    assert (row.status, row.claimed_by) == (StageStatus.RUNNING, "w1")
    assert row.started_at is not None and row.claim_expires_at > timezone.now()
    assert Deployment.objects.get(pk=planned).status == DeploymentStatus.RUNNING
    app = Application.objects.get(pk=application.pk)
    assert app.deploying is True and app.sync_status == SyncStatus.DEPLOYING
    # Starting again, as the same worker (a retry), renews the claim and starts nothing more.
    again = start(piped_client, planned, "stage-0").json()
    assert again["claimed"] is True and again["started"] is False and again["deployment_started"] is False
    assert stage(planned, "stage-0").retried_count == 0


def test_start_leaves_a_stage_held_by_another_worker_alone(piped_client, planned):
    start(piped_client, planned, "stage-0", worker="w1")
    other = start(piped_client, planned, "stage-0", worker="w2").json()
    assert other["claimed"] is False and other["runnable"] is True
    assert "held by another worker" in other["reason"]
    assert stage(planned, "stage-0").claimed_by == "w1"
    # Once the lease has run out, another worker takes the stage over; it is not a first step any more.
    Stage.objects.filter(deployment_id=planned, stage_id="stage-0").update(
        claim_expires_at=timezone.now() - timedelta(seconds=1)
    )
    report(piped_client, planned, "stage-0", blocks=blocks("w1 began"))
    takeover = start(piped_client, planned, "stage-0", worker="w2").json()
    assert takeover["claimed"] is True and takeover["started"] is False
    # w1 died without reporting its end: w2's is a new run of the stage, whose log starts afresh after w1's.
    row = stage(planned, "stage-0")
    assert (row.claimed_by, row.retried_count) == ("w2", 1)
    taken = next(s for s in takeover["deployment"]["stages"] if s["id"] == "stage-0")
    assert (taken["retried_count"], taken["next_log_index"]) == (1, 0)
    # w2 starting again (a retried call) is the same run.
    assert start(piped_client, planned, "stage-0", worker="w2").json()["claimed"] is True
    assert stage(planned, "stage-0").retried_count == 1


def test_start_refuses_a_stage_out_of_turn_and_writes_nothing(piped_client, planned):
    answer = start(piped_client, planned, "stage-1").json()
    assert answer["claimed"] is False and answer["runnable"] is False
    assert answer["reason"] == "Stage stage-0 comes first."
    row = stage(planned, "stage-1")
    assert (row.status, row.claimed_by, row.started_at) == (StageStatus.NOT_STARTED_YET, "", None)
    assert Deployment.objects.get(pk=planned).status == DeploymentStatus.PLANNED
    rollback = start(piped_client, planned, "rollback").json()
    assert rollback["claimed"] is False and "rolls back" in rollback["reason"]
    assert stage(planned, "rollback").status == StageStatus.NOT_STARTED_YET


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"cancel": {"commander": "erin"}}, "The deployment is being cancelled."),
        ({"deadline": "2000-01-01T00:00:00+00:00"}, "The deployment has timed out."),
    ],
)
def test_start_refuses_after_a_cancel_or_the_deadline(piped_client, planned, metadata, reason):
    piped_client.post(f"/deployments/{planned}/metadata", {"metadata": metadata})
    answer = start(piped_client, planned, "stage-0").json()
    assert (answer["claimed"], answer["runnable"], answer["reason"]) == (False, False, reason)
    assert stage(planned, "stage-0").status == StageStatus.NOT_STARTED_YET
    assert Deployment.objects.get(pk=planned).status == DeploymentStatus.PLANNED


def test_a_rollback_stage_starts_once_the_deployment_rolls_back(piped_client, planned):
    start(piped_client, planned, "stage-0")
    report(piped_client, planned, "stage-0", status="FAILURE", reason="boom", release=True)
    assert start(piped_client, planned, "stage-1").json()["reason"] == "Stage stage-0 ended FAILURE."
    piped_client.post(f"/deployments/{planned}/status", {"status": "ROLLING_BACK"})
    answer = start(piped_client, planned, "rollback").json()
    assert answer["claimed"] is True and answer["started"] is True
    assert answer["deployment_started"] is False
    assert Deployment.objects.get(pk=planned).status == DeploymentStatus.ROLLING_BACK


def test_the_rollback_waits_for_the_worker_of_a_stage_cancelled_under_it(piped_client, planned):
    # stage-0 runs a step as w1 when the scheduler cancels it (cancel with rollback).
    start(piped_client, planned, "stage-0", worker="w1")
    piped_client.post(f"/deployments/{planned}/stages/stage-0/status", {"status": "CANCELLED"})
    piped_client.post(f"/deployments/{planned}/status", {"status": "ROLLING_BACK"})
    # w1's step may still change things until it sees the cancel: the rollback must not run before it stops.
    row = stage(planned, "stage-0")
    assert (row.status, row.claimed_by) == (StageStatus.CANCELLED, "w1")
    waiting = start(piped_client, planned, "rollback", worker="w2").json()
    assert (waiting["claimed"], waiting["runnable"]) == (False, False)
    assert waiting["reason"] == "Stage stage-0 is still held by a worker that has not stopped yet."
    assert stage(planned, "rollback").status == StageStatus.NOT_STARTED_YET
    # w1's step ends: its log and notes still go, its claim is released, and the rollback starts.
    done = report(piped_client, planned, "stage-0", blocks=blocks("stopped"), release=True)
    assert done.status_code == 200 and done.json()["status"] == "CANCELLED"
    assert stage(planned, "stage-0").claimed_by == ""
    assert start(piped_client, planned, "rollback", worker="w2").json()["claimed"] is True


def test_the_rollback_takes_over_from_a_worker_that_died_once_its_lease_ran_out(piped_client, planned):
    start(piped_client, planned, "stage-0", worker="w1")
    piped_client.post(f"/deployments/{planned}/stages/stage-0/status", {"status": "CANCELLED"})
    piped_client.post(f"/deployments/{planned}/status", {"status": "ROLLING_BACK"})
    assert start(piped_client, planned, "rollback", worker="w2").json()["claimed"] is False
    Stage.objects.filter(deployment_id=planned, stage_id="stage-0").update(
        claim_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert start(piped_client, planned, "rollback", worker="w2").json()["claimed"] is True


def test_report_records_a_whole_step_in_one_call(piped_client, planned):
    start(piped_client, planned, "stage-0")
    answer = report(
        piped_client,
        planned,
        "stage-0",
        blocks=blocks("Starting stage WAIT (stage-0).", "Waited for 0s."),
        metadata={"wait_started_at": "2026-01-01T00:00:00+00:00"},
        deployment_metadata={"ecs_canary": {"scale": 20}},
        status="SUCCESS",
        reason="Waited for 0s",
        release=True,
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["status"] == "SUCCESS" and body["received"] == 2 and body["released"] is True
    assert body["metadata"] == {"wait_started_at": "2026-01-01T00:00:00+00:00"}
    assert body["deployment_metadata"]["ecs_canary"] == {"scale": 20}
    assert body["next"] is None and "deployment" not in body
    row = stage(planned, "stage-0")
    assert (row.status, row.status_reason, row.claimed_by) == ("SUCCESS", "Waited for 0s", "")
    assert row.completed_at is not None and row.claim_expires_at is None
    assert row.metadata == {"wait_started_at": "2026-01-01T00:00:00+00:00"}
    assert list(StageLogBlock.objects.filter(stage=row).order_by("index").values_list("log", flat=True)) == [
        "Starting stage WAIT (stage-0).",
        "Waited for 0s.",
    ]
    assert Deployment.objects.get(pk=planned).metadata["ecs_canary"] == {"scale": 20}


def test_a_waiting_step_releases_the_stage_and_says_when_to_look_again(piped_client, planned):
    start(piped_client, planned, "stage-0")
    wake = (timezone.now() + timedelta(seconds=5)).isoformat()
    body = report(
        piped_client, planned, "stage-0", metadata={"wait_started_at": "x"}, release=True, next_check_at=wake
    ).json()
    assert body["status"] == "RUNNING" and body["released"] is True
    row = stage(planned, "stage-0")
    assert row.status == StageStatus.RUNNING and row.claimed_by == "" and row.next_check_at is not None


def test_report_starts_the_next_stage_in_the_same_call(piped_client, planned):
    start(piped_client, planned, "stage-0")
    body = report(
        piped_client,
        planned,
        "stage-0",
        blocks=blocks("done"),
        status="SUCCESS",
        release=True,
        start_next={"stage_id": "stage-1", "lease_seconds": 30},
    ).json()
    assert body["next"]["claimed"] is True and body["next"]["started"] is True
    assert body["next"]["stage_id"] == "stage-1"
    following = next(s for s in body["deployment"]["stages"] if s["id"] == "stage-1")
    assert following["status"] == "RUNNING" and following["claimed_by"] == "w1"
    assert stage(planned, "stage-0").status == StageStatus.SUCCESS
    assert stage(planned, "stage-1").claimed_by == "w1"


def test_report_does_not_start_the_next_stage_when_it_may_not_run(piped_client, planned):
    start(piped_client, planned, "stage-0")
    piped_client.post(f"/deployments/{planned}/metadata", {"metadata": {"cancel": {"commander": "erin"}}})
    body = report(
        piped_client,
        planned,
        "stage-0",
        status="SUCCESS",
        release=True,
        start_next={"stage_id": "stage-1"},
    ).json()
    assert body["status"] == "SUCCESS"
    assert body["next"]["claimed"] is False and body["next"]["reason"] == "The deployment is being cancelled."
    assert body["deployment"]["metadata"]["cancel"] == {"commander": "erin"}
    assert stage(planned, "stage-1").status == StageStatus.NOT_STARTED_YET


@pytest.mark.parametrize(
    "bad",
    [
        {"status": "LOUD"},
        {"metadata": {"big": "x" * 70_000}},
        {"deployment_metadata": {"big": "x" * 70_000}},
        {"start_next": {"stage_id": ""}},
        {"start_next": {"stage_id": "stage-1", "lease_seconds": "soon"}},
        {"extra_blocks": [{"index": -1, "log": "x"}]},
        {"extra_blocks": [{"index": 9, "log": "x", "severity": "LOUD"}]},
        {"worker_id": " "},
    ],
)
def test_a_bad_report_is_a_400_and_writes_nothing(piped_client, planned, bad):
    start(piped_client, planned, "stage-0")
    body = {
        "blocks": blocks("kept only if all is well") + bad.pop("extra_blocks", []),
        "metadata": {"phase": "applied"},
        "status": "SUCCESS",
        "release": True,
        **bad,
    }
    response = report(piped_client, planned, "stage-0", **body)
    assert response.status_code == 400, response.content
    assert response.json()["detail"]
    row = stage(planned, "stage-0")
    assert (row.status, row.metadata, row.claimed_by) == (StageStatus.RUNNING, {}, "w1")
    assert not StageLogBlock.objects.exists()
    assert "big" not in Deployment.objects.get(pk=planned).metadata
    assert stage(planned, "stage-1").status == StageStatus.NOT_STARTED_YET


def test_a_report_from_a_worker_that_lost_the_stage_writes_nothing(piped_client, planned):
    start(piped_client, planned, "stage-0", worker="w1")
    Stage.objects.filter(deployment_id=planned, stage_id="stage-0").update(
        claim_expires_at=timezone.now() - timedelta(seconds=1)
    )
    start(piped_client, planned, "stage-0", worker="w2")
    response = report(
        piped_client,
        planned,
        "stage-0",
        blocks=blocks("late"),
        metadata={"phase": "stale"},
        deployment_metadata={"ecs_canary": {"stale": True}},
        status="SUCCESS",
        release=True,
    )
    assert response.status_code == 409
    assert "held by another worker" in response.json()["detail"]
    row = stage(planned, "stage-0")
    assert (row.status, row.metadata, row.claimed_by) == (StageStatus.RUNNING, {}, "w2")
    assert not StageLogBlock.objects.exists()
    assert "ecs_canary" not in Deployment.objects.get(pk=planned).metadata


def test_a_backwards_status_is_a_409_and_writes_nothing(piped_client, planned):
    start(piped_client, planned, "stage-0")
    report(piped_client, planned, "stage-0", status="CANCELLED", reason="Cancelled by erin", release=True)
    response = report(
        piped_client, planned, "stage-0", blocks=blocks("too late"), metadata={"x": 1}, status="SUCCESS"
    )
    assert response.status_code == 409
    assert response.json()["detail"] == "Stage stage-0 is CANCELLED; it cannot go back to SUCCESS."
    row = stage(planned, "stage-0")
    assert (row.status, row.metadata) == (StageStatus.CANCELLED, {})
    assert not StageLogBlock.objects.exists()


def test_the_same_report_twice_does_nothing_more(piped_client, planned):
    start(piped_client, planned, "stage-0")
    body = {
        "blocks": blocks("a", "b"),
        "metadata": {"phase": "applied"},
        "deployment_metadata": {"ecs_primary": {"task_set_arn": "arn"}},
        "status": "SUCCESS",
        "reason": "done",
        "release": True,
        "start_next": {"stage_id": "stage-1", "lease_seconds": 30},
    }
    first = report(piped_client, planned, "stage-0", **body).json()
    completed = stage(planned, "stage-0").completed_at
    second = report(piped_client, planned, "stage-0", **body).json()
    assert second["status"] == first["status"] == "SUCCESS"
    assert second["metadata"] == first["metadata"]
    assert second["next"]["claimed"] is True and second["next"]["started"] is False
    assert StageLogBlock.objects.count() == 2
    assert stage(planned, "stage-0").completed_at == completed
    assert stage(planned, "stage-1").status == StageStatus.RUNNING


def test_another_pipeds_deployment_and_an_unknown_stage_are_404(
    piped_client, second_client, second_application
):
    foreign = new_deployment(second_client, second_application.id)
    plan(second_client, foreign["id"])
    assert start(piped_client, foreign["id"], "stage-0").status_code == 404
    response = report(piped_client, foreign["id"], "stage-0", blocks=blocks("x"), status="SUCCESS")
    assert response.status_code == 404
    assert stage(foreign["id"], "stage-0").status == StageStatus.NOT_STARTED_YET
    assert not StageLogBlock.objects.exists()
    mine = start(second_client, foreign["id"], "stage-0").json()
    assert mine["claimed"] is True
    assert start(second_client, foreign["id"], "nope").status_code == 404
    assert report(second_client, foreign["id"], "nope", worker_id="w1").status_code == 404
    response = report(second_client, foreign["id"], "stage-0", start_next={"stage_id": "nope"})
    assert response.status_code == 404
    assert stage(foreign["id"], "stage-0").claimed_by == "w1"


def test_both_calls_need_the_pipeds_key(project, piped, planned):
    wrong = PipedClient(project.id, piped.id, "not-the-key")
    assert start(wrong, planned, "stage-0").status_code == 401
    assert report(wrong, planned, "stage-0", status="SUCCESS").status_code == 401
    assert stage(planned, "stage-0").status == StageStatus.NOT_STARTED_YET


def test_a_report_costs_the_same_queries_whatever_its_size(piped_client, application):
    """No query per log block or per stage: a step's report stays a handful of queries."""
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"], [{"id": f"s{i}", "name": "WAIT", "index": i} for i in range(4)])
    start(piped_client, deployment["id"], "s0")

    def queries_of(lines: int, stage_id: str, following: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = report(
                piped_client,
                deployment["id"],
                stage_id,
                blocks=blocks(*[f"line {i}" for i in range(lines)]),
                metadata={"n": lines},
                deployment_metadata={"last": stage_id},
                status="SUCCESS",
                release=True,
                start_next={"stage_id": following},
            )
        assert response.status_code == 200, response.content
        assert response.json()["next"]["claimed"] is True
        return len(captured)

    assert queries_of(100, "s0", "s1") == queries_of(1, "s1", "s2")


def test_the_scheduler_sends_the_rollback_again_once_a_dead_workers_claim_ran_out(
    make_agent, piped_client, planned
):
    agent = make_agent()
    start(piped_client, planned, "stage-0", worker="gone")
    piped_client.post(f"/deployments/{planned}/stages/stage-0/status", {"status": "CANCELLED"})
    piped_client.post(f"/deployments/{planned}/status", {"status": "ROLLING_BACK"})
    agent.scheduler.dispatch_once()
    assert agent.dispatched == [("run", planned, "rollback")]  # its start is refused while stage-0 is held
    agent.scheduler.dispatch_once()
    assert len(agent.dispatched) == 1  # nothing changed: not sent again at every tick
    Stage.objects.filter(deployment_id=planned, stage_id="stage-0").update(
        claim_expires_at=timezone.now() - timedelta(seconds=1)
    )
    agent.scheduler.dispatch_once()
    assert agent.dispatched == [("run", planned, "rollback")] * 2  # at once, not a redispatch period later


def test_only_a_takeover_from_a_dead_worker_counts_as_a_new_run(piped_client, planned):
    def retried() -> int:
        return stage(planned, "stage-0").retried_count

    def expire() -> None:
        Stage.objects.filter(deployment_id=planned, stage_id="stage-0").update(
            claim_expires_at=timezone.now() - timedelta(seconds=1)
        )

    start(piped_client, planned, "stage-0", worker="w1")
    # A step that waits hands the stage back; the next step, on another worker, is the same run.
    later = (timezone.now() + timedelta(seconds=5)).isoformat()
    assert report(piped_client, planned, "stage-0", release=True, next_check_at=later).status_code == 200
    assert start(piped_client, planned, "stage-0", worker="w2").json()["claimed"] is True
    assert retried() == 0
    # w2 renews late, after its lease ran out but before anyone took over: still the same run.
    expire()
    base = f"/deployments/{planned}/stages/stage-0"
    assert piped_client.post(f"{base}/renew", {"worker_id": "w2", "lease_seconds": 30}).json()["claimed"]
    assert retried() == 0
    # w2 dies mid-step; w3 takes over through the older claim call: a new run, as through start.
    expire()
    taken = piped_client.post(f"{base}/claim", {"worker_id": "w3", "lease_seconds": 30}).json()
    assert taken["claimed"] is True and retried() == 1
    # w3 starting its step now, and claiming again, is that same run.
    assert start(piped_client, planned, "stage-0", worker="w3").json()["claimed"] is True
    assert piped_client.post(f"{base}/claim", {"worker_id": "w3", "lease_seconds": 30}).json()["claimed"]
    assert retried() == 1


@pytest.mark.django_db(transaction=True)
def test_a_lock_conflict_is_a_503_to_send_again_and_writes_nothing(piped_client, planned):
    import threading

    from tests.components import require

    require(connection.vendor == "mysql", "MariaDB (row locks)")
    locked, release = threading.Event(), threading.Event()

    def another_writer() -> None:
        try:
            with transaction.atomic():
                Deployment.objects.select_for_update().get(pk=planned)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=another_writer)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        busy = start(piped_client, planned, "stage-0")
        assert busy.status_code == 503 and busy["Retry-After"] == "1"
        assert busy.json()["detail"].startswith("The database was busy with a concurrent change")
        assert (stage(planned, "stage-0").status, stage(planned, "stage-0").claimed_by) == (
            "NOT_STARTED_YET",
            "",
        )
    finally:
        release.set()
        holder.join(30)
    # Sent again once the other writer is done, it goes through.
    assert start(piped_client, planned, "stage-0").json()["claimed"] is True
