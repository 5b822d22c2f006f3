"""Fixtures for the piped: a JSON client speaking PIPED-TOKEN, a second piped, Git repositories, moto setup."""

import json

import pytest
from django.test import Client

from apps.applications.services import add_application
from apps.pipeds.services import register_piped
from apps.projects.principal import system_principal

BASE = "/api/piped/v1"


class PipedClient:
    """A Django test client with `Authorization: PIPED-TOKEN project,piped,key` (or any header given)."""

    def __init__(self, project_id: str, piped_id, key: str, header: str | None = None):
        self.client = Client()
        self.header = header if header is not None else f"PIPED-TOKEN {project_id},{piped_id},{key}"

    def get(self, path: str, **params):
        return self.client.get(f"{BASE}{path}", params, headers={"Authorization": self.header})

    def post(self, path: str, body=None):
        return self.client.post(
            f"{BASE}{path}",
            data=json.dumps(body if body is not None else {}),
            content_type="application/json",
            headers={"Authorization": self.header},
        )


@pytest.fixture
def piped_client(project, piped_and_key):
    piped, key = piped_and_key
    return PipedClient(project.id, piped.id, key)


@pytest.fixture
def second_piped_and_key(project):
    return register_piped(system_principal(project.id), project, name="piped-2")


@pytest.fixture
def second_client(project, second_piped_and_key):
    piped, key = second_piped_and_key
    return PipedClient(project.id, piped.id, key)


@pytest.fixture
def foreign_piped_and_key(other_project):
    return register_piped(system_principal(other_project.id), other_project, name="piped-x")


@pytest.fixture
def second_application(project, second_piped_and_key):
    return add_application(
        system_principal(project.id),
        project,
        name="other-app",
        piped_id=second_piped_and_key[0].id,
        platform_provider="ECS",
        repo_id="manifests",
        path="apps/other",
    )


def new_deployment(client: PipedClient, app_id, *, commit: str = "a" * 40, key: str | None = None) -> dict:
    response = client.post(
        "/deployments",
        {
            "application_id": str(app_id),
            "trigger_kind": "ON_COMMIT",
            "trigger_key": key or f"ON_COMMIT:{commit}",
            "commit": {"hash": commit, "message": "Update image", "author": "dev", "branch": "main"},
        },
    )
    assert response.status_code in (200, 201), response.content
    return response.json()["deployment"]


def plan(client: PipedClient, deployment_id: str, stages: list[dict] | None = None) -> dict:
    stages = stages or [
        {"id": "stage-0", "name": "WAIT", "index": 0},
        {
            "id": "stage-1",
            "name": "WAIT_APPROVAL",
            "index": 1,
            "requires": ["stage-0"],
            "authorized_approvers": ["erin", "alice"],
            "min_approver_num": 2,
        },
        {"id": "rollback", "name": "ROLLBACK", "index": 2, "visible": False, "rollback": True},
    ]
    response = client.post(
        f"/deployments/{deployment_id}/planned",
        {
            "sync_strategy": "PIPELINE",
            "summary": "Sync progressively because of updating image app from v1 to v2",
            "versions": [{"name": "app", "version": "v2", "url": "registry/app:v2"}],
            "running_commit_hash": "b" * 40,
            "stages": stages,
        },
    )
    assert response.status_code == 200, response.content
    return response.json()
