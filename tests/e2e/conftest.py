"""End-to-end fixtures: the control plane on a real port, the piped as separate processes, Git, moto, Redis.

The control plane is Django's live server thread (pytest-django's LiveServer helper). With the in-memory
SQLite test database, every request thread shares one connection, so requests are then served one at a
time (keep-alive still works); on MariaDB each thread has its own connection and they run in parallel.
Every piped API request is recorded, so a test can check the order in which the piped reported things.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.core.servers.basehttp import ThreadedWSGIServer

from apps.pipedagent.demo_support import ManifestsRepo
from apps.pipedagent.platforms.ecs.emulator import create_ecs_environment
from tests.components import TEST_OUTPUT, MotoServer, require
from tests.pipedagent.conftest import add_app, app_files  # noqa: F401  (re-exported for the tests)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
PIPED_API = "/api/piped/v1/"


class RecordingServer(ThreadedWSGIServer):
    """Records every piped API request (method, path, JSON body); serialises requests on shared SQLite."""

    serialise = False

    def set_app(self, application):
        lock = threading.Lock()
        self.requests: list[tuple[str, str, dict]] = []

        def app(environ, start_response):
            path = environ.get("PATH_INFO", "")
            if path.startswith(PIPED_API) and environ.get("REQUEST_METHOD") == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(length) if length else b""
                environ["wsgi.input"] = io.BytesIO(body)
                try:
                    parsed = json.loads(body or b"{}")
                except ValueError:
                    parsed = {}
                self.requests.append(("POST", path[len(PIPED_API) - 1 :], parsed))
            if self.serialise:
                with lock:
                    return application(environ, start_response)
            return application(environ, start_response)

        super().set_app(app)


class SerialRecordingServer(RecordingServer):
    serialise = True


@pytest.fixture(scope="session")
def control_plane(django_db_setup, django_db_blocker):
    from pytest_django.live_server_helper import LiveServer

    with django_db_blocker.unblock():
        server = LiveServer("127.0.0.1:0", start=False)
        server.thread.server_class = (
            SerialRecordingServer if server.thread.connections_override else RecordingServer
        )
        server.start()
    yield server
    server.stop()


@pytest.fixture
def recorded(control_plane):
    """The piped API requests of this test (POSTs, in arrival order)."""
    requests = control_plane.thread.httpd.requests
    requests.clear()
    return requests


@pytest.fixture(scope="session")
def moto_server():
    """As in tests/pipedagent: moto is told that services run the 2 tasks they ask for."""
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


@pytest.fixture
def ecs_values(aws) -> dict:
    return create_ecs_environment(aws.endpoint)


@pytest.fixture
def manifests(tmp_path) -> ManifestsRepo:
    return ManifestsRepo(tmp_path / "git").create()


# Short ticks so that the suite stays fast; the defaults are documented in docs/settings.md.
FAST = {
    "PIPED_COMMAND_POLL_SECONDS": "0.3",
    "PIPED_HEARTBEAT_SECONDS": "2",
    "PIPED_DISPATCH_SECONDS": "0.3",
    "PIPED_CLAIM_LEASE_SECONDS": "3",
    "PIPED_LOG_FLUSH_SECONDS": "0.2",
    "PIPED_STAGE_TICK_SECONDS": "0.3",
    "PIPED_ECS_POLL_SECONDS": "0.2",
    "PIPED_ECS_STABLE_TIMEOUT_SECONDS": "30",
    "PIPED_GIT_RETRY_BASE_SECONDS": "0.5",
    "PIPED_GIT_RETRY_MAX_SECONDS": "4",
    "PIPED_AWS_MAX_ATTEMPTS": "1",
    "PIPED_WORKER_CONCURRENCY": "4",
}


class PipedProcess:
    """`manage.py piped` as a child process, with its output in test-output/."""

    def __init__(self, config_file: Path, env: dict, log_file: Path, args: tuple = ()):
        self.config_file, self.env, self.log_file, self.args = config_file, env, log_file, args
        self.proc: subprocess.Popen | None = None

    def start(self) -> PipedProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.log_file, "a")  # noqa: SIM115 - closed when the process is stopped
        handle.write(f"--- start {' '.join(self.args)}\n")
        handle.flush()
        self._handle = handle
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "piped",
                "--config-file",
                str(self.config_file),
                "--insecure",
                *self.args,
            ],
            cwd=BASE_DIR,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # Where it is stuck goes to its log (every thread's stack) before it is killed.
                self.proc.send_signal(signal.SIGUSR1)
                time.sleep(1)
                self.proc.kill()
                self.proc.wait(5)
                print(
                    f"--- the piped did not stop within {timeout}s of SIGTERM; its log ends:\n{self.log()[-6000:]}"
                )
        if getattr(self, "_handle", None):
            self._handle.close()
        return self.proc.returncode if self.proc else None

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""


@pytest.fixture
def piped_env(tmp_path, aws):
    """The piped's environment: no database it could reach, no Django secrets, the emulator's endpoint."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIPED_", "SECRET_KEY", "PIPEPORTAL_KEY_HASH"))
    }
    env.pop("DEBUG", None)
    env.update(FAST)
    env.update(
        {
            "DATABASE_URL": "mysql://nobody:nothing@127.0.0.1:9/nowhere",
            "AWS_ENDPOINT_URL": aws.endpoint,
            "PIPED_WORK_DIR": str(tmp_path / "piped-work"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def start_piped(request, project, piped_and_key, control_plane, manifests, piped_env, tmp_path):
    """Start (and later stop) piped processes for the test's piped: `start_piped(*args, **env)`."""
    piped, key = piped_and_key
    config = tmp_path / "piped-config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: pipecd.dev/v1beta1
            kind: Piped
            spec:
              projectID: {project.id}
              pipedID: {piped.id}
              pipedKeyData: {base64.b64encode(key.encode()).decode()}
              apiAddress: {control_plane.url}
              syncInterval: 1m
              repositories:
                - repoId: manifests
                  remote: {manifests.remote}
                  branch: main
              platformProviders:
                - name: ECS
                  type: ECS
                  config:
                    region: us-east-1
            """
        )
    )
    started: list[PipedProcess] = []
    log_file = TEST_OUTPUT / "piped" / f"{request.node.name}.log"
    if log_file.exists():
        log_file.unlink()

    def start(*args: str, **env: str) -> PipedProcess:
        process = PipedProcess(config, {**piped_env, **env}, log_file, args).start()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc and process.proc.poll() is None:
            process.proc.send_signal(signal.SIGTERM)
    for process in started:
        process.stop()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05, message: str = ""):
    """Poll until `predicate()` is truthy; answers its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)
