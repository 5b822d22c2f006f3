"""Applications and pipeds over the API: shapes, the lifecycle, filters, cursor pages, registration."""

import base64

from django.utils import timezone

from apps.applications.choices import SyncStatus
from apps.applications.models import Application
from apps.applications.services import add_application
from apps.pipeds.piped_services import report_application_drift, report_live_state
from apps.pipeds.services import authenticate_piped
from apps.projects.models import AuditEvent
from apps.projects.principal import system_principal

from .test_deployments import all_pages


def test_an_application_has_pipecds_shape(apis, application, piped):
    body = apis["ro"].get(f"/applications/{application.id}").json()
    assert body["git_path"] == {
        "repo": {"id": "manifests"},
        "path": "apps/hello",
        "config_filename": "app.pipecd.yaml",
    }
    assert (body["name"], body["kind"], body["piped_id"], body["labels"]) == (
        "hello",
        "ECS",
        str(piped.id),
        {"env": "dev", "app": "hello"},
    )
    assert body["sync_state"]["status"] == "UNKNOWN"
    assert body["disabled"] is False


def test_it_adds_updates_disables_and_deletes_an_application(apis, piped):
    response = apis["rw"].post(
        "/applications",
        {
            "name": "web",
            "piped_id": str(piped.id),
            "platform_provider": "ecs-prod",
            "git_path": {"repo": {"id": "manifests", "branch": "main"}, "path": "./svc/web/"},
            "labels": {"team": "web"},
        },
    )
    assert response.status_code == 201
    app_id = response.json()["application_id"]
    app = Application.objects.get(pk=app_id)
    assert (app.kind, app.path, app.config_filename) == ("ECS", "svc/web", "app.pipecd.yaml")

    body = (
        apis["rw"].call("PATCH", f"/applications/{app_id}", {"description": "the shop", "labels": {}}).json()
    )
    assert (body["description"], body["labels"], body["name"]) == ("the shop", {}, "web")
    assert apis["rw"].post(f"/applications/{app_id}/disable").json()["disabled"] is True
    assert apis["rw"].get("/applications", disabled="true").json()["items"][0]["id"] == app_id
    assert apis["rw"].post(f"/applications/{app_id}/enable").json()["disabled"] is False
    assert apis["rw"].call("DELETE", f"/applications/{app_id}").status_code == 204
    app.refresh_from_db()
    assert app.deleted and app.deleted_at is not None
    verbs = AuditEvent.objects.filter(object_id=app_id).order_by("id").values_list("verb", flat=True)
    assert list(verbs) == [
        "application.add",
        "application.update",
        "application.disable",
        "application.enable",
        "application.delete",
    ]


def test_it_lists_applications_by_name_with_filters_and_pages(apis, project, piped):
    principal = system_principal(project.id)
    for i in range(12):
        add_application(
            principal,
            project,
            name=f"svc-{i % 4}",  # names repeat: the id breaks ties between pages
            piped_id=piped.id,
            platform_provider="ECS",
            repo_id="manifests",
            path=f"svc/{i}",
            labels={"env": "prod" if i % 2 else "dev", "n": str(i)},
        )
    Application.objects.filter(path__in=["svc/1", "svc/2"]).update(sync_status=SyncStatus.OUT_OF_SYNC)
    items, pages = all_pages(apis["ro"], "/applications", limit=5)
    assert pages == 3
    expected = Application.objects.order_by("name", "id").values_list("id", flat=True)
    assert [i["id"] for i in items] == [str(x) for x in expected]
    items, _ = all_pages(apis["ro"], "/applications", labels=["env:prod"], limit=2)
    assert len(items) == 6 and {i["labels"]["env"] for i in items} == {"prod"}
    items, _ = all_pages(apis["ro"], "/applications", status="OUT_OF_SYNC")
    assert sorted(i["git_path"]["path"] for i in items) == ["svc/1", "svc/2"]
    assert len(apis["ro"].get("/applications", name="svc-3").json()["items"]) == 3
    assert len(apis["ro"].get("/applications", kind="ECS", piped_id=str(piped.id)).json()["items"]) == 12
    assert apis["ro"].get("/applications", kind="LAMBDA").json()["items"] == []


