"""Notification events: their names and groups, links to the portal, and the webhook body they become.

Piped side: imports no Django models (the control plane's PIPED_OFFLINE uses it too). An event is plain
data (`builders.py` makes them); `body()` is the stable, versioned JSON every webhook receives
(docs/notifications.md).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.core.times import format_seconds as _format_seconds
from apps.pipelineconfig.constants import NOTIFICATION_EVENT_GROUPS

BODY_VERSION = 1
# Deterministic event ids: the same thing seen by two piped processes is one event (the control plane
# keeps the first and tells the second it is a duplicate).
_ID_NAMESPACE = uuid.UUID("6f0d8f54-2c1e-4b8e-9a7c-5d1b8c0e4a11")

DEPLOYMENT_STATUS_EVENTS = {
    "RUNNING": "DEPLOYMENT_STARTED",
    "ROLLING_BACK": "DEPLOYMENT_ROLLING_BACK",
    "SUCCESS": "DEPLOYMENT_SUCCEEDED",
    "FAILURE": "DEPLOYMENT_FAILED",
    "CANCELLED": "DEPLOYMENT_CANCELLED",
}
STAGE_STATUS_EVENTS = {
    "RUNNING": "STAGE_STARTED",
    "SUCCESS": "STAGE_SUCCEEDED",
    "FAILURE": "STAGE_FAILED",
    "EXITED": "STAGE_FAILED",
    "CANCELLED": "STAGE_CANCELLED",
    "SKIPPED": "STAGE_SKIPPED",
}
TERMINAL = frozenset({"SUCCESS", "FAILURE", "CANCELLED"})


def group_of(event_type: str) -> str:
    return NOTIFICATION_EVENT_GROUPS.get(event_type, "")


def event_id(*parts: Any) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, ":".join(str(p) for p in parts)))


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def format_seconds(seconds: float) -> str:
    """`45s`, `3m05s`, `1h02m` — how long something took, for people."""
    return _format_seconds(seconds, coarse=True)


# --- Links ----------------------------------------------------------------------------------------------


def portal_url(web_address: str, api_url: str) -> str:
    """The portal's base URL: the piped config's webAddress, else the control plane's address itself
    (PipePortal serves the portal and the piped API on one host)."""
    address = (web_address or "").strip().rstrip("/")
    if address:
        return address if "://" in address else f"https://{address}"
    match = re.match(r"^(https?)://([^/]+)", api_url or "")
    if not match:
        return ""
    scheme, netloc = match.groups()
    default_port = ":443" if scheme == "https" else ":80"
    return f"{scheme}://{netloc.removesuffix(default_port)}"


def deployment_link(portal: str, deployment_id: str) -> str:
    return f"{portal}/deployments/{deployment_id}/" if portal else ""


def application_link(portal: str, app_id: str) -> str:
    return f"{portal}/applications/{app_id}/" if portal else ""


def piped_link(portal: str, piped_id: str) -> str:
    return f"{portal}/settings/pipeds/{piped_id}/" if portal else ""


_SCP_REMOTE = re.compile(r"^(?:[\w.-]+@)?([\w.-]+):(?!//)(.+?)(?:\.git)?/?$")
_URL_REMOTE = re.compile(r"^(?:https?|ssh|git)://(?:[^@/]+@)?([^/:]+)(?::\d+)?/(.+?)(?:\.git)?/?$")


def commit_link(remote: str, commit_hash: str) -> str:
    """A browser link to the commit for GitHub, GitLab and Bitbucket style remotes ("" when unknown)."""
    remote = (remote or "").strip()
    match = _URL_REMOTE.match(remote) or _SCP_REMOTE.match(remote)
    if not match or not commit_hash or remote.startswith("file:"):
        return ""
    host, path = match.groups()
    if "bitbucket" in host:
        return f"https://{host}/{path}/commits/{commit_hash}"
    if "gitlab" in host:
        return f"https://{host}/{path}/-/commit/{commit_hash}"
    return f"https://{host}/{path}/commit/{commit_hash}"


# --- The event ------------------------------------------------------------------------------------------


@dataclass
class AppConfigRef:
    """Where the app config holding `notification.mentions` lives (read lazily, off the deployment's path)."""

    repo_id: str
    path: str
    config_filename: str
    commit: str


@dataclass
class Event:
    id: str
    type: str
    occurred_at: datetime
    project_id: str
    piped: dict
    portal_url: str = ""
    application: dict | None = None
    deployment: dict | None = None
    stage: dict | None = None
    commit: dict | None = None
    labels: dict = field(default_factory=dict)
    reason: str = ""
    reminder: bool = False
    approval: dict | None = None
    sync_state: dict | None = None
    # What the event is about, in one line for people; Slack's fallback text and the attempts page use it.
    summary: str = ""
    app_config: AppConfigRef | None = None

    @property
    def group(self) -> str:
        return group_of(self.type)

    @property
    def app_name(self) -> str:
        return (self.application or {}).get("name", "")

    @property
    def ordering_key(self) -> str:
        """Events with the same key reach a receiver in the order they happened."""
        if self.deployment:
            return f"deployment:{self.deployment['id']}"
        if self.application:
            return f"application:{self.application['id']}"
        return f"piped:{self.piped.get('id', '')}"

    @property
    def link(self) -> str:
        """The page this event is about: the deployment, else the application, else the piped."""
        if self.deployment:
            return self.deployment.get("url") or ""
        if self.application:
            return self.application.get("url") or ""
        return self.piped.get("url") or ""

    def body(self, timestamp: int | None = None) -> dict:
        """The webhook body, version 1. `timestamp` (Unix seconds) is when it is signed and sent."""
        return {
            "version": BODY_VERSION,
            "id": self.id,
            "type": self.type,
            "group": self.group,
            "timestamp": int(timestamp if timestamp is not None else datetime.now(UTC).timestamp()),
            "occurred_at": iso(self.occurred_at),
            "reminder": self.reminder,
            "summary": self.summary,
            "project": {"id": self.project_id},
            "piped": {k: self.piped.get(k, "") for k in ("id", "name", "version", "url")},
            "application": self.application,
            "deployment": self.deployment,
            "stage": self.stage,
            "commit": self.commit,
            "labels": dict(self.labels),
            "reason": self.reason,
            "approval": self.approval,
            "sync_state": self.sync_state,
            "portal_url": self.link,
        }

    def record(self) -> dict:
        """What the control plane keeps of the event (beside each delivery attempt)."""
        return {
            "id": self.id,
            "type": self.type,
            "occurred_at": iso(self.occurred_at),
            "summary": self.summary[:500],
            "application_id": (self.application or {}).get("id") or None,
            "deployment_id": (self.deployment or {}).get("id") or None,
        }


# --- Who raises events ------------------------------------------------------------------------------


@dataclass
class Source:
    """Who raises events: the project, the piped, where the portal is, how to link commits."""

    project_id: str
    piped_id: str
    piped_name: str = ""
    piped_version: str = ""
    portal: str = ""
    remotes: dict[str, str] = field(default_factory=dict)  # repo_id -> remote

    def piped(self) -> dict:
        return {
            "id": self.piped_id,
            "name": self.piped_name or self.piped_id,
            "version": self.piped_version,
            "url": piped_link(self.portal, self.piped_id),
        }
