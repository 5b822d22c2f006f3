"""The piped API's live-state and drift calls: shapes, limits, and who may report for which application."""

import pytest

from apps.applications.models import Application, ApplicationLiveState
from apps.ops import filestore
from tests.pipedagent.conftest import PipedClient

pytestmark = pytest.mark.django_db

SNAPSHOT = {
    "version": 1,
    "kind": "ECS",
    "collected_at": "2026-05-01T12:00:00+00:00",
    "service": {"name": "hogehoge", "exists": True, "desired": 2},
    "task_sets": [{"status": "PRIMARY", "version": "hogehoge:v1", "traffic_percent": 100.0}],
}


def test_a_piped_stores_its_applications_live_state(piped_client, application):
    response = piped_client.post(f"/applications/{application.id}/live-state", {"snapshot": SNAPSHOT})
    assert response.status_code == 200, response.content
    assert response.json()["ok"] is True and response.json()["in_filestore"] is False
    state = ApplicationLiveState.objects.get(application=application)
    assert state.snapshot == SNAPSHOT
    assert state.collected_at is not None and state.updated_at is not None
    # A second report replaces the first.
    newer = {**SNAPSHOT, "task_sets": []}
    piped_client.post(f"/applications/{application.id}/live-state", {"snapshot": newer, "collected_at": None})
    state.refresh_from_db()
    assert state.snapshot["task_sets"] == []


def test_a_large_snapshot_goes_to_the_filestore(piped_client, application, settings, tmp_path):
    settings.PIPEPORTAL_FILESTORE_TYPE = "LOCAL"
    settings.PIPEPORTAL_FILESTORE_DIR = tmp_path
    tasks = [{"id": f"task-{i}", "status": "RUNNING", "health": "HEALTHY"} for i in range(1500)]
    big = {**SNAPSHOT, "other_tasks": tasks}
    response = piped_client.post(f"/applications/{application.id}/live-state", {"snapshot": big})
    assert response.status_code == 200 and response.json()["in_filestore"] is True
    state = ApplicationLiveState.objects.get(application=application)
    assert state.snapshot == {}
    assert state.snapshot_key == f"livestate/{application.project_id}/{application.id}.json"
    assert filestore.load_json(state.snapshot_key)["other_tasks"][1499]["id"] == "task-1499"


def test_bad_live_state_reports_are_refused(piped_client, application):
    not_an_object = piped_client.post(f"/applications/{application.id}/live-state", {"snapshot": [1, 2]})
    assert not_an_object.status_code == 400
    assert not_an_object.json()["detail"].startswith("snapshot")
    too_big = {"blob": "x" * (2 * 1024 * 1024 + 1)}
    response = piped_client.post(f"/applications/{application.id}/live-state", {"snapshot": too_big})
    assert response.status_code == 400
    assert "at most 2097152 are accepted" in response.json()["detail"]
    assert not ApplicationLiveState.objects.exists()


def test_another_pipeds_application_is_not_found(
    second_client, application, second_application, piped_client
):
    for path, body in (
        (f"/applications/{application.id}/live-state", {"snapshot": SNAPSHOT}),
        (f"/applications/{application.id}/drift", {"status": "SYNCED"}),
    ):
        assert second_client.post(path, body).status_code == 404
    assert (
        piped_client.post(f"/applications/{second_application.id}/drift", {"status": "SYNCED"}).status_code
        == 404
    )
    wrong_key = PipedClient(application.project_id, application.piped_id, "not-the-key")
    assert wrong_key.post(f"/applications/{application.id}/drift", {"status": "SYNCED"}).status_code == 401
    assert not ApplicationLiveState.objects.exists()


def test_a_drift_result_becomes_the_sync_state(piped_client, application):
    diff = "--- live\n+++ Git\n@@ -1 +1 @@\n-  desiredCount: 5\n+  desiredCount: 2"
    response = piped_client.post(
        f"/applications/{application.id}/drift",
        {
            "status": "OUT_OF_SYNC",
            "commit": "a" * 40,
            "summary": "1 field differs from Git: service.desiredCount",
            "diff": diff,
        },
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True, "sync_status": "OUT_OF_SYNC", "applied": True}
    application.refresh_from_db()
    assert application.sync_status == "OUT_OF_SYNC"
    assert application.sync_short_reason == "1 field differs from Git: service.desiredCount"
    assert application.sync_reason == diff
    state = ApplicationLiveState.objects.get(application=application)
    assert (state.drift_status, state.drift_diff, state.drift_commit) == ("OUT_OF_SYNC", diff, "a" * 40)
    changed_at = state.drift_changed_at
    piped_client.post(
        f"/applications/{application.id}/drift",
        {"status": "OUT_OF_SYNC", "commit": "a" * 40, "summary": "same", "diff": diff},
    )
    state.refresh_from_db()
    assert state.drift_changed_at == changed_at and state.drift_checked_at > changed_at
    piped_client.post(f"/applications/{application.id}/drift", {"status": "SYNCED", "commit": "b" * 40})
    application.refresh_from_db()
    assert application.sync_status == "SYNCED"
    assert application.sync_short_reason == "The live state matches Git at bbbbbbb"


def test_a_drift_result_does_not_override_a_deployment_or_a_broken_config(piped_client, application):
    for held in ("DEPLOYING", "INVALID_CONFIG"):
        Application.objects.filter(pk=application.pk).update(sync_status=held, deploying=held == "DEPLOYING")
        response = piped_client.post(
            f"/applications/{application.id}/drift", {"status": "OUT_OF_SYNC", "summary": "x", "diff": "y"}
        )
        assert response.json() == {"ok": True, "sync_status": held, "applied": False}
        application.refresh_from_db()
        assert application.sync_status == held
    # The result is kept all the same, for the portal.
    assert ApplicationLiveState.objects.get(application=application).drift_status == "OUT_OF_SYNC"
    bad = piped_client.post(f"/applications/{application.id}/drift", {"status": "DEPLOYING"})
    assert bad.status_code == 400
    assert bad.json()["detail"] == "A drift result is SYNCED or OUT_OF_SYNC."
