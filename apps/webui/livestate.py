"""What the portal shows of ECS deliveries: an application's live state (a small tree with the traffic split)
and drift diff, a running canary's traffic and task counts, and a deployment's plan preview.

The piped computes the numbers (apps/pipedagent/platforms/ecs/livestate.py); this module only shapes them
for the templates: bar widths, tones, diff lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.dateparse import parse_datetime

from apps.applications.models import ApplicationLiveState
from apps.applications.services import live_state_snapshot
from apps.deployments.choices import DEPLOYMENT_TERMINAL, DeploymentStatus

from . import queries

# How often the application page asks for a fresh live state (the piped reports every 15 s by default).
LIVE_STATE_POLL_SECONDS = 10
LIVE_STATE_POLL_DEPLOYING_SECONDS = 3
TASK_SET_TONES = {"PRIMARY": "success", "ACTIVE": "running", "DRAINING": "cancelled"}
STABILITY_LABELS = {"STEADY_STATE": "steady", "STABILIZING": "stabilizing"}


def diff_lines(text: str) -> list[dict]:
    """A unified diff as lines with their kind (head, hunk, add, del, same) for colouring."""
    out = []
    for line in (text or "").splitlines():
        if line.startswith(("--- ", "+++ ")):
            kind = "head"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        out.append({"kind": kind, "text": line})
    return out


def _percent(value) -> float:
    try:
        return max(0.0, min(100.0, float(value or 0)))
    except (TypeError, ValueError):
        return 0.0


@dataclass
class LiveState:
    """The snapshot with what the templates need next to it."""

    snapshot: dict
    collected_at: object = None
    updated_at: object = None
    task_sets: list = field(default_factory=list)
    versions: list = field(default_factory=list)
    traffic: list = field(default_factory=list)

    @property
    def service(self) -> dict:
        return self.snapshot.get("service") or {}

    @property
    def standalone(self) -> bool:
        return bool(self.snapshot.get("standalone"))


def live_state(row: ApplicationLiveState | None) -> LiveState | None:
    snapshot = live_state_snapshot(row)
    if not snapshot:
        return None
    state = LiveState(
        snapshot=snapshot,
        collected_at=parse_datetime(str(snapshot.get("collected_at") or "")) or row.collected_at,
        updated_at=row.updated_at,
    )
    for task_set in snapshot.get("task_sets") or []:
        item = dict(task_set)
        item["tone"] = TASK_SET_TONES.get(task_set.get("status"), "pending")
        item["traffic_width"] = _percent(task_set.get("traffic_percent"))
        stability = task_set.get("stability") or ""
        item["stability_label"] = STABILITY_LABELS.get(stability, stability.lower().replace("_", " "))
        state.task_sets.append(item)
    total_tasks = max(sum(v.get("tasks") or 0 for v in snapshot.get("versions") or []), 0)
    for version in snapshot.get("versions") or []:
        item = dict(version)
        item["traffic_width"] = _percent(version.get("traffic_percent"))
        item["tasks_width"] = (
            _percent(100.0 * (version.get("tasks") or 0) / total_tasks) if total_tasks else 0.0
        )
        state.versions.append(item)
    groups = (snapshot.get("traffic") or {}).get("target_groups") or []
    for index, group in enumerate(groups):
        state.traffic.append({**group, "width": _percent(group.get("percent")), "slot": index % 4})
    return state


def application_context(app) -> dict:
    """The application page's live state and drift."""
    row = queries.application_live_state(app.id)
    drift = None
    if row is not None and row.drift_status:
        drift = {
            "status": row.drift_status,
            "summary": row.drift_summary,
            "commit": row.drift_commit,
            "checked_at": row.drift_checked_at,
            "changed_at": row.drift_changed_at,
            "diff": row.drift_diff,
            "lines": diff_lines(row.drift_diff),
        }
    return {
        "live": live_state(row),
        "drift": drift,
        "live_poll_seconds": LIVE_STATE_POLL_DEPLOYING_SECONDS if app.deploying else LIVE_STATE_POLL_SECONDS,
    }


def canary_context(deployment) -> dict | None:
    """While an ECS deployment runs its canary: the listener weights it set and the task counts of the
    canary and the primary from the application's latest live state."""
    if deployment.status in DEPLOYMENT_TERMINAL or deployment.kind != "ECS":
        return None
    metadata = deployment.metadata or {}
    canary = metadata.get("ecs_canary") or {}
    traffic = metadata.get("ecs_traffic") or {}
    if not canary and not traffic:
        return None
    weights = traffic.get("weights") or {"primary": 100, "canary": 0}
    live = live_state(queries.application_live_state(deployment.application_id))
    sets = live.task_sets if live else []
    canary_set = next((t for t in sets if t.get("arn") == canary.get("task_set_arn")), None)
    primary_set = next((t for t in sets if t.get("status") == "PRIMARY"), None)
    return {
        "primary_weight": int(weights.get("primary", 100)),
        "canary_weight": int(weights.get("canary", 0)),
        "primary_name": traffic.get("primary_name") or "primary",
        "canary_name": traffic.get("canary_name") or "canary",
        "routed": bool(traffic.get("weights")),
        "canary": canary,
        "canary_set": canary_set,
        "primary_set": primary_set,
        "collected_at": live.collected_at if live else None,
        "rolling_back": deployment.status == DeploymentStatus.ROLLING_BACK,
    }


def preview_context(deployment) -> dict | None:
    """The plan preview the piped recorded: open while the deployment waits or is planned, folded after."""
    preview = (deployment.metadata or {}).get("plan_preview")
    if not preview:
        return None
    return {
        **preview,
        "open": deployment.status in (DeploymentStatus.PENDING, DeploymentStatus.PLANNED),
        "diffs": [
            {**item, "lines": diff_lines(item.get("diff", "")), "changed": bool(item.get("diff"))}
            for item in preview.get("diffs") or []
        ],
    }
