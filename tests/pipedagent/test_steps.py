"""How the piped's tasks run steps: one call to start a stage, one to end it; a task goes on with the next
stage at once (`chain=True`, as the Celery tasks run); notes travel with the step's report; a step that
lost its stage to another worker records nothing more."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from apps.deployments.choices import DeploymentStatus, StageStatus
from apps.deployments.models import Deployment, Stage, StageLogBlock
from apps.deployments.services import approve_stage
from apps.pipedagent import worker
from apps.pipedagent.executors import SUCCESS, Done, StageContext, StageExecutor, StageTakenOver, register
from apps.pipedagent.logs import StageLogger

from .conftest import FAKE_VALUES, add_app, app_files, new_deployment, plan

pytestmark = pytest.mark.django_db

SCRIPTS = """\
pipeline:
  stages:
    - name: SCRIPT_RUN
      with:
        run: echo one
    - name: SCRIPT_RUN
      with:
        run: echo two
    - name: SCRIPT_RUN
      with:
        run: echo three
planner:
  alwaysUsePipeline: true
  autoRollback: false
"""

WITH_APPROVAL = """\
pipeline:
  stages:
    - name: SCRIPT_RUN
      with:
        run: echo before
    - id: approve
      name: WAIT_APPROVAL
    - name: SCRIPT_RUN
      with:
        run: echo after
planner:
  alwaysUsePipeline: true
  autoRollback: false
"""


def logs(deployment_id, stage_id) -> list[str]:
    return list(
        StageLogBlock.objects.filter(stage__deployment_id=deployment_id, stage__stage_id=stage_id)
        .order_by("retried_count", "index")
        .values_list("log", flat=True)
    )


def stage_row(deployment_id, stage_id) -> Stage:
    return Stage.objects.get(deployment_id=deployment_id, stage_id=stage_id)


def counting(client) -> Counter:
    """Counts the piped's API requests by method and endpoint (ids left out)."""
    seen: Counter = Counter()
    call = client.call

    def counted(method, path, *args, **kwargs):
        parts = path.strip("/").split("/")
        if parts[0] in ("deployments", "applications") and len(parts) > 1:
            parts[1] = "{id}"
        if len(parts) > 3 and parts[2] == "stages":
            parts[3] = "{stage}"
        seen[f"{method} /{'/'.join(parts)}"] += 1
        return call(method, path, *args, **kwargs)

    client.call = counted
    return seen


@pytest.fixture
def pending(project, piped, make_agent, manifests):
    """A PENDING deployment of an application whose pipeline is in `pending.pipeline` (set before use)."""

    def make(pipeline: str):
        manifests.write(app_files(FAKE_VALUES, extra=pipeline), under="apps/hello")
        manifests.commit_and_push("Add hello")
        add_app(project, piped)
        agent = make_agent()
        agent.poll_git()
        [deployment] = Deployment.objects.all()
        return agent, str(deployment.id)

    return make


def test_a_task_runs_the_stages_that_follow_at_once(pending):
    agent, deployment_id = pending(SCRIPTS)
    requests = counting(agent.client)
    worker.plan_deployment(agent.runtime, deployment_id, chain=True)
    deployment = Deployment.objects.get(pk=deployment_id)
    assert deployment.status == DeploymentStatus.SUCCESS, deployment.status_reason
    assert [stage_row(deployment_id, f"stage-{i}").status for i in range(3)] == ["SUCCESS"] * 3
    lines = logs(deployment_id, "stage-1")
    assert lines[0] == "Starting stage SCRIPT_RUN (stage-1)." and "two" in lines
    # Nothing went through the queue, and each stage took one call to start and one to end (the end of one
    # starting the next): planning, then start, 3 reports, the deployment's status.
    assert agent.dispatched == []
    assert requests == {
        "GET /deployments/{id}": 1,
        "GET /applications/{id}/most-recent-successful-deployment": 1,
        "POST /deployments/{id}/planned": 1,
        "POST /deployments/{id}/stages/{stage}/start": 1,
        "POST /deployments/{id}/stages/{stage}/report": 3,
        "POST /deployments/{id}/status": 1,
    }


def test_without_chain_a_step_hands_the_next_stage_to_the_queue(pending):
    agent, deployment_id = pending(SCRIPTS)
    worker.plan_deployment(agent.runtime, deployment_id)
    assert agent.dispatched == [("run", deployment_id, "stage-0")]
    worker.run_stage(agent.runtime, deployment_id, "stage-0")
    assert stage_row(deployment_id, "stage-0").status == StageStatus.SUCCESS
    assert stage_row(deployment_id, "stage-1").status == StageStatus.NOT_STARTED_YET
    assert agent.dispatched[-1] == ("run", deployment_id, "stage-1")


