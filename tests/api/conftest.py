"""Fixtures for the public API: keys per persona, a running deployment with stages, a JSON client."""

import json
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.applications.models import Application
from apps.deployments.choices import CommandType, DeploymentStatus, LogSeverity, StageStatus
from apps.deployments.models import Command, Deployment, Stage, StageLogBlock
from apps.pipeds.models import Piped, PipedKey
from apps.projects.choices import APIKeyRole
from apps.projects.models import APIKey, AuditEvent, UserGroup
from apps.projects.principal import system_principal
from apps.projects.services import create_api_key, set_api_key_disabled

BASE = "/api/v1"


class API:
    """A Django test client speaking JSON with an `Authorization: API-KEY …` header (or none)."""

    def __init__(self, key: str | None = None, header: str | None = None):
        self.client = Client()
        self.header = header if header is not None else (f"API-KEY {key}" if key else None)

    def call(self, method: str, path: str, body=None, *, raw: bytes | str | None = None, **params):
        headers = {"Authorization": self.header} if self.header is not None else {}
        url = path if path.startswith("/api/") else f"{BASE}{path}"
        if method == "GET":
            return self.client.get(url, params, headers=headers)
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        return getattr(self.client, method.lower())(
            url, data=data, content_type="application/json", headers=headers
        )

    def get(self, path: str, **params):
        return self.call("GET", path, **params)

    def post(self, path: str, body=None, **kwargs):
        return self.call("POST", path, body, **kwargs)


@pytest.fixture
def keys(project, other_project):
    """Raw keys by persona: a READ_WRITE and a READ_ONLY key of `demo`, a key of `other`, a disabled one."""
    rw = create_api_key(system_principal(project.id), project, name="ci", role=APIKeyRole.READ_WRITE)[1]
    ro = create_api_key(system_principal(project.id), project, name="dashboard", role=APIKeyRole.READ_ONLY)[1]
    other = create_api_key(
        system_principal(other_project.id), other_project, name="ci", role=APIKeyRole.READ_WRITE
    )[1]
    disabled_record, disabled = create_api_key(
        system_principal(project.id), project, name="retired", role=APIKeyRole.READ_WRITE
    )
    set_api_key_disabled(system_principal(project.id), project, disabled_record.id, True)
    key_id = rw.split(".")[0]
    return {
        "rw": rw,
        "ro": ro,
        "other": other,
        "disabled": disabled,
        "wrong_secret": f"{key_id}.{'x' * 43}",
        "unknown_id": f"{'0' * 16}.{rw.split('.', 1)[1]}",
    }


@pytest.fixture
def apis(keys):
    return {
        "rw": API(keys["rw"]),
        "ro": API(keys["ro"]),
        "other": API(keys["other"]),
        "disabled": API(keys["disabled"]),
        "wrong_secret": API(keys["wrong_secret"]),
        "unknown_id": API(keys["unknown_id"]),
        "bearer": API(header=f"Bearer {keys['rw']}"),
        "no_header": API(),
    }


def make_deployment(application, *, status=DeploymentStatus.RUNNING, created_at=None, labels=None, **fields):
    deployment = Deployment.objects.create(
        project_id=application.project_id,
        application=application,
        piped_id=application.piped_id,
        application_name=application.name,
        kind=application.kind,
        platform_provider=application.platform_provider,
        labels=application.labels if labels is None else labels,
        commit_hash=fields.pop("commit_hash", uuid.uuid4().hex + "abcdefgh"),
        commit_message="Bump the image to v2\n\nLonger description.",
        commit_author="dev@example.com",
        commit_branch="main",
        commit_url="https://git.example.com/manifests/commit/1",
        status=status,
        **fields,
    )
    if created_at is not None:
        Deployment.objects.filter(pk=deployment.pk).update(created_at=created_at)
        deployment.refresh_from_db()
    return deployment


@pytest.fixture
def deployment(application):
    """A running canary: synced, waiting for approval, a WAIT running beside it, then the rollout."""
    deployment = make_deployment(application, versions=[{"name": "app", "version": "v2"}])
    Stage.objects.create(
        deployment=deployment,
        stage_id="stage-0",
        name="ECS_CANARY_ROLLOUT",
        index=0,
        status=StageStatus.SUCCESS,
    )
    Stage.objects.create(
        deployment=deployment,
        stage_id="approval",
        name="WAIT_APPROVAL",
        index=1,
        status=StageStatus.RUNNING,
        requires=["stage-0"],
    )
    wait = Stage.objects.create(
        deployment=deployment, stage_id="stage-2", name="WAIT", index=2, status=StageStatus.RUNNING
    )
    Stage.objects.create(deployment=deployment, stage_id="stage-3", name="ECS_PRIMARY_ROLLOUT", index=3)
    now = timezone.now()
    for i, text in enumerate(["Waiting 5m", "Still waiting", "Done waiting"]):
        StageLogBlock.objects.create(
            stage=wait, index=i, log=text, severity=LogSeverity.INFO, created_at=now + timedelta(seconds=i)
        )
    return deployment


@pytest.fixture
def command(deployment):
    return Command.objects.create(
        project_id=deployment.project_id,
        piped_id=deployment.piped_id,
        application_id=deployment.application_id,
        deployment=deployment,
        type=CommandType.CANCEL_DEPLOYMENT,
        commander="erin",
    )


TRACKED = (
    Application,
    Deployment,
    Stage,
    StageLogBlock,
    Command,
    Piped,
    PipedKey,
    APIKey,
    UserGroup,
    AuditEvent,
)


def snapshot() -> dict:
    """Everything a refused request must leave as it was (API keys' last-used time excepted)."""
    state: dict = {model.__name__: model.objects.count() for model in TRACKED}
    state["applications"] = sorted(
        (str(a["id"]), a["name"], a["disabled"], a["deleted"], json.dumps(a["labels"], sort_keys=True))
        for a in Application.objects.values("id", "name", "disabled", "deleted", "labels")
    )
    state["deployments"] = sorted((str(i), s) for i, s in Deployment.objects.values_list("id", "status"))
    state["pipeds"] = sorted(
        (str(i), n, d) for i, n, d in Piped.objects.values_list("id", "name", "disabled")
    )
    return state
