"""The piped API: PIPED-TOKEN auth, ownership checks, and each report's effect on the records."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.applications.choices import SyncStatus
from apps.applications.models import Application, ApplicationLiveState
from apps.applications.services import set_application_disabled, sync_application
from apps.deployments.choices import CommandStatus, DeploymentStatus, StageStatus
from apps.deployments.models import Command, Deployment, Stage, StageLogBlock
from apps.deployments.services import approve_stage
from apps.pipeds.models import Piped
from apps.pipeds.services import set_piped_disabled
from apps.projects.choices import APIKeyRole
from apps.projects.models import AuditEvent
from apps.projects.principal import system_principal
from apps.projects.services import create_api_key

from .conftest import PipedClient, new_deployment, plan

pytestmark = pytest.mark.django_db


# --- Authentication -------------------------------------------------------------------------------------


def test_it_answers_a_valid_token(piped_client, piped):
    response = piped_client.post("/stat", {})
    assert response.status_code == 200
    piped.refresh_from_db()
    assert piped.last_heartbeat_at is not None
    assert piped.status == "ONLINE"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        "PIPED-TOKEN",
        "PIPED-TOKEN demo",
        "PIPED-TOKEN demo,not-a-uuid,key",
    ],
)
def test_it_refuses_malformed_tokens_with_a_bare_401(project, piped, header):
    client = PipedClient(project.id, piped.id, "x", header=header or "")
    response = client.get("/commands")
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_it_refuses_a_wrong_key(project, piped):
    response = PipedClient(project.id, piped.id, "wrong-key").get("/commands")
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_it_refuses_a_key_of_another_piped(project, piped, second_piped_and_key):
    _, other_key = second_piped_and_key
    response = PipedClient(project.id, piped.id, other_key).get("/commands")
    assert response.status_code == 401


def test_it_refuses_the_right_key_under_another_project(other_project, piped_and_key):
    piped, key = piped_and_key
    response = PipedClient(other_project.id, piped.id, key).get("/commands")
    assert response.status_code == 401


def test_it_refuses_a_disabled_piped_with_the_same_401(project, piped_and_key):
    piped, key = piped_and_key
    set_piped_disabled(system_principal(project.id), piped, True)
    response = PipedClient(project.id, piped.id, key).get("/commands")
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_it_authenticates_in_one_query(piped_client):
    with CaptureQueriesContext(connection) as queries:
        assert piped_client.post("/stat", {}).status_code == 200
    # One SELECT for the key (with its piped), one UPDATE for the heartbeat.
    assert len(queries) == 2, [q["sql"] for q in queries]


# --- Another piped's objects ----------------------------------------------------------------------------


def test_it_hides_another_pipeds_application(piped_client, second_application):
    assert piped_client.get(f"/applications/{second_application.id}").status_code == 404
    response = piped_client.post(
        "/deployments",
        {
            "application_id": str(second_application.id),
            "trigger_kind": "ON_COMMIT",
            "trigger_key": "k",
            "commit": {"hash": "c" * 40},
        },
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "Application not found."


def test_it_hides_another_pipeds_deployment_and_stages(piped_client, second_client, second_application):
    deployment = new_deployment(second_client, second_application.id)
    plan(second_client, deployment["id"])
    for path in (
        f"/deployments/{deployment['id']}",
        f"/applications/{second_application.id}/most-recent-successful-deployment",
    ):
        assert piped_client.get(path).status_code == 404
    for path, body in [
        (f"/deployments/{deployment['id']}/status", {"status": "RUNNING"}),
        (f"/deployments/{deployment['id']}/metadata", {"metadata": {"x": 1}}),
        (f"/deployments/{deployment['id']}/stages/stage-0/status", {"status": "RUNNING"}),
        (f"/deployments/{deployment['id']}/stages/stage-0/logs", {"blocks": [{"index": 0, "log": "x"}]}),
        (f"/deployments/{deployment['id']}/stages/stage-0/claim", {"worker_id": "w"}),
        (f"/applications/{second_application.id}/sync-state", {"status": "SYNCED"}),
    ]:
        assert piped_client.post(path, body).status_code == 404, path
    assert Deployment.objects.get(pk=deployment["id"]).status == DeploymentStatus.PLANNED
    assert not StageLogBlock.objects.exists()


def test_it_hides_another_pipeds_commands(project, piped_client, second_client, second_application):
    command = sync_application(system_principal(project.id), second_application)
    assert piped_client.get("/commands").json()["commands"] == []
    assert [c["id"] for c in second_client.get("/commands").json()["commands"]] == [str(command.id)]
    response = piped_client.post(f"/commands/{command.id}/handled", {"status": "SUCCEEDED"})
    assert response.status_code == 404
    command.refresh_from_db()
    assert command.status == CommandStatus.NOT_HANDLED_YET


def test_it_does_not_list_foreign_deployments(piped_client, second_client, application, second_application):
    new_deployment(second_client, second_application.id)
    mine = new_deployment(piped_client, application.id)
    assert [d["id"] for d in piped_client.get("/deployments").json()["deployments"]] == [mine["id"]]


# --- Meta, heartbeats, repositories ---------------------------------------------------------------------


def test_it_records_meta_and_audits_the_start(piped_client, piped):
    response = piped_client.post(
        "/meta",
        {
            "version": "0.1.0",
            "repositories": [
                {"repo_id": "manifests", "remote": "git@github.com:org/m.git", "branch": "main"}
            ],
            "platform_providers": [{"name": "ECS", "type": "ECS"}],
            "config": "apiVersion: pipecd.dev/v1beta1\nkind: Piped\nspec:\n  pipedKeyData: '******'\n",
        },
    )
    assert response.status_code == 200
    piped.refresh_from_db()
    assert piped.version == "0.1.0"
    assert piped.repositories == [
        {"repo_id": "manifests", "remote": "git@github.com:org/m.git", "branch": "main"}
    ]
    assert piped.platform_providers == [{"name": "ECS", "type": "ECS"}]
    assert "******" in piped.config
    assert piped.started_at is not None
    assert AuditEvent.objects.filter(verb="piped.start", object_id=str(piped.id)).exists()


def test_it_refuses_duplicate_repository_ids(piped_client):
    repos = [{"repo_id": "a", "remote": "x"}, {"repo_id": "a", "remote": "y"}]
    response = piped_client.post("/meta", {"repositories": repos})
    assert response.status_code == 400
    assert "listed twice" in response.json()["detail"]


def test_a_stopping_piped_shows_offline_at_once(piped_client, piped):
    piped_client.post("/stat", {})
    piped.refresh_from_db()
    assert piped.status == "ONLINE"
    piped_client.post("/stat", {"stopping": True})
    piped.refresh_from_db()
    assert piped.status == "OFFLINE"
    piped_client.post("/stat", {})
    piped.refresh_from_db()
    assert piped.status == "ONLINE"


def test_it_merges_repository_status(piped_client, piped):
    piped_client.post(
        "/meta", {"repositories": [{"repo_id": "a", "remote": "x"}, {"repo_id": "b", "remote": "y"}]}
    )
    piped_client.post("/repositories/status", {"repositories": {"a": {"head": "1" * 40, "error": ""}}})
    response = piped_client.post(
        "/repositories/status",
        {"repositories": {"b": {"error": "fatal: could not read from remote", "failures": 3}}},
    )
    assert response.status_code == 200
    piped.refresh_from_db()
    assert piped.repository_status["a"]["head"] == "1" * 40
    assert piped.repository_status["b"] == {"error": "fatal: could not read from remote", "failures": 3}
    unknown = piped_client.post("/repositories/status", {"repositories": {"zzz": {"error": ""}}})
    assert unknown.status_code == 400


def test_it_replaces_suggestions_per_scanned_repository(piped_client, piped):
    piped_client.post(
        "/unregistered-apps",
        {
            "repo_ids": ["a", "b"],
            "apps": [
                {"repo_id": "a", "path": "svc/one", "config_filename": "app.pipecd.yaml", "name": "one"},
                {"repo_id": "b", "path": "svc/two", "config_filename": "two.pipecd.yaml", "name": "two"},
            ],
        },
    )
    piped_client.post("/unregistered-apps", {"repo_ids": ["a"], "apps": []})
    piped.refresh_from_db()
    assert [s["name"] for s in piped.unregistered_apps] == ["two"]
    assert piped.unregistered_apps[0]["kind"] == "ECS"


# --- Applications ---------------------------------------------------------------------------------------


def test_it_lists_only_enabled_live_applications_of_the_piped(
    project, piped_client, application, second_application
):
    listed = piped_client.get("/applications").json()["applications"]
    assert [a["id"] for a in listed] == [str(application.id)]
    assert listed[0]["repo_id"] == "manifests" and listed[0]["path"] == "apps/hello"
    set_application_disabled(system_principal(project.id), application, True)
    assert piped_client.get("/applications").json()["applications"] == []


def test_adding_an_application_bumps_apps_changed_at(project, piped, piped_client):
    before = piped_client.get("/commands").json()["apps_changed_at"]
    from apps.applications.services import add_application

    add_application(
        system_principal(project.id),
        project,
        name="new",
        piped_id=piped.id,
        platform_provider="ECS",
        repo_id="manifests",
        path="apps/new",
    )
    after = piped_client.get("/commands").json()["apps_changed_at"]
    assert after is not None and after != before


def test_piped_reports_do_not_bump_apps_changed_at(piped, piped_client, application):
    Piped.objects.filter(pk=piped.pk).update(apps_changed_at=None)
    piped_client.post(
        f"/applications/{application.id}/sync-state", {"status": "OUT_OF_SYNC", "reason": "drift"}
    )
    new_deployment(piped_client, application.id)
    assert piped_client.get("/commands").json()["apps_changed_at"] is None


def test_it_resyncs_name_labels_and_description(piped_client, application):
    response = piped_client.post(
        f"/applications/{application.id}/config",
        {"name": "hello-renamed", "labels": {"env": "prod"}, "description": "From Git"},
    )
    assert response.json() == {"changed": True}
    application.refresh_from_db()
    assert (application.name, application.labels, application.description) == (
        "hello-renamed",
        {"env": "prod"},
        "From Git",
    )
    again = piped_client.post(
        f"/applications/{application.id}/config",
        {"name": "hello-renamed", "labels": {"env": "prod"}, "description": "From Git"},
    )
    assert again.json() == {"changed": False}


def test_it_records_invalid_config_with_the_loaders_message(piped_client, application):
    message = "apps/hello/app.pipecd.yaml:4:3: spec.pipelin: unknown key (did you mean 'pipeline'?)"
    response = piped_client.post(
        f"/applications/{application.id}/sync-state",
        {"status": "INVALID_CONFIG", "short_reason": "The application config is invalid", "reason": message},
    )
    assert response.status_code == 200
    application.refresh_from_db()
    assert application.sync_status == SyncStatus.INVALID_CONFIG
    assert application.sync_reason == message
    bad = piped_client.post(f"/applications/{application.id}/sync-state", {"status": "GREAT"})
    assert bad.status_code == 400


# --- Deployments ----------------------------------------------------------------------------------------


def test_creating_a_deployment_is_idempotent_per_trigger(piped_client, application):
    first = piped_client.post(
        "/deployments",
        {
            "application_id": str(application.id),
            "trigger_kind": "ON_COMMIT",
            "trigger_key": "ON_COMMIT:" + "a" * 40,
            "commit": {"hash": "a" * 40, "message": "Bump", "author": "dev", "branch": "main"},
        },
    )
    assert first.status_code == 201
    again = piped_client.post(
        "/deployments",
        {
            "application_id": str(application.id),
            "trigger_kind": "ON_COMMIT",
            "trigger_key": "ON_COMMIT:" + "a" * 40,
            "commit": {"hash": "a" * 40},
        },
    )
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["deployment"]["id"] == first.json()["deployment"]["id"]
    assert Deployment.objects.count() == 1
    application.refresh_from_db()
    assert str(application.most_recent_deployment_id) == first.json()["deployment"]["id"]
    deployment = first.json()["deployment"]
    assert deployment["status"] == "PENDING"
    assert deployment["trigger"]["commit"]["message"] == "Bump"
    assert deployment["git_path"] == {
        "repo_id": "manifests",
        "path": "apps/hello",
        "config_filename": "app.pipecd.yaml",
    }


def test_it_refuses_a_deployment_without_a_commit(piped_client, application):
    response = piped_client.post(
        "/deployments",
        {
            "application_id": str(application.id),
            "trigger_kind": "ON_COMMIT",
            "trigger_key": "x",
            "commit": {"hash": ""},
        },
    )
    assert response.status_code == 400
    assert response.json()["field"] == "commit.hash"


def test_planning_creates_the_stages_and_moves_to_planned(piped_client, application):
    deployment = new_deployment(piped_client, application.id)
    planned = plan(piped_client, deployment["id"])
    assert planned["status"] == "PLANNED"
    assert [s["id"] for s in planned["stages"]] == ["stage-0", "stage-1", "rollback"]
    approval = Stage.objects.get(deployment_id=deployment["id"], stage_id="stage-1")
    assert approval.authorized_approvers == ["erin", "alice"]
    assert approval.min_approver_num == 2
    rollback = Stage.objects.get(deployment_id=deployment["id"], stage_id="rollback")
    assert rollback.rollback and not rollback.visible
    row = Deployment.objects.get(pk=deployment["id"])
    assert row.summary.startswith("Sync progressively")
    assert row.versions == [{"name": "app", "version": "v2", "url": "registry/app:v2"}]
    application.refresh_from_db()
    assert application.deploying is True
    assert application.sync_status == SyncStatus.DEPLOYING
    # The same plan again is harmless; a different one is refused.
    assert plan(piped_client, deployment["id"])["status"] == "PLANNED"
    other = piped_client.post(
        f"/deployments/{deployment['id']}/planned",
        {"sync_strategy": "QUICK_SYNC", "stages": [{"id": "x", "name": "ECS_SYNC"}]},
    )
    assert other.status_code == 409


def test_it_refuses_duplicate_stage_ids(piped_client, application):
    deployment = new_deployment(piped_client, application.id)
    response = piped_client.post(
        f"/deployments/{deployment['id']}/planned",
        {"sync_strategy": "PIPELINE", "stages": [{"id": "a", "name": "WAIT"}, {"id": "a", "name": "WAIT"}]},
    )
    assert response.status_code == 400
    assert Deployment.objects.get(pk=deployment["id"]).status == DeploymentStatus.PENDING


def test_statuses_only_move_forward(piped_client, application):
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    base = f"/deployments/{deployment['id']}"
    assert piped_client.post(f"{base}/status", {"status": "RUNNING", "reason": "Running"}).status_code == 200
    assert piped_client.post(f"{base}/status", {"status": "RUNNING", "reason": "Still"}).status_code == 200
    back = piped_client.post(f"{base}/status", {"status": "PENDING"})
    assert back.status_code == 409
    assert "cannot go back" in back.json()["detail"]
    assert piped_client.post(f"{base}/stages/stage-0/status", {"status": "RUNNING"}).status_code == 200
    assert piped_client.post(f"{base}/stages/stage-0/status", {"status": "SUCCESS"}).status_code == 200
    assert piped_client.post(f"{base}/stages/stage-0/status", {"status": "RUNNING"}).status_code == 409
    not_terminal = piped_client.post(f"{base}/completed", {"status": "RUNNING"})
    assert not_terminal.status_code == 400
    done = piped_client.post(f"{base}/completed", {"status": "SUCCESS", "reason": "Deployed"})
    assert done.status_code == 200
    assert piped_client.post(f"{base}/status", {"status": "FAILURE"}).status_code == 409
    row = Deployment.objects.get(pk=deployment["id"])
    assert row.status == DeploymentStatus.SUCCESS and row.completed_at is not None
    assert AuditEvent.objects.filter(verb="deployment.complete", object_id=deployment["id"]).exists()


def test_a_rerun_keeps_the_stage_start_time(piped_client, application):
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    base = f"/deployments/{deployment['id']}/stages/stage-0"
    piped_client.post(f"{base}/status", {"status": "RUNNING"})
    started = Stage.objects.get(deployment_id=deployment["id"], stage_id="stage-0").started_at
    piped_client.post(f"{base}/status", {"status": "RUNNING", "reason": "Re-run after a restart"})
    stage = Stage.objects.get(deployment_id=deployment["id"], stage_id="stage-0")
    assert stage.started_at == started
    assert stage.status_reason == "Re-run after a restart"


def test_success_updates_the_application(piped_client, application):
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    piped_client.post(f"/deployments/{deployment['id']}/status", {"status": "RUNNING"})
    piped_client.post(f"/deployments/{deployment['id']}/completed", {"status": "SUCCESS"})
    application.refresh_from_db()
    assert str(application.most_recent_successful_deployment_id) == deployment["id"]
    assert application.deploying is False
    assert application.sync_status == SyncStatus.SYNCED
    latest = piped_client.get(f"/applications/{application.id}/most-recent-successful-deployment").json()
    assert latest["deployment"]["id"] == deployment["id"]


def test_failure_leaves_the_sync_state_to_drift_detection(piped_client, application):
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    piped_client.post(
        f"/deployments/{deployment['id']}/completed", {"status": "FAILURE", "reason": "ECS said no"}
    )
    application.refresh_from_db()
    assert application.deploying is False
    assert application.sync_status == SyncStatus.UNKNOWN
    assert application.sync_reason == "ECS said no"
    assert application.most_recent_successful_deployment_id is None


def test_metadata_merges(piped_client, application):
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    base = f"/deployments/{deployment['id']}"
    piped_client.post(f"{base}/metadata", {"metadata": {"a": 1}})
    merged = piped_client.post(f"{base}/metadata", {"metadata": {"b": 2}}).json()["metadata"]
    assert merged == {"a": 1, "b": 2}
    piped_client.post(f"{base}/stages/stage-1/metadata", {"metadata": {"approved_by": ["erin"]}})
    stage_meta = piped_client.post(f"{base}/stages/stage-1/metadata", {"metadata": {"x": "y"}}).json()
    assert stage_meta["metadata"] == {"approved_by": ["erin"], "x": "y"}
    assert Stage.objects.get(deployment_id=deployment["id"], stage_id="stage-1").approvals == ["erin"]


def test_logs_append_idempotently_and_resume_at_the_next_index(piped_client, application):
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    base = f"/deployments/{deployment['id']}/stages/stage-0/logs"
    blocks = [{"index": i, "log": f"line {i}", "severity": "INFO"} for i in range(3)]
    assert piped_client.post(base, {"blocks": blocks}).json() == {"received": 3}
    piped_client.post(base, {"blocks": [*blocks[1:], {"index": 3, "log": "done", "severity": "SUCCESS"}]})
    rows = list(StageLogBlock.objects.filter(stage__stage_id="stage-0").values_list("index", "log"))
    assert rows == [(0, "line 0"), (1, "line 1"), (2, "line 2"), (3, "done")]
    detail = piped_client.get(f"/deployments/{deployment['id']}").json()
    stage0 = next(s for s in detail["stages"] if s["id"] == "stage-0")
    stage1 = next(s for s in detail["stages"] if s["id"] == "stage-1")
    assert stage0["next_log_index"] == 4
    assert stage1["next_log_index"] == 0
    bad = piped_client.post(base, {"blocks": [{"index": 9, "log": "x", "severity": "LOUD"}]})
    assert bad.status_code == 400


def test_two_workers_never_hold_the_same_stage(piped_client, application):
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    base = f"/deployments/{deployment['id']}/stages/stage-0"
    first = piped_client.post(f"{base}/claim", {"worker_id": "w1", "lease_seconds": 30}).json()
    second = piped_client.post(f"{base}/claim", {"worker_id": "w2", "lease_seconds": 30}).json()
    assert first["claimed"] is True and second["claimed"] is False
    assert second["claimed_by"] == "w1"
    assert piped_client.post(f"{base}/renew", {"worker_id": "w2"}).json()["claimed"] is False
    assert piped_client.post(f"{base}/renew", {"worker_id": "w1"}).json()["claimed"] is True
    # An expired lease is taken over at once.
    Stage.objects.filter(deployment_id=deployment["id"], stage_id="stage-0").update(
        claim_expires_at=timezone.now() - timedelta(seconds=1)
    )
    takeover = piped_client.post(f"{base}/claim", {"worker_id": "w2", "lease_seconds": 30}).json()
    assert takeover["claimed"] is True and takeover["claimed_by"] == "w2"
    assert piped_client.post(f"{base}/renew", {"worker_id": "w1"}).json()["claimed"] is False
    # Releasing with a wake-up time frees the stage and says when to look again.
    wake = (timezone.now() + timedelta(seconds=5)).isoformat()
    released = piped_client.post(f"{base}/release", {"worker_id": "w2", "next_check_at": wake}).json()
    assert released["claimed_by"] == ""
    stage = Stage.objects.get(deployment_id=deployment["id"], stage_id="stage-0")
    assert stage.next_check_at is not None
    # A finished stage cannot be claimed.
    piped_client.post(f"{base}/status", {"status": "SUCCESS"})
    assert piped_client.post(f"{base}/claim", {"worker_id": "w3"}).json()["claimed"] is False


def test_commands_poll_is_one_query_after_auth(project, piped_client, application):
    sync_application(system_principal(project.id), application)
    with CaptureQueriesContext(connection) as queries:
        body = piped_client.get("/commands").json()
    assert len(queries) == 2, [q["sql"] for q in queries]
    assert [c["type"] for c in body["commands"]] == ["SYNC_APPLICATION"]
    assert body["commands"][0]["payload"] == {"sync_strategy": "AUTO"}


def test_command_handled_is_recorded_once(project, piped_client, application, editor):
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    piped_client.post(f"/deployments/{deployment['id']}/stages/stage-1/status", {"status": "RUNNING"})
    command = approve_stage(editor, Deployment.objects.get(pk=deployment["id"]), "stage-1")
    response = piped_client.post(
        f"/commands/{command.id}/handled", {"status": "SUCCEEDED", "result": {"ok": 1}}
    )
    assert response.status_code == 200
    command.refresh_from_db()
    assert command.status == CommandStatus.SUCCEEDED and command.handled_at is not None
    assert piped_client.get("/commands").json()["commands"] == []
    again = piped_client.post(f"/commands/{command.id}/handled", {"status": "FAILED"})
    assert again.status_code == 409
    assert Command.objects.get(pk=command.pk).status == CommandStatus.SUCCEEDED


def test_disabled_application_gets_no_new_deployment(project, piped_client, application):
    Application.objects.filter(pk=application.pk).update(disabled=True)
    response = piped_client.post(
        "/deployments",
        {
            "application_id": str(application.id),
            "trigger_kind": "ON_COMMIT",
            "trigger_key": "k",
            "commit": {"hash": "a"},
        },
    )
    assert response.status_code == 409


def test_stage_status_for_unknown_stage_is_404(piped_client, application):
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    response = piped_client.post(f"/deployments/{deployment['id']}/stages/nope/status", {"status": "RUNNING"})
    assert response.status_code == 404
    assert Stage.objects.filter(deployment_id=deployment["id"], status=StageStatus.RUNNING).count() == 0


def test_credentials_in_reported_remotes_and_fetch_errors_are_never_stored(piped_client, piped):
    piped_client.post(
        "/meta",
        {
            "version": "1",
            "repositories": [{"repo_id": "a", "remote": "https://bot:s3cret@git.example.test/r.git"}],
        },
    )
    error = "fatal: unable to access 'https://bot:s3cret@git.example.test/r.git/': 403"
    piped_client.post("/repositories/status", {"repositories": {"a": {"error": error}}})
    piped.refresh_from_db()
    assert piped.repositories[0]["remote"] == "https://bot:******@git.example.test/r.git"
    assert "s3cret" not in piped.repository_status["a"]["error"]
    assert "git.example.test/r.git" in piped.repository_status["a"]["error"]


def test_a_lone_surrogate_in_a_log_is_replaced_not_a_500(piped_client, application):
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    body = '{"blocks": [{"index": 0, "log": "bad \\ud800 byte", "severity": "INFO"}]}'
    response = piped_client.client.post(
        f"/api/piped/v1/deployments/{deployment['id']}/stages/stage-0/logs",
        data=body,
        content_type="application/json",
        headers={"Authorization": piped_client.header},
    )
    assert response.status_code == 200, response.content
    assert StageLogBlock.objects.get(stage__stage_id="stage-0").log == "bad \ufffd byte"


@pytest.mark.parametrize("bad", [{"index": "first"}, {"min_approver_num": -1}, {"min_approver_num": 2**40}])
def test_planned_stages_with_odd_numbers_are_refused(piped_client, application, bad):
    deployment = new_deployment(piped_client, application.id)
    stage = {"id": "stage-0", "name": "WAIT_APPROVAL", **bad}
    response = piped_client.post(
        f"/deployments/{deployment['id']}/planned",
        {"stages": [stage], "sync_strategy": "PIPELINE", "summary": "", "versions": []},
    )
    assert response.status_code == 400, response.content
    assert not Stage.objects.filter(deployment_id=deployment["id"]).exists()


# --- Hostile bodies: a 400 naming the field, nothing written (found by fuzzing the piped API) ------------


def post_raw(client: PipedClient, path: str, body: str):
    """A body as it is on the wire: json.dumps would not write `NaN`, a 2**63 index or an odd time for us."""
    return client.client.post(
        f"/api/piped/v1{path}",
        data=body,
        content_type="application/json",
        headers={"Authorization": client.header},
    )


def records() -> dict:
    """What a refused report must leave as it was."""
    return {
        "deployments": sorted(
            (str(d.id), d.status, json.dumps(d.metadata, sort_keys=True), str(d.trigger_key))
            for d in Deployment.objects.all()
        ),
        "stages": sorted(
            (s.stage_id, s.status, json.dumps(s.metadata, sort_keys=True), s.claimed_by, str(s.next_check_at))
            for s in Stage.objects.all()
        ),
        "logs": StageLogBlock.objects.count(),
        "pipeds": sorted(
            (str(p.id), json.dumps(p.unregistered_apps, sort_keys=True)) for p in Piped.objects.all()
        ),
        "live_states": ApplicationLiveState.objects.count(),
    }


REPORT_CASES = [
    # (case, path under the deployment or application, raw body, field)
    (
        "NaN in stage metadata",
        "{d}/stages/stage-0/metadata",
        '{"metadata": {"score": NaN}}',
        "metadata.score",
    ),
    ("-Infinity deep in metadata", "{d}/metadata", '{"metadata": {"a": [1, -Infinity]}}', "metadata.a.1"),
    (
        "a number no float holds",
        "{d}/stages/stage-0/metadata",
        '{"metadata": {"big": 1e400}}',
        "metadata.big",
    ),
    ("NaN lease", "{d}/stages/stage-0/claim", '{"worker_id": "w", "lease_seconds": NaN}', "lease_seconds"),
    (
        "NaN lease on renew",
        "{d}/stages/stage-0/renew",
        '{"worker_id": "w", "lease_seconds": NaN}',
        "lease_seconds",
    ),
    (
        "log index past any column",
        "{d}/stages/stage-0/logs",
        '{"blocks": [{"index": 9223372036854775808}]}',
        "blocks",
    ),
    (
        "log retried count past any column",
        "{d}/stages/stage-0/logs",
        '{"blocks": [{"index": 0, "retried_count": 2147483648}]}',
        "blocks",
    ),
    (
        "log time not a time",
        "{d}/stages/stage-0/logs",
        '{"blocks": [{"index": 0, "log": "x", "created_at": "yesterday"}]}',
        "blocks.created_at",
    ),
    (
        "log time in the year 10000 (UTC)",
        "{d}/stages/stage-0/logs",
        '{"blocks": [{"index": 0, "log": "x", "created_at": "9999-12-31T23:59:59-23:59"}]}',
        "blocks.created_at",
    ),
    (
        "next check in the year 0 (UTC)",
        "{d}/stages/stage-0/release",
        '{"worker_id": "w", "next_check_at": "0001-01-01T00:00:00+14:00"}',
        "next_check_at",
    ),
    (
        "approved_by not a list of names",
        "{d}/stages/stage-0/metadata",
        '{"metadata": {"approved_by": [1]}}',
        "metadata.approved_by",
    ),
    (
        "a step whose deployment metadata is refused writes none of its logs",
        "{d}/stages/stage-0/report",
        '{"worker_id": "w", "blocks": [{"index": 0, "log": "x"}], "deployment_metadata": {"approved_by": "erin"}}',
        "deployment_metadata.approved_by",
    ),
    (
        "live state collected in the year 10000 (UTC)",
        "{a}/live-state",
        '{"snapshot": {}, "collected_at": "9999-12-31T23:59:59-01:00"}',
        "collected_at",
    ),
    ("NaN in a live state", "{a}/live-state", '{"snapshot": {"tasks": NaN}}', "snapshot.tasks"),
    (
        "suggestion labels a list",
        "/unregistered-apps",
        '{"repo_ids": ["r"], "apps": [{"repo_id": "r", "path": "p", "labels": ["env"]}]}',
        "apps",
    ),
]


@pytest.mark.parametrize(("case", "path", "body", "field"), REPORT_CASES, ids=[c[0] for c in REPORT_CASES])
def test_a_hostile_report_is_a_400_naming_the_field_and_writes_nothing(
    piped_client, application, case, path, body, field
):
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    before = records()
    url = path.format(d=f"/deployments/{deployment['id']}", a=f"/applications/{application.id}")
    response = post_raw(piped_client, url, body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert records() == before


PLAN_CASES = [
    ("requires a number", {"requires": 1}),
    ("approvers not a list", {"authorized_approvers": True}),
    ("metadata a string", {"metadata": "x"}),
    ("approved_by a string", {"metadata": {"approved_by": "erin"}}),
]


@pytest.mark.parametrize(("case", "odd"), PLAN_CASES, ids=[c[0] for c in PLAN_CASES])
def test_a_plan_with_an_odd_stage_shape_is_refused(piped_client, application, case, odd):
    deployment = new_deployment(piped_client, application.id)
    before = records()
    response = piped_client.post(
        f"/deployments/{deployment['id']}/planned",
        {"sync_strategy": "PIPELINE", "stages": [{"id": "stage-0", "name": "WAIT", **odd}]},
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"].startswith("stages")
    assert records() == before


def test_a_plan_with_an_infinite_index_names_it(piped_client, application):
    deployment = new_deployment(piped_client, application.id)
    body = '{"sync_strategy": "PIPELINE", "stages": [{"id": "stage-0", "name": "WAIT", "index": Infinity}]}'
    response = post_raw(piped_client, f"/deployments/{deployment['id']}/planned", body)
    assert response.status_code == 400, response.content
    assert response.json() == {
        "detail": "stages.0.index: Infinity is not a finite number.",
        "field": "stages.0.index",
    }
    assert not Stage.objects.filter(deployment_id=deployment["id"]).exists()


def test_a_trigger_key_longer_than_the_column_is_refused_every_time(piped_client, application):
    # Cut to 150 characters, the retry did not find the deployment the first call made and failed on the
    # unique key: a 500 the piped retried forever.
    body = {
        "application_id": str(application.id),
        "trigger_kind": "ON_COMMIT",
        "trigger_key": "k" * 151,
        "commit": {"hash": "a" * 40},
    }
    for _ in range(2):
        response = piped_client.post("/deployments", body)
        assert response.status_code == 400, response.content
        assert response.json()["field"] == "trigger_key"
    assert not Deployment.objects.exists()


def test_a_commit_time_out_of_range_is_refused(piped_client, application):
    commit = '{"hash": "abc", "timestamp": "9999-12-31T23:59:59-05:00"}'
    body = f'{{"application_id": "{application.id}", "trigger_kind": "ON_COMMIT", "trigger_key": "k", "commit": {commit}}}'
    response = post_raw(piped_client, "/deployments", body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "commit.timestamp"
    assert not Deployment.objects.exists()


def test_approved_by_written_by_the_piped_still_reads_back_through_the_public_api(
    project, piped_client, application
):
    deployment = new_deployment(piped_client, application.id)
    plan(piped_client, deployment["id"])
    saved = piped_client.post(
        f"/deployments/{deployment['id']}/stages/stage-1/metadata", {"metadata": {"approved_by": ["erin"]}}
    )
    assert saved.status_code == 200, saved.content
    refused = piped_client.post(
        f"/deployments/{deployment['id']}/stages/stage-1/metadata", {"metadata": {"approved_by": 5}}
    )
    assert refused.status_code == 400
    key = create_api_key(system_principal(project.id), project, name="ci", role=APIKeyRole.READ_ONLY)[1]
    response = Client().get(
        f"/api/v1/deployments/{deployment['id']}", headers={"Authorization": f"API-KEY {key}"}
    )
    assert response.status_code == 200, response.content
    stage = next(s for s in response.json()["stages"] if s["id"] == "stage-1")
    assert stage["approved_by"] == ["erin"]