def test_a_chain_stops_at_a_wait_and_a_restarted_piped_goes_on_without_rerunning_finished_stages(
    pending, make_agent, editor
):
    agent, deployment_id = pending(WITH_APPROVAL)
    worker.plan_deployment(agent.runtime, deployment_id, chain=True)
    approval = stage_row(deployment_id, "approve")
    assert stage_row(deployment_id, "stage-0").status == StageStatus.SUCCESS
    assert approval.status == StageStatus.RUNNING and approval.claimed_by == ""
    assert approval.next_check_at is not None and "approval_started_at" in approval.metadata
    assert stage_row(deployment_id, "stage-2").status == StageStatus.NOT_STARTED_YET
    before = logs(deployment_id, "stage-0")
    # The piped is killed while it waits; a new one picks the approval up and finishes from there.
    restarted = make_agent()
    approve_stage(editor, Deployment.objects.get(pk=deployment_id), "approve")
    restarted.poll_commands()
    assert restarted.dispatched == [("run", deployment_id, "approve")]
    worker.run_stage(restarted.runtime, deployment_id, "approve", chain=True)
    deployment = Deployment.objects.get(pk=deployment_id)
    assert deployment.status == DeploymentStatus.SUCCESS, deployment.status_reason
    assert logs(deployment_id, "stage-0") == before
    lines = logs(deployment_id, "stage-2")
    assert lines[0] == "Starting stage SCRIPT_RUN (stage-2)." and "after" in lines
    assert stage_row(deployment_id, "approve").metadata["approvals_logged"] == 1


def test_a_stopping_piped_ends_its_chain_with_the_current_step(pending):
    agent, deployment_id = pending(SCRIPTS)
    worker.plan_deployment(agent.runtime, deployment_id)
    agent.runtime.stop_event.set()
    worker.run_stage(agent.runtime, deployment_id, "stage-0", chain=True)
    assert stage_row(deployment_id, "stage-0").status == StageStatus.SUCCESS
    assert stage_row(deployment_id, "stage-1").status == StageStatus.NOT_STARTED_YET
    assert agent.dispatched[-1] == ("run", deployment_id, "stage-1")


def test_a_cancel_during_a_chain_stops_it_before_the_next_stage(pending, editor):
    from apps.deployments.services import cancel_deployment

    agent, deployment_id = pending(SCRIPTS)
    worker.plan_deployment(agent.runtime, deployment_id)
    # The cancel arrives while stage-0 runs: the scheduler records it before the step ends.
    run = worker._step

    def cancelled_meanwhile(runtime, deployment_id, started, *args, **kwargs):
        if started["stage_id"] == "stage-0":
            cancel_deployment(editor, Deployment.objects.get(pk=deployment_id), force_no_rollback=True)
            agent.poll_commands()
        return run(runtime, deployment_id, started, *args, **kwargs)

    worker._step = cancelled_meanwhile
    try:
        worker.run_stage(agent.runtime, deployment_id, "stage-0", chain=True)
    finally:
        worker._step = run
    deployment = Deployment.objects.get(pk=deployment_id)
    assert deployment.status == DeploymentStatus.CANCELLED
    assert stage_row(deployment_id, "stage-1").status == StageStatus.NOT_STARTED_YET
    assert logs(deployment_id, "stage-1") == []


def _context(agent, deployment_id, stage_id, worker_id):
    deployment = agent.client.get_deployment(deployment_id)
    stage = next(s for s in deployment["stages"] if s["id"] == stage_id)
    stage_logger = StageLogger(agent.client, deployment_id, stage_id, start_index=stage["next_log_index"])
    return StageContext(
        runtime=agent.runtime, deployment=deployment, stage=stage, logger=stage_logger, worker_id=worker_id
    )


def test_notes_wait_for_a_save_and_go_with_it_in_one_call(pending):
    agent, deployment_id = pending(SCRIPTS)
    worker.plan_deployment(agent.runtime, deployment_id)
    agent.client.start_stage(deployment_id, "stage-0", "w1", 30)
    ctx = _context(agent, deployment_id, "stage-0", "w1")
    requests = counting(agent.client)
    ctx.note_stage_metadata(phase="applied")
    ctx.note_deployment_metadata(ecs_canary={"scale": 20})
    ctx.logger.info("created the canary")
    assert ctx.metadata["phase"] == "applied" and sum(requests.values()) == 0
    assert stage_row(deployment_id, "stage-0").metadata == {}
    announced = []
    ctx.when_recorded(lambda: announced.append(dict(stage_row(deployment_id, "stage-0").metadata)))
    assert announced == []
    ctx.save_stage_metadata(listeners=["l1"])
    assert requests == {"POST /deployments/{id}/stages/{stage}/report": 1}
    assert stage_row(deployment_id, "stage-0").metadata == {"phase": "applied", "listeners": ["l1"]}
    assert Deployment.objects.get(pk=deployment_id).metadata["ecs_canary"] == {"scale": 20}
    assert logs(deployment_id, "stage-0") == ["created the canary"]
    # What waited for the record ran after it, and saw it.
    assert announced == [{"phase": "applied", "listeners": ["l1"]}]


