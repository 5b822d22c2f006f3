"""Bad input to the public API: a clear 4xx naming the field, and nothing written."""

import uuid

import pytest

from apps.deployments.choices import DeploymentStatus

from .conftest import make_deployment, snapshot


def app_body(piped, **overrides):
    body = {
        "name": "new-app",
        "piped_id": str(piped),
        "kind": "ECS",
        "platform_provider": "ecs-dev",
        "git_path": {"repo": {"id": "manifests"}, "path": "apps/new", "config_filename": "app.pipecd.yaml"},
        "labels": {"env": "dev"},
    }
    body.update(overrides)
    return body


def git_path(path):
    return {"repo": {"id": "manifests"}, "path": path}


ADD_CASES = [
    # (case, body overrides, field, words the message must contain)
    ("unknown piped", {"piped_id": str(uuid.uuid4())}, "piped_id", "No such piped"),
    ("piped id not a uuid", {"piped_id": "piped-1"}, "piped_id", "No such piped"),
    ("unknown kind", {"kind": "HELM"}, "kind", "'ECS'"),
    ("kind not deployed yet", {"kind": "KUBERNETES"}, "kind", "use ECS"),
    ("path with ..", {"git_path": git_path("apps/../../etc")}, "path", "'..' is not allowed"),
    ("path only ..", {"git_path": git_path("..")}, "path", "'..' is not allowed"),
    ("absolute path", {"git_path": git_path("/etc/app")}, "path", "relative"),
    (
        "config filename with a directory",
        {"git_path": {**git_path("a"), "config_filename": "x/y.yaml"}},
        "config_filename",
        "file name",
    ),
    ("labels a list", {"labels": ["env:dev"]}, "labels", "valid dictionary"),
    ("labels a string", {"labels": "env=dev"}, "labels", "valid dictionary"),
    ("label value a number", {"labels": {"replicas": 3}}, "labels.replicas", "valid string"),
    ("empty name", {"name": "  "}, "name", "1 to 100"),
    ("name too long", {"name": "x" * 101}, "name", "1 to 100"),
    ("misspelt key", {"plaform_provider": "x"}, "plaform_provider", "Extra inputs are not permitted"),
    ("repo without id", {"git_path": {"repo": {}, "path": "a"}}, "git_path.repo.id", "Field required"),
    ("empty repo id", {"git_path": {"repo": {"id": " "}, "path": "a"}}, "repo_id", "must not be empty"),
]


@pytest.mark.parametrize(("case", "overrides", "field", "words"), ADD_CASES, ids=[c[0] for c in ADD_CASES])
def test_it_refuses_a_bad_application_and_names_the_field(apis, piped, case, overrides, field, words):
    before = snapshot()
    response = apis["rw"].post("/applications", app_body(piped.id, **overrides))
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["field"] == field
    assert words in body["detail"]
    assert snapshot() == before


def test_it_refuses_a_missing_field(apis, piped):
    before = snapshot()
    body = app_body(piped.id)
    del body["platform_provider"]
    response = apis["rw"].post("/applications", body)
    assert response.status_code == 400
    assert response.json()["detail"] == "platform_provider: Field required"
    assert snapshot() == before


@pytest.mark.parametrize(
    "raw",
    ['{"name": "x",', "not json", '{"name": "x"} trailing', b"\xff\xfe{}"],
    ids=["truncated", "text", "trailing", "not utf-8"],
)
def test_it_refuses_malformed_json_with_400(apis, application, raw):
    before = snapshot()
    for path in ("/applications", f"/applications/{application.id}", f"/applications/{application.id}/sync"):
        method = "PATCH" if path.endswith(str(application.id)) else "POST"
        response = apis["rw"].call(method, path, raw=raw)
        assert response.status_code == 400, (path, response.content)
        detail = response.json()["detail"]
        assert "not valid JSON" in detail or "not UTF-8" in detail
    assert snapshot() == before


@pytest.mark.parametrize("raw", ["[1, 2]", '"x"', "42", "null"])
def test_it_refuses_a_body_that_is_not_an_object(apis, raw):
    before = snapshot()
    response = apis["rw"].post("/applications", raw=raw)
    assert response.status_code == 400
    assert response.json()["detail"] == "The request body: must be a JSON object"
    assert snapshot() == before


def test_it_refuses_an_empty_body_where_one_is_required(apis):
    response = apis["rw"].post("/applications")
    assert response.status_code == 400
    assert response.json()["field"] is None


UPDATE_CASES = [
    ({"kind": "LAMBDA"}, "kind", "cannot be changed"),
    ({"git_path": git_path("apps/elsewhere")}, "path", "cannot be changed"),
    ({"git_path": git_path("../x")}, "path", "'..' is not allowed"),
    ({"piped_id": str(uuid.uuid4())}, "piped_id", "No such piped"),
    ({"labels": [1]}, "labels", "valid dictionary"),
    ({"name": ""}, "name", "1 to 100"),
    ({"platform_provider": ""}, "platform_provider", "must not be empty"),
    ({"disabled": True}, "disabled", "Extra inputs"),
]


