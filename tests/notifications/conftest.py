"""Fixtures for notifications: real HTTP receivers on 127.0.0.1, and a piped talking to a live control plane.

The receivers are small threaded `http.server`s started by the test; they record every request and answer
as scripted (a status list, or hang until the test ends). The piped is a real `Runtime` whose API client
speaks HTTP to the control plane on a real port (the e2e tests' live server), so the notifier's sender
threads and the test share the database exactly as a piped and a control plane do.
"""

from __future__ import annotations

import base64
import json
import textwrap
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from apps.pipedagent.config import Knobs, PipedRuntimeConfig
from apps.pipedagent.runtime import Runtime
from apps.pipelineconfig import load_piped_config
from tests.e2e.conftest import control_plane  # noqa: F401  (the live control plane, session-wide)
from tests.pipedagent.conftest import (  # noqa: F401  (fixtures used here)
    TEST_KNOBS,
    Agent,
    PipedClient,
    manifests,
    piped_client,
    second_client,
    second_piped_and_key,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED = Path(__file__).resolve().parent.parent / "pipelineconfig" / "fixtures" / "seed"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    answered: bool = False

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """`answers`: statuses (or (status, body, headers) tuples) for the first requests, then `default`."""

    answers: list = field(default_factory=list)
    default: tuple = (200, b"ok", {})
    hang: bool = False

    def __post_init__(self) -> None:
        self.requests: list[Request] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else Nagle and delayed ACKs add 40 ms to every answer

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    "POST",
                    self.path,
                    {k: v for k, v in self.headers.items()},
                    self.rfile.read(length),
                    time.monotonic(),
                )
                with receiver._lock:
                    receiver.requests.append(request)
                    index = len(receiver.requests) - 1
                if receiver.hang:
                    receiver.release.wait(120)
                status, body, headers = receiver._answer(index)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header(
                        "Content-Type", "application/json" if body[:1] in b"{[" else "text/plain"
                    )
                    self.end_headers()
                    self.wfile.write(body)
                    request.answered = True
                except OSError:
                    pass  # the client gave up (its timeout) before we answered

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _answer(self, index: int) -> tuple[int, bytes, dict]:
        answer = self.answers[index] if index < len(self.answers) else self.default
        if isinstance(answer, int):
            return answer, b"answered %d" % answer, {}
        status, body, *rest = answer
        return status, body if isinstance(body, bytes) else json.dumps(body).encode(), rest[0] if rest else {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def of_type(self, event_type: str) -> list[Request]:
        return [r for r in self.requests if r.headers.get("X-PipePortal-Event") == event_type]

    def types(self) -> list[str]:
        return [r.headers.get("X-PipePortal-Event", "") for r in self.requests]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.url} got {len(self.requests)} requests, expected {count}")
            time.sleep(0.02)
        return self.requests

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    """`receivers(answers=[500, 500, 200], hang=False)` -> a started Receiver, stopped after the test."""
    started: list[Receiver] = []

    def make(answers=None, *, hang: bool = False, default=(200, b"ok", {})) -> Receiver:
        receiver = Receiver(list(answers or []), default, hang)
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def fast_delivery(settings):
    """Short timeouts and backoff, so that retries happen within a test."""
    settings.PIPED_NOTIFY_TIMEOUT_SECONDS = 1.0
    settings.PIPED_NOTIFY_RETRY_BASE_SECONDS = 0.05
    settings.PIPED_NOTIFY_RETRY_MAX_SECONDS = 0.2
    settings.PIPED_NOTIFY_MAX_ATTEMPTS = 4
    settings.PIPED_NOTIFY_FLUSH_SECONDS = 0.1
    settings.PIPED_NOTIFY_SHUTDOWN_SECONDS = 3.0
    return settings


def piped_config(project_id, piped_id, key: str, api: str, *, notifications: str, remote: str = "") -> str:
    repositories = (
        f"  repositories:\n    - repoId: manifests\n      remote: {remote}\n      branch: main\n"
        if remote
        else ""
    )
    return (
        textwrap.dedent(
            f"""\
            apiVersion: pipecd.dev/v1beta1
            kind: Piped
            spec:
              projectID: {project_id}
              pipedID: {piped_id}
              pipedKeyData: {base64.b64encode(key.encode()).decode()}
              apiAddress: {api}
              webAddress: https://portal.example.test
              syncInterval: 1m
              platformProviders:
                - name: ECS
                  type: ECS
                  config:
                    region: us-east-1
            """
        )
        + repositories
        + textwrap.indent(textwrap.dedent(notifications), "  ")
    )


@pytest.fixture
def make_runtime(project, piped_and_key, control_plane, fast_delivery, tmp_path):  # noqa: F811
    """A piped Runtime against the live control plane, with the given `notifications:` block."""
    piped, key = piped_and_key
    made: list[Runtime] = []

    def make(notifications: str = "", *, spec=None, remote: str = "", **knobs) -> Runtime:
        if spec is None:
            text = piped_config(
                project.id, piped.id, key, control_plane.url, notifications=notifications, remote=remote
            )
            spec = load_piped_config("piped-config.yaml", text=text).spec
        config = PipedRuntimeConfig(
            spec=spec,
            api_url=f"{control_plane.url}/api/piped/v1",
            key=key,
            work_dir=tmp_path / "work",
            knobs=Knobs(**{**TEST_KNOBS.__dict__, **knobs}),
            insecure=True,
        )
        runtime = Runtime(config)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        notifier = getattr(runtime, "_notifier", None)
        if notifier is not None:
            notifier.close(timeout=1)
        # Close this thread's keep-alive connection, so that the live server's request thread ends now
        # rather than at the end of the session.
        session = getattr(runtime.client._local, "session", None)
        if session is not None:
            session.close()


@pytest.fixture
def make_agent(make_runtime, manifests):  # noqa: F811
    """An in-process piped driven step by step (tests/pipedagent's Agent) with notifications configured."""

    def make(notifications: str, **knobs) -> Agent:
        runtime = make_runtime(notifications, remote=manifests.remote, **knobs)
        agent = Agent(runtime)
        agent.client.report_meta(
            version="test",
            repositories=runtime.config.repositories(),
            platform_providers=runtime.config.platform_providers(),
            config="",
        )
        return agent

    return make


def webhook_route(url: str, *, secret: str = "", extra: str = "", name: str = "hook") -> str:
    """A `notifications:` block sending every event to one webhook receiver."""
    signing = f"\n        signingSecret: {secret}" if secret else ""
    return f"""\
notifications:
  routes:
    - name: everything
      receiver: {name}{extra}
  receivers:
    - name: {name}
      webhook:
        url: {url}{signing}
"""
