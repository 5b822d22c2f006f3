"""The piped's side of the piped API: one method per call, JSON over HTTPS with the PIPED-TOKEN header.

Connection errors and 5xx answers are retried a few times with a short pause (the control plane restarts,
a load balancer hiccups); 4xx answers are raised at once as `ApiError` with the control plane's message.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

logger = logging.getLogger(__name__)


def _stage_path(deployment_id: str, stage_id: str, action: str) -> str:
    """A stage's call: its id is the config's, so anything URL-special in it (`/`, `?`, `#`, spaces) is quoted."""
    return f"/deployments/{deployment_id}/stages/{quote(stage_id, safe='')}/{action}"


class ApiError(Exception):
    def __init__(self, status: int, detail: str, path: str = ""):
        super().__init__(f"{status} {detail}" + (f" ({path})" if path else ""))
        self.status = status
        self.detail = detail
        self.path = path

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def unauthorized(self) -> bool:
        return self.status == 401


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


class PipedApiClient:
    """Thread-safe: each thread has its own HTTP session (connection pool)."""

    # Set by the runtime: `(app_id, status, short_reason, reason, send)` wraps every sync-state report, so
    # notifications see changes of the sync state (it must call `send()`).
    around_sync_state_report = None

    def __init__(self, base_url: str, project_id: str, piped_id: str, key: str, *, timeout: float = 15.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._header = f"PIPED-TOKEN {project_id},{piped_id},{key}"
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update({"Authorization": self._header, "Content-Type": "application/json"})
            # The environment's proxy and CA bundle, read once: requests would read the whole environment
            # again on every call (and a ~/.netrc entry must never replace the PIPED-TOKEN header).
            session.proxies = requests.utils.get_environ_proxies(self.base_url)
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                session.verify = bundle
            session.trust_env = False
            self._local.session = session
        return session

    def call(self, method: str, path: str, body: dict | None = None, *, attempts: int = 3) -> Any:
        url = f"{self.base_url}{path}"
        data = json.dumps(body, default=_json_default) if body is not None else None
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                response = self._session().request(method, url, data=data, timeout=self.timeout)
            except requests.RequestException as exc:
                last = exc
                time.sleep(min(0.2 * 2**attempt, 2.0))
                continue
            if response.status_code >= 500:
                last = ApiError(response.status_code, response.text[:300], path)
                time.sleep(min(0.2 * 2**attempt, 2.0))
                continue
            if response.status_code >= 400:
                try:
                    detail = response.json().get("detail") or response.reason
                except ValueError:
                    detail = response.text[:300] or response.reason
                raise ApiError(response.status_code, str(detail), path)
            return response.json() if response.content else None
        if isinstance(last, ApiError):
            raise last
        raise ApiError(0, f"the control plane did not answer: {last}", path)

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: dict | None = None) -> Any:
        return self.call("POST", path, body or {})

    # --- The piped itself ---

    def report_stat(self, *, stopping: bool = False) -> None:
        # Saying goodbye is tried once: a control plane that is gone should not hold the shutdown.
        self.call("POST", "/stat", {"stopping": stopping}, attempts=1 if stopping else 3)

    def report_meta(self, *, version: str, repositories: list, platform_providers: list, config: str) -> dict:
        return self.post(
            "/meta",
            {
                "version": version,
                "repositories": repositories,
                "platform_providers": platform_providers,
                "config": config,
            },
        )

    def report_repository_status(self, statuses: dict[str, dict]) -> None:
        self.post("/repositories/status", {"repositories": statuses})

    def report_unregistered_apps(self, repo_ids: list[str], apps: list[dict]) -> None:
        self.post("/unregistered-apps", {"repo_ids": repo_ids, "apps": apps})

    # --- Commands ---

    def poll_commands(self) -> dict:
        return self.get("/commands")

    def report_command_handled(self, command_id: str, status: str, result: dict | None = None) -> None:
        self.post(f"/commands/{command_id}/handled", {"status": status, "result": result or {}})

    # --- Applications ---

    def list_applications(self) -> list[dict]:
        return self.get("/applications")["applications"]

    def report_sync_state(self, app_id: str, status: str, short_reason: str = "", reason: str = "") -> None:
        def send() -> None:
            self.post(
                f"/applications/{app_id}/sync-state",
                {"status": status, "short_reason": short_reason, "reason": reason},
            )

        if self.around_sync_state_report is None:
            send()
        else:
            self.around_sync_state_report(app_id, status, short_reason, reason, send)

    def report_app_config(self, app_id: str, *, name: str, labels: dict, description: str) -> bool:
        answer = self.post(
            f"/applications/{app_id}/config", {"name": name, "labels": labels, "description": description}
        )
        return bool(answer and answer.get("changed"))

    def most_recent_successful_deployment(self, app_id: str) -> dict | None:
        return self.get(f"/applications/{app_id}/most-recent-successful-deployment")["deployment"]

    # --- Deployments ---

    def create_deployment(self, **body: Any) -> tuple[dict, bool]:
        answer = self.post("/deployments", body)
        return answer["deployment"], answer["created"]

    def list_not_completed_deployments(self) -> list[dict]:
        return self.get("/deployments")["deployments"]

    def get_deployment(self, deployment_id: str) -> dict:
        return self.get(f"/deployments/{deployment_id}")

    def report_planned(self, deployment_id: str, **body: Any) -> dict:
        return self.post(f"/deployments/{deployment_id}/planned", body)

    def report_deployment_status(self, deployment_id: str, status: str, reason: str = "") -> str:
        return self.post(f"/deployments/{deployment_id}/status", {"status": status, "reason": reason})[
            "status"
        ]

    def save_deployment_metadata(self, deployment_id: str, metadata: dict) -> dict:
        return self.post(f"/deployments/{deployment_id}/metadata", {"metadata": metadata})["metadata"]

    def report_stage_status(self, deployment_id: str, stage_id: str, status: str, reason: str = "") -> str:
        return self.post(
            _stage_path(deployment_id, stage_id, "status"), {"status": status, "reason": reason}
        )["status"]

    def save_stage_metadata(self, deployment_id: str, stage_id: str, metadata: dict) -> dict:
        return self.post(_stage_path(deployment_id, stage_id, "metadata"), {"metadata": metadata})["metadata"]

    def report_stage_logs(self, deployment_id: str, stage_id: str, blocks: list[dict]) -> None:
        self.post(_stage_path(deployment_id, stage_id, "logs"), {"blocks": blocks})

    def claim_stage(self, deployment_id: str, stage_id: str, worker_id: str, lease: float) -> dict:
        return self.post(
            _stage_path(deployment_id, stage_id, "claim"),
            {"worker_id": worker_id, "lease_seconds": lease},
        )

    def start_stage(self, deployment_id: str, stage_id: str, worker_id: str, lease: float) -> dict:
        """Claim the stage and mark it RUNNING if it may run now; with the deployment as it is then."""
        return self.post(
            _stage_path(deployment_id, stage_id, "start"),
            {"worker_id": worker_id, "lease_seconds": lease},
        )

    def report_stage_step(self, deployment_id: str, stage_id: str, *, worker_id: str, **body: Any) -> dict:
        """A step's log blocks, metadata, status and claim release (and the next stage's start) in one call:
        see docs/piped.md for the fields."""
        return self.post(_stage_path(deployment_id, stage_id, "report"), {"worker_id": worker_id, **body})

    def renew_stage_claim(self, deployment_id: str, stage_id: str, worker_id: str, lease: float) -> dict:
        return self.post(
            _stage_path(deployment_id, stage_id, "renew"),
            {"worker_id": worker_id, "lease_seconds": lease},
        )

    def release_stage_claim(
        self, deployment_id: str, stage_id: str, worker_id: str, next_check_at: datetime | None = None
    ) -> None:
        self.post(
            _stage_path(deployment_id, stage_id, "release"),
            {"worker_id": worker_id, "next_check_at": next_check_at},
        )
