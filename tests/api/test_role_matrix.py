"""Who may call which endpoint of the public API, for every endpoint and every kind of caller.

The personas of the API are keys: a READ_WRITE key and a READ_ONLY key of project `demo`, a READ_WRITE
key of project `other`, a disabled key, a key with the wrong secret or an unknown id, a bearer token
instead of `API-KEY`, and no header at all.
"""

import pytest

from apps.applications.models import Application
from apps.deployments.models import Command
from apps.pipeds.models import Piped
from apps.projects.models import AuditEvent

from .conftest import snapshot

READ, WRITE = "read", "write"


def new_app_body(piped_id):
    return {
        "name": "added",
        "piped_id": str(piped_id),
        "kind": "ECS",
        "platform_provider": "ecs-dev",
        "git_path": {"repo": {"id": "manifests"}, "path": "apps/added", "config_filename": "app.pipecd.yaml"},
        "description": "added by the API",
        "labels": {"env": "dev"},
    }


# (name, kind, method, path template, body builder, success status).
# Templates take the ids of the fixture objects: app, dep, piped, cmd.
ENDPOINTS = [
    ("list applications", READ, "GET", "/applications", None, 200),
    ("get application", READ, "GET", "/applications/{app}", None, 200),
    ("get application live state", READ, "GET", "/applications/{app}/live-state", None, 200),
    ("add application", WRITE, "POST", "/applications", lambda o: new_app_body(o["piped"]), 201),
    ("update application", WRITE, "PATCH", "/applications/{app}", lambda o: {"description": "new"}, 200),
    ("enable application", WRITE, "POST", "/applications/{app}/enable", None, 200),
    ("disable application", WRITE, "POST", "/applications/{app}/disable", None, 200),
    ("delete application", WRITE, "DELETE", "/applications/{app}", None, 204),
    (
        "sync application",
        WRITE,
        "POST",
        "/applications/{app}/sync",
        lambda o: {"sync_strategy": "PIPELINE"},
        200,
    ),
    ("list deployments", READ, "GET", "/deployments", None, 200),
    ("get deployment", READ, "GET", "/deployments/{dep}", None, 200),
    (
        "cancel deployment",
        WRITE,
        "POST",
        "/deployments/{dep}/cancel",
        lambda o: {"force_rollback": True},
        200,
    ),
    ("approve stage", WRITE, "POST", "/deployments/{dep}/stages/approval/approve", None, 200),
    ("skip stage", WRITE, "POST", "/deployments/{dep}/stages/stage-2/skip", None, 200),
    ("stage logs", READ, "GET", "/deployments/{dep}/stages/stage-2/logs", None, 200),
    ("get command", READ, "GET", "/commands/{cmd}", None, 200),
    ("list pipeds", READ, "GET", "/pipeds", None, 200),
    ("get piped", READ, "GET", "/pipeds/{piped}", None, 200),
    ("register piped", WRITE, "POST", "/pipeds", lambda o: {"name": "piped-2", "description": "second"}, 201),
]
IS_LIST = {"list applications", "list deployments", "list pipeds"}
# Writes that create in the caller's own project rather than touch one of `demo`'s objects.
CREATES_IN_OWN_PROJECT = {"add application", "register piped"}
UNAUTHENTICATED = ["disabled", "wrong_secret", "unknown_id", "bearer", "no_header"]


@pytest.fixture
def objects(application, deployment, command, piped):
    return {"app": application.id, "dep": deployment.id, "piped": piped.id, "cmd": command.id}


def call(api, endpoint, objects):
    _, _, method, template, body, _ = endpoint
    return api.call(method, template.format(**objects), body(objects) if body else None)


def ids(endpoint):
    return endpoint[0]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids)
def test_it_lets_a_read_write_key_call_every_endpoint(apis, objects, endpoint):
    before = AuditEvent.objects.count()
    response = call(apis["rw"], endpoint, objects)
    assert response.status_code == endpoint[5], response.content
    if endpoint[1] == WRITE:
        # Every write is audited under the key's identity.
        event = AuditEvent.objects.order_by("-id").first()
        assert AuditEvent.objects.count() == before + 1
        assert (event.actor, event.actor_kind, event.project_id) == ("apikey:ci", "apikey", "demo")
    else:
        assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids)
def test_it_lets_a_read_only_key_read_and_refuses_its_writes(apis, objects, endpoint):
    before = snapshot()
    response = call(apis["ro"], endpoint, objects)
    if endpoint[1] == READ:
        assert response.status_code == 200, response.content
    else:
        assert response.status_code == 403, response.content
        assert "READ_ONLY" in response.json()["detail"]
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids)
def test_it_hides_one_projects_objects_from_another_projects_key(apis, objects, endpoint, other_project):
    before = snapshot()
    response = call(apis["other"], endpoint, objects)
    name = endpoint[0]
    if name in IS_LIST:
        assert response.status_code == 200
        assert response.json()["items"] == []
    elif name == "add application":
        # The piped belongs to `demo`: for `other` it does not exist.
        assert response.status_code == 400
        assert response.json()["field"] == "piped_id"
    elif name == "register piped":
        assert response.status_code == 201
        assert Piped.objects.get(pk=response.json()["piped_id"]).project_id == other_project.id
        return
    else:
        assert response.status_code == 404, response.content
        assert "demo" not in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize("persona", UNAUTHENTICATED)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids)
def test_it_refuses_callers_without_a_valid_key(apis, keys, objects, endpoint, persona):
    before = snapshot()
    response = call(apis[persona], endpoint, objects)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "API-KEY"
    # The same answer whatever was wrong: nothing says whether the id, the secret or the state failed.
    assert response.json() == {"detail": "Unauthorized: send `Authorization: API-KEY <key>`.", "field": None}
    assert snapshot() == before


def test_a_read_write_key_creates_what_it_says(apis, objects, piped):
    response = apis["rw"].post("/applications", new_app_body(piped.id))
    app = Application.objects.get(pk=response.json()["application_id"])
    assert (app.project_id, app.name, app.path, app.labels) == ("demo", "added", "apps/added", {"env": "dev"})
    response = apis["rw"].post(f"/applications/{app.id}/sync", {"sync_strategy": "QUICK_SYNC"})
    command = Command.objects.get(pk=response.json()["command_id"])
    assert (command.type, command.commander, command.payload) == (
        "SYNC_APPLICATION",
        "apikey:ci",
        {"sync_strategy": "QUICK_SYNC"},
    )
