"""Odd input the public API must answer with a clear 4xx, never a 500, on SQLite and MariaDB alike."""

import base64
import json
import uuid

import pytest

from apps.deployments.models import Command
from apps.pipeds.models import Piped

from .conftest import snapshot


def cursor_of(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def app_body(piped_id, **git_path):
    return {
        "name": "odd",
        "piped_id": str(piped_id),
        "platform_provider": "ecs-dev",
        "git_path": {"repo": {"id": "manifests"}, "path": "apps/odd", **git_path},
    }


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (
            "/applications",
            '{"name": "a\\ud800", "piped_id": "%s", "platform_provider": "p", '
            '"git_path": {"repo": {"id": "r"}, "path": "x"}}',
        ),
        (
            "/applications",
            '{"name": "odd", "piped_id": "%s", "platform_provider": "p", '
            '"git_path": {"repo": {"id": "r"}, "path": "x"}, "labels": {"\\udfff": "v"}}',
        ),
        ("/pipeds", '{"name": "\\ud83dx"}'),
    ],
    ids=["name", "label key", "piped name"],
)
def test_a_lone_surrogate_in_the_body_is_a_400_and_writes_nothing(apis, piped, path, raw):
    before = snapshot()
    response = apis["rw"].post(path, raw=raw % piped.id if "%s" in raw else raw)
    assert response.status_code == 400, response.content
    assert "not valid Unicode" in response.json()["detail"]
    assert snapshot() == before


def test_a_proper_surrogate_pair_is_just_an_emoji(apis, piped):
    raw = json.dumps({**app_body(piped.id), "name": "rocket \U0001f680"}, ensure_ascii=True)
    assert "\\ud83d" in raw
    response = apis["rw"].post("/applications", raw=raw)
    assert response.status_code == 201, response.content


def test_a_deeply_nested_body_is_a_clear_400(apis, deployment):
    response = apis["rw"].post(f"/deployments/{deployment.id}/cancel", raw="[" * 100_000 + "]" * 100_000)
    assert response.status_code == 400
    assert response.json()["detail"] == "The request body is nested too deeply."


@pytest.mark.parametrize(
    ("field", "git_path", "top"),
    [
        ("platform_provider", {}, {"platform_provider": "p" * 101}),
        ("git_path.repo.id", {"repo": {"id": "r" * 101}}, {}),
        ("git_path.path", {"path": "a/" * 251}, {}),
        ("git_path.config_filename", {"config_filename": "c" * 201}, {}),
    ],
    ids=["platform provider", "repo id", "path", "config filename"],
)
def test_text_longer_than_its_column_is_a_400_naming_the_field(apis, piped, field, git_path, top):
    before = snapshot()
    response = apis["rw"].post("/applications", {**app_body(piped.id, **git_path), **top})
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert "at most" in response.json()["detail"]
    assert snapshot() == before


def test_an_update_longer_than_its_column_is_a_400(apis, application):
    before = snapshot()
    response = apis["rw"].call("PATCH", f"/applications/{application.id}", {"platform_provider": "p" * 101})
    assert response.status_code == 400
    assert response.json()["field"] == "platform_provider"
    assert snapshot() == before


def test_text_at_the_column_limit_is_fine(apis, piped):
    body = app_body(piped.id, path="a" * 500, config_filename="c" * 200)
    body["platform_provider"] = "p" * 100
    body["git_path"]["repo"]["id"] = "r" * 100
    assert apis["rw"].post("/applications", body).status_code == 201


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("/deployments", ["9999-12-31T23:59:59-23:00", "{uuid}"]),  # past the largest date in UTC
        ("/deployments", ["2020-01-01T00:00:00", "{uuid}"]),  # no time zone
        ("/deployments", ["0001-01-01T00:00:00+14:00", "{uuid}"]),  # before the smallest date in UTC
        ("/applications", ["\ud800", "{uuid}"]),
        ("/pipeds", ["name\udc00", "{uuid}"]),
    ],
    ids=["date overflow", "naive date", "date underflow", "surrogate name", "surrogate piped name"],
)
def test_a_forged_cursor_is_a_400(apis, deployment, path, values):
    forged = [v.replace("{uuid}", str(uuid.uuid4())) for v in values]
    response = apis["rw"].get(path, cursor=cursor_of(forged))
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "cursor"