@pytest.mark.parametrize(("body", "field", "words"), UPDATE_CASES)
def test_it_refuses_a_bad_update(apis, application, body, field, words):
    before = snapshot()
    response = apis["rw"].call("PATCH", f"/applications/{application.id}", body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert words in response.json()["detail"]
    assert snapshot() == before


def test_an_update_that_repeats_the_immutable_fields_is_fine(apis, application):
    response = apis["rw"].call(
        "PATCH",
        f"/applications/{application.id}",
        {"kind": "ECS", "git_path": git_path("./apps/hello/"), "name": "renamed"},
    )
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "renamed"


def test_it_refuses_an_unknown_sync_strategy(apis, application):
    before = snapshot()
    response = apis["rw"].post(f"/applications/{application.id}/sync", {"sync_strategy": "FAST"})
    assert response.status_code == 400
    assert response.json()["field"] == "sync_strategy"
    assert "'QUICK_SYNC'" in response.json()["detail"]
    assert snapshot() == before


def test_it_refuses_both_cancel_flags_at_once(apis, deployment):
    before = snapshot()
    response = apis["rw"].post(
        f"/deployments/{deployment.id}/cancel", {"force_rollback": True, "force_no_rollback": True}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "force_rollback"
    assert snapshot() == before


def test_it_refuses_a_piped_without_a_name_and_a_second_one_with_the_same_name(apis, piped):
    before = snapshot()
    response = apis["rw"].post("/pipeds", {"name": " "})
    assert (response.status_code, response.json()["field"]) == (400, "name")
    response = apis["rw"].post("/pipeds", {"name": piped.name})
    assert (response.status_code, response.json()["field"]) == (409, "name")
    assert snapshot() == before


QUERY_CASES = [
    ("/deployments", {"status": "DONE"}, "status"),
    ("/deployments", {"status": "deployment_running"}, "status"),
    ("/deployments", {"application_id": "hello"}, "application_id"),
    ("/deployments", {"limit": 0}, "limit"),
    ("/deployments", {"limit": 501}, "limit"),
    ("/deployments", {"limit": "many"}, "limit"),
    ("/deployments", {"cursor": "garbage!"}, "cursor"),
    ("/deployments", {"cursor": "WyJ4IiwgInkiXQ"}, "cursor"),  # a well-formed token with a bad date
    ("/deployments", {"labels": "env"}, "labels"),
    ("/deployments", {"labels": [f"k{n}:v" for n in range(11)]}, "labels"),
    ("/applications", {"status": "RUNNING"}, "status"),
    ("/applications", {"kind": "HELM"}, "kind"),
    ("/applications", {"piped_id": "x"}, "piped_id"),
    ("/applications", {"labels": ":dev"}, "labels"),
    ("/applications", {"cursor": "WyJhIl0"}, "cursor"),  # one value where two are expected
    ("/pipeds", {"limit": 1000}, "limit"),
]


@pytest.mark.parametrize(("path", "params", "field"), QUERY_CASES)
def test_it_refuses_bad_list_parameters(apis, deployment, path, params, field):
    response = apis["rw"].get(path, **params)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert field in response.json()["detail"] or "cursor" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/applications/{uuid}",
        "/applications/not-a-uuid",
        "/deployments/{uuid}",
        "/deployments/not-a-uuid",
        "/deployments/{dep}/stages/no-such-stage/logs",
        "/commands/{uuid}",
        "/commands/not-a-uuid",
        "/pipeds/{uuid}",
        "/pipeds/..%2F..%2Fetc",
    ],
)
def test_it_answers_404_for_unknown_ids(apis, deployment, path):
    response = apis["rw"].get(path.format(uuid=uuid.uuid4(), dep=deployment.id))
    assert response.status_code == 404
    detail = response.json()["detail"]
    # `%2F` decodes to `/`: that path leaves the API's routes, and the catch-all under /api/ answers.
    assert "not found" in detail if "%2F" not in path else detail.startswith("No API endpoint at ")


@pytest.mark.parametrize(
    "path",
    [
        "/applications/{uuid}/sync",
        "/applications/{uuid}/disable",
        "/deployments/{uuid}/cancel",
        "/deployments/{dep}/stages/nope/approve",
        "/deployments/{dep}/stages/nope/skip",
    ],
)
def test_it_answers_404_to_writes_on_unknown_ids_and_writes_nothing(apis, deployment, path):
    before = snapshot()
    response = apis["rw"].post(path.format(uuid=uuid.uuid4(), dep=deployment.id))
    assert response.status_code == 404
    assert snapshot() == before


def test_a_deleted_application_is_gone(apis, application):
    assert apis["rw"].call("DELETE", f"/applications/{application.id}").status_code == 204
    assert apis["rw"].get(f"/applications/{application.id}").status_code == 404
    assert apis["rw"].get("/applications").json()["items"] == []
    assert apis["rw"].call("DELETE", f"/applications/{application.id}").status_code == 404


def test_it_answers_409_when_the_state_does_not_allow_the_action(apis, application, deployment):
    done = make_deployment(application, status=DeploymentStatus.SUCCESS)
    before = snapshot()
    assert apis["rw"].post(f"/deployments/{done.id}/cancel").status_code == 409
    # stage-0 is a finished rollout stage: neither approvable nor skippable.
    assert apis["rw"].post(f"/deployments/{deployment.id}/stages/stage-0/approve").status_code == 409
    response = apis["rw"].post(f"/deployments/{deployment.id}/stages/approval/skip")
    assert response.status_code == 409
    assert "cannot be skipped" in response.json()["detail"]
    assert snapshot() == before
    apis["rw"].post(f"/applications/{application.id}/disable")
    after_disable = snapshot()
    response = apis["rw"].post(f"/applications/{application.id}/sync")
    assert response.status_code == 409
    assert "disabled" in response.json()["detail"]
    assert snapshot() == after_disable
