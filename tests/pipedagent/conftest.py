"""Fixtures for the piped: a JSON client speaking PIPED-TOKEN, a second piped, Git repositories, moto setup."""

import base64
import json
import os
import textwrap
from datetime import UTC, datetime

import pytest
from django.test import Client

from apps.applications.services import add_application
from apps.pipedagent import worker
from apps.pipedagent.client import ApiError, PipedApiClient, _json_default
from apps.pipedagent.config import Knobs, PipedRuntimeConfig
from apps.pipedagent.demo_support import ManifestsRepo, render_app
from apps.pipedagent.platforms.ecs.emulator import create_ecs_environment
from apps.pipedagent.reconcile import next_actions
from apps.pipedagent.runtime import Runtime
from apps.pipedagent.scheduler import Scheduler
from apps.pipeds.services import register_piped
from apps.pipelineconfig import load_piped_config
from apps.projects.principal import system_principal
from tests.components import MotoServer, require

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


# --- The piped, in this process --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server():
    """The shared moto server, told that services run the tasks they ask for.

    moto keeps every new ECS service's desiredCount as pendingCount forever unless MOTO_ECS_SERVICE_RUNNING
    says how many tasks run; the services of these tests ask for 2. A gap of the emulator, handled here (the
    piped's stability check really waits for no pending tasks).
    """
    previous = os.environ.get("MOTO_ECS_SERVICE_RUNNING")
    os.environ["MOTO_ECS_SERVICE_RUNNING"] = "2"
    try:
        server = MotoServer()
    except (OSError, RuntimeError, TimeoutError) as exc:  # pragma: no cover - depends on the machine
        require(False, f"moto server ({exc})")
    finally:
        if previous is None:
            os.environ.pop("MOTO_ECS_SERVICE_RUNNING", None)
        else:
            os.environ["MOTO_ECS_SERVICE_RUNNING"] = previous
    yield server
    server.stop()


class InProcessClient(PipedApiClient):
    """The piped's API client talking to the control plane of this process through Django's test client:
    the real piped API, authentication and database — only the socket is left out."""

    def __init__(self, project_id: str, piped_id: str, key: str):
        super().__init__("http://testserver/api/piped/v1", project_id, piped_id, key)

    def call(self, method: str, path: str, body=None, *, attempts: int = 3):
        client = Client()
        url = f"/api/piped/v1{path}"
        headers = {"Authorization": self._header}
        if method == "GET":
            response = client.get(url, headers=headers)
        else:
            payload = json.dumps(body if body is not None else {}, default=_json_default)
            response = client.generic(
                method, url, data=payload, content_type="application/json", headers=headers
            )
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", "")
            except ValueError:
                detail = response.content.decode()[:300]
            raise ApiError(response.status_code, detail, path)
        return response.json() if response.content else None


def piped_config_text(
    project_id: str, piped_id, key: str, remote: str, *, api: str = "http://testserver"
) -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: pipecd.dev/v1beta1
        kind: Piped
        spec:
          projectID: {project_id}
          pipedID: {piped_id}
          pipedKeyData: {base64.b64encode(key.encode()).decode()}
          apiAddress: {api}
          syncInterval: 1m
          repositories:
            - repoId: manifests
              remote: {remote}
              branch: main
          platformProviders:
            - name: ECS
              type: ECS
              config:
                region: us-east-1
        """
    )


TEST_KNOBS = Knobs(
    command_poll=0.2,
    heartbeat=5,
    dispatch=0.2,
    claim_lease=5,
    log_flush=0.2,
    stage_tick=0.2,
    app_refresh=60,
    git_timeout=20,
    git_retry_base=0.5,
    git_retry_max=4,
    worker_concurrency=2,
    ecs_stable_timeout=20,
    ecs_poll=0.1,
    aws_max_attempts=1,
)


class Agent:
    """One piped's scheduler and worker, driven step by step by a test (no threads, no Celery)."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.client = runtime.client
        self.dispatched: list[tuple] = []
        runtime.dispatch_now = self._record
        self.scheduler = Scheduler(runtime)
        self.scheduler.refresh_apps()

    def _record(self, kind, deployment, stage_id=""):
        self.dispatched.append((kind, deployment["id"], stage_id))

    def poll_git(self, repo_id: str = "manifests") -> float:
        self.scheduler.refresh_apps()
        return self.scheduler.pollers[repo_id].poll_once()

    def poll_commands(self) -> None:
        self.scheduler.poll_commands()

    def step(self, deployment_id: str) -> dict:
        """Do once what the dispatcher and the workers would do next for this deployment."""
        deployment = self.client.get_deployment(deployment_id)
        for action in next_actions(deployment, datetime.now(UTC)):
            if action.kind == "plan":
                worker.plan_deployment(self.runtime, deployment_id)
            elif action.kind == "run":
                worker.run_stage(self.runtime, deployment_id, action.stage_id)
            else:
                worker.apply(self.runtime, deployment, action, dispatch=self._record)
        return self.client.get_deployment(deployment_id)

    def run(self, deployment_id: str, until, *, steps: int = 30) -> dict:
        deployment = self.client.get_deployment(deployment_id)
        for _ in range(steps):
            if until(deployment):
                return deployment
            deployment = self.step(deployment_id)
        assert until(deployment), (
            f"deployment stopped at {deployment['status']}: {deployment['status_reason']}"
        )
        return deployment