def test_a_huge_cursor_is_a_400(apis, deployment):
    response = apis["rw"].get("/deployments", cursor="A" * 100_000)
    assert response.status_code == 400
    assert response.json()["field"] == "cursor"


def test_a_deeply_nested_cursor_is_a_400(apis, deployment):
    nested = base64.urlsafe_b64encode(b"[" * 2000 + b"]" * 2000).decode()
    response = apis["rw"].get("/applications", cursor=nested)
    assert response.status_code == 400
    assert response.json()["field"] == "cursor"


def test_cursors_of_long_unicode_names_still_work(apis, piped):
    for i in range(3):
        body = app_body(piped.id, path=f"apps/{i}")
        body["name"] = f"{i}" + "\U0001f680" * 99
        assert apis["rw"].post("/applications", body).status_code == 201
    first = apis["rw"].get("/applications", limit=1).json()
    second = apis["rw"].get("/applications", limit=1, cursor=first["next_cursor"])
    assert second.status_code == 200, second.content
    assert second.json()["items"][0]["name"].startswith("1")


@pytest.mark.parametrize("action", ["approve", "skip"])
@pytest.mark.parametrize("variant", ["APPROVAL", "Approval", "approval%20", "STAGE-2"])
def test_a_stage_id_in_another_case_is_not_found_and_records_no_command(apis, deployment, action, variant):
    # MariaDB's collation would find `approval` for `APPROVAL`; the command would then name a stage the
    # piped does not know.
    before = Command.objects.count()
    response = apis["rw"].post(f"/deployments/{deployment.id}/stages/{variant}/{action}")
    assert response.status_code == 404, response.content
    assert Command.objects.count() == before


def test_the_logs_of_a_stage_need_its_exact_id(apis, deployment):
    assert apis["rw"].get(f"/deployments/{deployment.id}/stages/STAGE-2/logs").status_code == 404
    assert apis["rw"].get(f"/deployments/{deployment.id}/stages/stage-2/logs").status_code == 200


def test_the_exact_stage_id_still_approves(apis, deployment):
    response = apis["rw"].post(f"/deployments/{deployment.id}/stages/approval/approve")
    assert response.status_code == 200
    assert Command.objects.get(pk=response.json()["command_id"]).stage_id == "approval"


def test_a_registered_piped_key_is_not_cached(apis):
    response = apis["rw"].post("/pipeds", {"name": "fresh"})
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"


def test_credentials_in_a_reported_remote_are_not_shown(apis, piped):
    Piped.objects.filter(pk=piped.pk).update(
        repositories=[
            {"repo_id": "a", "remote": "https://deploy:s3cr3t-token@git.example.com/m.git", "branch": "main"},
            {"repo_id": "b", "remote": "https://ghp_abcdef123456@github.com/o/m.git", "branch": "main"},
            {"repo_id": "c", "remote": "git@github.com:o/m.git", "branch": "main"},
        ]
    )
    for response in (apis["ro"].get(f"/pipeds/{piped.id}"), apis["ro"].get("/pipeds")):
        text = response.content.decode()
        assert "s3cr3t-token" not in text and "ghp_abcdef123456" not in text
    remotes = [r["remote"] for r in apis["ro"].get(f"/pipeds/{piped.id}").json()["repositories"]]
    assert remotes == [
        "https://deploy:******@git.example.com/m.git",
        "https://******@github.com/o/m.git",
        "git@github.com:o/m.git",
    ]


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here", "/api/v1/applications/x/y/z", "/api/piped/v1/nope", "/api/v2/"]
)
def test_an_unknown_api_path_is_a_json_404(apis, path):
    response = apis["rw"].get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": f"No API endpoint at {path}.", "field": None}
