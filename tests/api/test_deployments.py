"""Deployments over the API: the shape, cursor pages, filters, approvals by a key, logs and commands."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.applications.services import add_application
from apps.deployments.choices import CommandStatus, DeploymentStatus, StageStatus
from apps.deployments.models import Command, Deployment, Stage, StageLogBlock
from apps.projects.models import AuditEvent
from apps.projects.principal import system_principal

from .conftest import make_deployment, snapshot


def all_pages(api, path, **params):
    items, cursor, pages = [], None, 0
    while True:
        response = api.get(path, **params, **({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.content
        body = response.json()
        items.extend(body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def test_a_deployment_has_the_contract_shape(apis, deployment):
    body = apis["ro"].get(f"/deployments/{deployment.id}").json()
    assert {
        "id",
        "application_id",
        "piped_id",
        "status",
        "status_reason",
        "trigger",
        "summary",
        "versions",
    } <= set(body)
    assert {"created_at", "completed_at", "stages"} <= set(body)
    assert body["status"] == "RUNNING"
    assert body["trigger"]["commit"] == {
        "hash": deployment.commit_hash,
        "message": "Bump the image to v2\n\nLonger description.",
        "author": "dev@example.com",
        "branch": "main",
        "url": "https://git.example.com/manifests/commit/1",
        "created_at": None,
    }
    assert body["trigger"]["sync_strategy"] == "AUTO"
    assert body["versions"] == [{"name": "app", "version": "v2"}]
    assert [(s["id"], s["name"], s["status"]) for s in body["stages"]] == [
        ("stage-0", "ECS_CANARY_ROLLOUT", "SUCCESS"),
        ("approval", "WAIT_APPROVAL", "RUNNING"),
        ("stage-2", "WAIT", "RUNNING"),
        ("stage-3", "ECS_PRIMARY_ROLLOUT", "NOT_STARTED_YET"),
    ]
    assert body["stages"][1]["requires"] == ["stage-0"]
    assert {"status_reason", "approvers", "approved_by", "min_approver_num"} <= set(body["stages"][1])


@pytest.fixture
def history(application):
    """25 deployments, newest first; several share a created_at so that the id must break ties."""
    base = timezone.now() - timedelta(days=1)
    statuses = [DeploymentStatus.SUCCESS, DeploymentStatus.FAILURE, DeploymentStatus.RUNNING]
    made = []
    for i in range(25):
        created = base + timedelta(minutes=i // 3)  # groups of three with the same timestamp
        made.append(make_deployment(application, status=statuses[i % 3], created_at=created))
    # The database's order (MariaDB's UUID type does not sort ids like their text form).
    order = list(Deployment.objects.order_by("-created_at", "-id").values_list("id", flat=True))
    assert len(set(d.created_at for d in made)) < len(made)
    return sorted(made, key=lambda d: order.index(d.id))


def test_it_pages_through_every_deployment_once_newest_first(apis, history):
    items, pages = all_pages(apis["rw"], "/deployments", limit=4)
    assert [i["id"] for i in items] == [str(d.id) for d in history]
    assert pages == 7


def test_a_page_of_exactly_the_rest_has_no_next_cursor(apis, history):
    body = apis["rw"].get("/deployments", limit=25).json()
    assert len(body["items"]) == 25
    assert body["next_cursor"] is None


@pytest.mark.parametrize("status", ["SUCCESS", "FAILURE", "RUNNING", "CANCELLED"])
def test_it_filters_deployments_by_status_across_pages(apis, history, status):
    items, _ = all_pages(apis["rw"], "/deployments", status=status, limit=3)
    assert [i["id"] for i in items] == [str(d.id) for d in history if d.status == status]


def test_it_filters_deployments_by_application_and_labels(apis, application, piped, project, history):
    other_app = add_application(
        system_principal(project.id),
        project,
        name="other",
        piped_id=piped.id,
        platform_provider="ECS",
        repo_id="manifests",
        path="apps/other",
        labels={"env": "prod", "team": "web"},
    )
    prod = [make_deployment(other_app) for _ in range(3)]
    items, _ = all_pages(apis["rw"], "/deployments", application_id=str(other_app.id), limit=2)
    assert sorted(i["id"] for i in items) == sorted(str(d.id) for d in prod)
    items, _ = all_pages(apis["rw"], "/deployments", labels=["env:prod", "team:web"], limit=2)
    assert sorted(i["id"] for i in items) == sorted(str(d.id) for d in prod)
    items, _ = all_pages(apis["rw"], "/deployments", labels=["env:dev"], limit=10)
    assert len(items) == len(history)
    assert apis["rw"].get("/deployments", labels=["env:prod", "team:mobile"]).json()["items"] == []


def test_the_number_of_queries_does_not_grow_with_the_page(apis, application):
    for _ in range(30):
        deployment = make_deployment(application)
        for n in range(3):
            Stage.objects.create(deployment=deployment, stage_id=f"stage-{n}", name="WAIT", index=n)
    counts = []
    for limit in (2, 30):
        apis["rw"].get("/deployments", limit=1)  # the key's last-used write happens once a minute at most
        with CaptureQueriesContext(connection) as queries:
            response = apis["rw"].get("/deployments", limit=limit)
        assert len(response.json()["items"]) == limit
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_a_key_approves_as_apikey_name_once(apis, deployment):
    response = apis["rw"].post(f"/deployments/{deployment.id}/stages/approval/approve")
    assert response.status_code == 200
    command = Command.objects.get(pk=response.json()["command_id"])
    assert (command.type, command.commander, command.stage_id) == ("APPROVE_STAGE", "apikey:ci", "approval")
    event = AuditEvent.objects.get(verb="deployment.approve")
    assert (event.actor, event.details["stage_id"]) == ("apikey:ci", "approval")
    before = snapshot()
    again = apis["rw"].post(f"/deployments/{deployment.id}/stages/approval/approve")
    assert again.status_code == 409
    assert "already approved" in again.json()["detail"]
    assert snapshot() == before


def test_the_approver_list_decides_which_key_may_approve(apis, keys, deployment, project):
    Stage.objects.filter(deployment=deployment, stage_id="approval").update(
        authorized_approvers=["alice", "apikey:release-bot"]
    )
    before = snapshot()
    response = apis["rw"].post(f"/deployments/{deployment.id}/stages/approval/approve")
    assert response.status_code == 403
    assert "apikey:ci is not an approver" in response.json()["detail"]
    assert snapshot() == before

    from apps.projects.services import create_api_key

    from .conftest import API

    _, bot_key = create_api_key(system_principal(project.id), project, name="release-bot", role="READ_WRITE")
    response = API(bot_key).post(f"/deployments/{deployment.id}/stages/approval/approve")
    assert response.status_code == 200
    assert Command.objects.get(pk=response.json()["command_id"]).commander == "apikey:release-bot"


def test_a_stage_not_waiting_cannot_be_approved(apis, deployment):
    Stage.objects.filter(deployment=deployment, stage_id="approval").update(status=StageStatus.SUCCESS)
    response = apis["rw"].post(f"/deployments/{deployment.id}/stages/approval/approve")
    assert response.status_code == 409
    assert "not waiting" in response.json()["detail"]


def test_cancel_records_the_rollback_choice_and_skip_the_stage(apis, deployment):
    response = apis["rw"].post(f"/deployments/{deployment.id}/cancel", {"force_no_rollback": True})
    command = Command.objects.get(pk=response.json()["command_id"])
    assert (command.type, command.payload) == (
        "CANCEL_DEPLOYMENT",
        {"force_rollback": False, "force_no_rollback": True},
    )
    response = apis["rw"].post(f"/deployments/{deployment.id}/stages/stage-2/skip")
    command = Command.objects.get(pk=response.json()["command_id"])
    assert (command.type, command.stage_id, command.commander) == ("SKIP_STAGE", "stage-2", "apikey:ci")


def test_a_command_reports_its_progress(apis, deployment):
    command_id = apis["rw"].post(f"/deployments/{deployment.id}/cancel").json()["command_id"]
    body = apis["ro"].get(f"/commands/{command_id}").json()
    assert (body["type"], body["status"], body["handled_at"]) == (
        "CANCEL_DEPLOYMENT",
        "NOT_HANDLED_YET",
        None,
    )
    assert body["deployment_id"] == str(deployment.id)
    Command.objects.filter(pk=command_id).update(
        status=CommandStatus.FAILED, handled_at=timezone.now(), result={"error": "task set not found"}
    )
    body = apis["ro"].get(f"/commands/{command_id}").json()
    assert (body["status"], body["result"]) == ("FAILED", {"error": "task set not found"})
    assert body["handled_at"] is not None


def test_stage_logs_come_in_order_by_run_and_can_be_followed(apis, deployment):
    wait = Stage.objects.get(deployment=deployment, stage_id="stage-2")
    path = f"/deployments/{deployment.id}/stages/stage-2/logs"
    items, pages = all_pages(apis["ro"], path, limit=2)
    assert [i["log"] for i in items] == ["Waiting 5m", "Still waiting", "Done waiting"]
    assert pages == 2
    assert [i["log"] for i in apis["ro"].get(path, after_index=0).json()["items"]] == [
        "Still waiting",
        "Done waiting",
    ]
    # A retry starts a new run; the latest run is the default, earlier ones stay readable.
    Stage.objects.filter(pk=wait.pk).update(retried_count=1)
    StageLogBlock.objects.create(stage=wait, retried_count=1, index=0, log="Retry", created_at=timezone.now())
    assert [i["log"] for i in apis["ro"].get(path).json()["items"]] == ["Retry"]
    assert len(apis["ro"].get(path, retried_count=0).json()["items"]) == 3


def test_stage_logs_are_followed_across_a_new_run_with_after(apis, deployment):
    # A script follows the stage: it has seen run 0 up to index 1 ("Still waiting").
    wait = Stage.objects.get(deployment=deployment, stage_id="stage-2")
    path = f"/deployments/{deployment.id}/stages/stage-2/logs"
    assert [i["log"] for i in apis["ro"].get(path, after="0.1").json()["items"]] == ["Done waiting"]
    # The piped was killed; another worker took the stage over and writes its new run from index 0.
    Stage.objects.filter(pk=wait.pk).update(retried_count=1)
    for i, text in enumerate(["Starting again", "Created task set", "Steady"]):
        StageLogBlock.objects.create(
            stage=wait, retried_count=1, index=i, log=text, created_at=timezone.now()
        )
    # Nothing is lost: the rest of run 0, then run 1 from its start, in pages.
    items, pages = all_pages(apis["ro"], path, after="0.1", limit=2)
    assert [(i["retried_count"], i["index"], i["log"]) for i in items] == [
        (0, 2, "Done waiting"),
        (1, 0, "Starting again"),
        (1, 1, "Created task set"),
        (1, 2, "Steady"),
    ]
    assert pages == 2
    assert [i["log"] for i in apis["ro"].get(path, after="1.1").json()["items"]] == ["Steady"]
    assert len(apis["ro"].get(path, after="0.-1").json()["items"]) == 6
    # Bad positions and mixed styles are a 400 naming the parameter.
    for bad in ("x", "1", "-1.0", "0.-2", "1.x"):
        response = apis["ro"].get(path, after=bad)
        assert response.status_code == 400 and response.json()["field"] == "after", bad
    mixed = apis["ro"].get(path, after="0.1", after_index=3)
    assert mixed.status_code == 400 and mixed.json()["field"] == "after"