@pytest.fixture
def manifests(tmp_path) -> ManifestsRepo:
    return ManifestsRepo(tmp_path / "git").create()


@pytest.fixture
def make_agent(project, piped_and_key, manifests, tmp_path):
    """Build an in-process piped; call again to get a "restarted" one (fresh memory, same work dir)."""
    piped, key = piped_and_key

    def make(**knobs) -> Agent:
        text = piped_config_text(project.id, piped.id, key, manifests.remote)
        spec = load_piped_config("piped-config.yaml", text=text).spec
        config = PipedRuntimeConfig(
            spec=spec,
            api_url="http://testserver/api/piped/v1",
            key=key,
            work_dir=tmp_path / "work",
            knobs=Knobs(**{**TEST_KNOBS.__dict__, **knobs}),
            insecure=True,
        )
        runtime = Runtime(config)
        runtime.client = InProcessClient(project.id, str(piped.id), key)
        agent = Agent(runtime)
        agent.client.report_meta(
            version="test",
            repositories=config.repositories(),
            platform_providers=config.platform_providers(),
            config="",
        )
        return agent

    return make


APP_CONFIG = """\
apiVersion: pipecd.dev/v1beta1
kind: ECSApp
spec:
  name: {name}
  labels:
    env: dev
  input:
    serviceDefinitionFile: servicedef.yaml
    taskDefinitionFile: taskdef.yaml
    targetGroups:
      primary:
        targetGroupArn: {primary}
        containerName: app
        containerPort: 8080
{extra}"""


def app_files(values: dict, *, image_tag: str = "v1", name: str = "hello", extra: str = "") -> dict[str, str]:
    """The demo app with its own app.pipecd.yaml: `extra` is appended under `spec:` (pipeline, planner…)."""
    files = render_app(values, image_tag=image_tag)
    files["app.pipecd.yaml"] = APP_CONFIG.format(
        name=name,
        primary=values["PRIMARY_TARGET_GROUP_ARN"],
        extra=textwrap.indent(textwrap.dedent(extra), "  "),
    )
    return files


FAKE_VALUES = {
    "REGION": "us-east-1",
    "CLUSTER_ARN": "arn:aws:ecs:us-east-1:123456789012:cluster/none",
    "SUBNET_A": "subnet-a",
    "SUBNET_B": "subnet-b",
    "SECURITY_GROUP": "sg-a",
    "PRIMARY_TARGET_GROUP_ARN": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/p/1",
    "CANARY_TARGET_GROUP_ARN": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/c/2",
}


@pytest.fixture
def ecs_values(aws) -> dict:
    return create_ecs_environment(aws.endpoint)


def add_app(project, piped, *, name: str = "hello", path: str = "apps/hello"):
    return add_application(
        system_principal(project.id),
        project,
        name=name,
        piped_id=piped.id,
        platform_provider="ECS",
        repo_id="manifests",
        path=path,
    )