def test_registering_a_piped_answers_a_key_that_works_once(apis, project):
    response = apis["rw"].post("/pipeds", {"name": "piped-prod", "description": "in the prod VPC"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"piped_id", "piped_key", "piped_key_base64"}
    assert base64.b64decode(body["piped_key_base64"]).decode() == body["piped_key"]
    piped = authenticate_piped(project.id, body["piped_id"], body["piped_key"])
    assert piped is not None and piped.name == "piped-prod"
    # The key is never served again.
    shown = apis["rw"].get(f"/pipeds/{body['piped_id']}").content.decode()
    listed = apis["rw"].get("/pipeds").content.decode()
    assert body["piped_key"] not in shown and body["piped_key"] not in listed


def test_a_piped_shows_its_status(apis, piped):
    body = apis["ro"].get(f"/pipeds/{piped.id}").json()
    assert (body["name"], body["status"], body["disabled"]) == ("piped-1", "OFFLINE", False)
    piped.last_heartbeat_at = timezone.now()
    piped.version = "v0.1.0"
    piped.repositories = [{"repo_id": "manifests", "remote": "git@example.com:m.git", "branch": "main"}]
    piped.save()
    body = apis["ro"].get(f"/pipeds/{piped.id}").json()
    assert (body["status"], body["version"]) == ("ONLINE", "v0.1.0")
    assert body["repositories"][0]["repo_id"] == "manifests"
    listed = apis["ro"].get("/pipeds").json()
    assert [p["id"] for p in listed["items"]] == [str(piped.id)] and listed["next_cursor"] is None


def test_the_schema_is_served_and_names_every_endpoint(apis):
    response = apis["no_header"].get("/api/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths) >= {
        "/api/v1/applications",
        "/api/v1/applications/{application_id}",
        "/api/v1/applications/{application_id}/enable",
        "/api/v1/applications/{application_id}/disable",
        "/api/v1/applications/{application_id}/sync",
        "/api/v1/applications/{application_id}/live-state",
        "/api/v1/deployments",
        "/api/v1/deployments/{deployment_id}",
        "/api/v1/deployments/{deployment_id}/cancel",
        "/api/v1/deployments/{deployment_id}/stages/{stage_id}/approve",
        "/api/v1/deployments/{deployment_id}/stages/{stage_id}/skip",
        "/api/v1/deployments/{deployment_id}/stages/{stage_id}/logs",
        "/api/v1/commands/{command_id}",
        "/api/v1/pipeds",
        "/api/v1/pipeds/{piped_id}",
    }
    assert set(paths["/api/v1/applications/{application_id}"]) == {"get", "patch", "delete"}
    assert response.json()["components"]["securitySchemes"]["APIKeyAuth"]["name"] == "Authorization"


def test_an_applications_live_state_and_drift_as_the_piped_reported_them(apis, application, piped):
    before = apis["ro"].get(f"/applications/{application.id}/live-state")
    assert before.status_code == 200
    assert before.json() == {
        "application_id": str(application.id),
        "collected_at": None,
        "updated_at": None,
        "snapshot": {},
        "drift": {
            "status": "",
            "summary": "",
            "diff": "",
            "commit": "",
            "checked_at": None,
            "changed_at": None,
        },
    }
    snapshot = {
        "service": {"name": "hogehoge", "desiredCount": 2},
        "task_sets": [{"id": "ecs-svc/1", "status": "PRIMARY", "scale": 100.0}],
        "traffic": [{"target_group": "demo-primary", "weight": 100}],
    }
    report_live_state(piped, application, snapshot)
    diff = "--- live\n+++ Git\n@@ -1 +1 @@\n-desiredCount: 3\n+desiredCount: 2\n"
    report_application_drift(
        piped, application, status="OUT_OF_SYNC", commit="abc123", summary="desiredCount differs", diff=diff
    )
    body = apis["ro"].get(f"/applications/{application.id}/live-state").json()
    assert body["snapshot"] == snapshot
    assert body["collected_at"] is not None and body["updated_at"] is not None
    drift = body["drift"]
    assert (drift["status"], drift["summary"], drift["diff"], drift["commit"]) == (
        "OUT_OF_SYNC",
        "desiredCount differs",
        diff,
        "abc123",
    )
    assert drift["checked_at"] is not None and drift["changed_at"] is not None
    # Another project's key, and an application that is not there, are both just "not found".
    assert apis["other"].get(f"/applications/{application.id}/live-state").status_code == 404
    assert apis["ro"].get("/applications/00000000-0000-0000-0000-000000000000/live-state").status_code == 404
