"""Deployment and stage statuses only move forward: the full transition tables, then the DB updates."""

import itertools

import pytest
from django.db import connection

from apps.deployments.choices import (
    DeploymentStatus,
    StageStatus,
    can_transition_deployment,
    can_transition_stage,
)
from apps.deployments.models import Deployment, Stage
from apps.deployments.services import transition_deployment, transition_stage
from tests.api.conftest import make_deployment

D = DeploymentStatus
S = StageStatus

# What may follow each status (PipeCD's order; a status may repeat itself; a finished one stays finished).
DEPLOYMENT_NEXT = {
    D.PENDING: {D.PENDING, D.PLANNED, D.RUNNING, D.ROLLING_BACK, D.SUCCESS, D.FAILURE, D.CANCELLED},
    D.PLANNED: {D.PLANNED, D.RUNNING, D.ROLLING_BACK, D.SUCCESS, D.FAILURE, D.CANCELLED},
    D.RUNNING: {D.RUNNING, D.ROLLING_BACK, D.SUCCESS, D.FAILURE, D.CANCELLED},
    D.ROLLING_BACK: {D.ROLLING_BACK, D.SUCCESS, D.FAILURE, D.CANCELLED},
    D.SUCCESS: {D.SUCCESS},
    D.FAILURE: {D.FAILURE},
    D.CANCELLED: {D.CANCELLED},
}
STAGE_NEXT = {
    S.NOT_STARTED_YET: set(S),
    S.RUNNING: {S.RUNNING, S.SUCCESS, S.FAILURE, S.CANCELLED, S.SKIPPED, S.EXITED},
    S.SUCCESS: {S.SUCCESS},
    S.FAILURE: {S.FAILURE},
    S.CANCELLED: {S.CANCELLED},
    S.SKIPPED: {S.SKIPPED},
    S.EXITED: {S.EXITED},
}
DEPLOYMENT_TERMINAL = {D.SUCCESS, D.FAILURE, D.CANCELLED}
STAGE_TERMINAL = {S.SUCCESS, S.FAILURE, S.CANCELLED, S.SKIPPED, S.EXITED}


def test_the_tables_cover_every_status():
    assert set(DEPLOYMENT_NEXT) == set(D) and set(STAGE_NEXT) == set(S)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(D, D)))
def test_deployment_transition_table(current, new):
    assert can_transition_deployment(current, new) is (new in DEPLOYMENT_NEXT[current])


@pytest.mark.parametrize(("current", "new"), list(itertools.product(S, S)))
def test_stage_transition_table(current, new):
    assert can_transition_stage(current, new) is (new in STAGE_NEXT[current])


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (D.PLANNED, D.PENDING),
        (D.RUNNING, D.PLANNED),
        (D.ROLLING_BACK, D.RUNNING),
        (D.SUCCESS, D.RUNNING),
        (D.FAILURE, D.ROLLING_BACK),
        (D.CANCELLED, D.PENDING),
        (D.SUCCESS, D.FAILURE),
        (D.FAILURE, D.SUCCESS),
    ],
)
def test_backwards_or_sideways_after_the_end_is_refused(current, new):
    assert not can_transition_deployment(current, new)


# --- Against the database -------------------------------------------------------------------------------


@pytest.fixture
def deployment(application):
    return make_deployment(application, status=D.PENDING)


@pytest.fixture
def stage(deployment):
    return Stage.objects.create(deployment=deployment, stage_id="stage-0", name="WAIT", index=0)


def test_a_deployment_moves_forward_and_records_why(deployment):
    assert transition_deployment(deployment.pk, D.PLANNED, "Planned a canary", strategy_summary="canary 10%")
    assert transition_deployment(deployment.pk, D.RUNNING, "Running")
    deployment.refresh_from_db()
    assert (deployment.status, deployment.status_reason, deployment.strategy_summary) == (
        D.RUNNING,
        "Running",
        "canary 10%",
    )
    assert deployment.completed_at is None
    assert transition_deployment(deployment.pk, D.SUCCESS, "Deployed v2")
    deployment.refresh_from_db()
    assert (deployment.status, deployment.status_reason) == (D.SUCCESS, "Deployed v2")
    assert deployment.completed_at is not None