def test_a_step_that_lost_its_stage_records_nothing_more(pending):
    agent, deployment_id = pending(SCRIPTS)
    worker.plan_deployment(agent.runtime, deployment_id)
    agent.client.start_stage(deployment_id, "stage-0", "w1", 30)
    ctx = _context(agent, deployment_id, "stage-0", "w1")
    # Our lease ran out and another worker took the stage over.
    Stage.objects.filter(deployment_id=deployment_id, stage_id="stage-0").update(
        claim_expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert agent.client.start_stage(deployment_id, "stage-0", "w2", 30)["claimed"] is True
    ctx.note_stage_metadata(phase="stale")
    with pytest.raises(StageTakenOver):
        ctx.platform_provider().delete_task_set("cluster", "service", "arn")
    assert ctx.stop.is_set()
    row = stage_row(deployment_id, "stage-0")
    assert row.metadata == {} and row.claimed_by == "w2"


SKIPPED_ON_DOCS = """\
pipeline:
  stages:
    - name: SCRIPT_RUN
      with:
        run: echo never
        skipOn:
          commitMessagePrefixes: ["Add"]
planner:
  alwaysUsePipeline: true
  autoRollback: false
"""


def test_a_stage_started_by_a_step_that_never_reported_is_still_a_first_step(pending):
    agent, deployment_id = pending(SKIPPED_ON_DOCS)
    worker.plan_deployment(agent.runtime, deployment_id)
    # A worker started the stage and died before its step reported anything (or its answer was lost).
    assert agent.client.start_stage(deployment_id, "stage-0", "gone", 30)["started"] is True
    Stage.objects.filter(deployment_id=deployment_id, stage_id="stage-0").update(
        claim_expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    worker.run_stage(agent.runtime, deployment_id, "stage-0", chain=True)
    row = stage_row(deployment_id, "stage-0")
    assert row.status == StageStatus.SKIPPED, row.status_reason
    assert logs(deployment_id, "stage-0") == [
        "Starting stage SCRIPT_RUN (stage-0).",
        "Skipped because the commit message starts with 'Add'",
    ]
    assert Deployment.objects.get(pk=deployment_id).status == DeploymentStatus.SUCCESS


@register
class NotesTooMuch(StageExecutor):
    """A stage (for these tests only) whose note the control plane must refuse: 70 KB of metadata."""

    name = "TEST_NOTES_TOO_MUCH"

    def execute(self, ctx):
        ctx.note_stage_metadata(blob="x" * 70_000)
        ctx.logger.info("noted a lot")
        return Done(SUCCESS, "noted")


def test_a_note_the_control_plane_refuses_fails_the_stage_and_says_why(make_agent, piped_client, application):
    agent = make_agent()
    deployment = new_deployment(piped_client, application.id)
    plan(
        piped_client,
        deployment["id"],
        [
            {"id": "stage-0", "name": "WAIT", "index": 0},
            {"id": "rollback", "name": "TEST_NOTES_TOO_MUCH", "index": 1, "rollback": True},
        ],
    )
    piped_client.post(f"/deployments/{deployment['id']}/stages/stage-0/status", {"status": "FAILURE"})
    piped_client.post(f"/deployments/{deployment['id']}/status", {"status": "ROLLING_BACK"})
    worker.run_stage(agent.runtime, deployment["id"], "rollback", chain=True)
    row = stage_row(deployment["id"], "rollback")
    assert row.status == StageStatus.FAILURE
    assert row.status_reason.startswith("The control plane refused what the step recorded: ")
    assert "too large" in row.status_reason
    assert "blob" not in row.metadata and row.claimed_by == ""
    assert logs(deployment["id"], "rollback") == ["noted a lot", row.status_reason]
    # Nothing is left hanging: the rollback's failure ends the deployment.
    done = Deployment.objects.get(pk=deployment["id"])
    assert done.status == DeploymentStatus.FAILURE, done.status_reason