@pytest.mark.parametrize("terminal", sorted(DEPLOYMENT_TERMINAL))
def test_a_finished_deployment_refuses_every_other_status_in_the_db(deployment, terminal):
    assert transition_deployment(deployment.pk, terminal, "done")
    deployment.refresh_from_db()
    finished = (deployment.status, deployment.status_reason, deployment.completed_at)
    for other in set(D) - {terminal}:
        assert transition_deployment(deployment.pk, other, "too late") is False
    deployment.refresh_from_db()
    assert (deployment.status, deployment.status_reason, deployment.completed_at) == finished


def test_a_deployment_does_not_go_back_in_the_db(deployment):
    transition_deployment(deployment.pk, D.ROLLING_BACK, "Rolling back")
    for earlier in (D.PENDING, D.PLANNED, D.RUNNING):
        assert transition_deployment(deployment.pk, earlier, "back") is False
    assert Deployment.objects.get(pk=deployment.pk).status == D.ROLLING_BACK


class ConcurrentWriter:
    """Just before our conditional UPDATE runs, another writer moves the row (a real statement)."""

    def __init__(self, table: str, pk, status: str):
        self.table, self.pk, self.status, self.fired = table, pk, status, False

    def __call__(self, execute, sql, params, many, context):
        if not self.fired and sql.startswith("UPDATE") and self.table in sql:
            self.fired = True
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {self.table} SET status = %s WHERE id = %s",
                    [self.status, self.pk.hex if hasattr(self.pk, "hex") else self.pk],
                )
        return execute(sql, params, many, context)


def test_a_deployment_update_loses_to_whoever_got_there_first(deployment):
    writer = ConcurrentWriter("deployments_deployment", deployment.pk, D.CANCELLED)
    with connection.execute_wrapper(writer):
        moved = transition_deployment(deployment.pk, D.RUNNING, "Running")
    assert writer.fired and moved is False
    deployment.refresh_from_db()
    assert (deployment.status, deployment.status_reason) == (D.CANCELLED, "")


def test_a_stage_runs_then_finishes_with_times(stage):
    assert transition_stage(stage.pk, S.RUNNING, "Waiting 30s")
    stage.refresh_from_db()
    assert (stage.status, stage.status_reason) == (S.RUNNING, "Waiting 30s")
    assert stage.started_at is not None and stage.completed_at is None
    assert transition_stage(stage.pk, S.SKIPPED, "Skipped by erin", metadata={"skipped_by": "erin"})
    stage.refresh_from_db()
    assert (stage.status, stage.metadata) == (S.SKIPPED, {"skipped_by": "erin"})
    assert stage.completed_at is not None


@pytest.mark.parametrize("terminal", sorted(STAGE_TERMINAL))
def test_a_finished_stage_stays_finished_in_the_db(stage, terminal):
    transition_stage(stage.pk, S.RUNNING)
    assert transition_stage(stage.pk, terminal, "done")
    for other in set(S) - {terminal}:
        assert transition_stage(stage.pk, other, "again") is False
    stage.refresh_from_db()
    assert (stage.status, stage.status_reason) == (terminal, "done")


def test_a_stage_update_loses_to_whoever_got_there_first(stage):
    transition_stage(stage.pk, S.RUNNING)
    writer = ConcurrentWriter("deployments_stage", stage.pk, S.CANCELLED)
    with connection.execute_wrapper(writer):
        moved = transition_stage(stage.pk, S.SUCCESS, "Done")
    assert writer.fired and moved is False
    assert Stage.objects.get(pk=stage.pk).status == S.CANCELLED
