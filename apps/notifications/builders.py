"""Building events from what the piped API answers (deployments, stages, applications) — one builder per
event the piped sends; the hooks call them, and so do the tests.

Piped side: imports no Django models.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from apps.core.times import read_time as parse_time

from .events import (
    DEPLOYMENT_STATUS_EVENTS,
    STAGE_STATUS_EVENTS,
    TERMINAL,
    AppConfigRef,
    Event,
    Source,
    application_link,
    commit_link,
    deployment_link,
    event_id,
    format_seconds,
    iso,
)

MAX_REASON_CHARS = 20_000  # a drift diff can be long: a notification carries its beginning


def _now() -> datetime:
    return datetime.now(UTC)


def commit_of(source: Source, deployment: dict) -> dict | None:
    commit = (deployment.get("trigger") or {}).get("commit") or {}
    if not commit.get("hash"):
        return None
    message = commit.get("message") or ""
    repo_id = (deployment.get("git_path") or {}).get("repo_id", "")
    return {
        "hash": commit["hash"],
        "short_hash": commit["hash"][:7],
        "title": message.strip().splitlines()[0] if message.strip() else "",
        "message": message,
        "author": commit.get("author") or "",
        "branch": commit.get("branch") or "",
        "url": commit.get("url") or commit_link(source.remotes.get(repo_id, ""), commit["hash"]),
    }


def _stage_out(stage: dict, status: str | None = None, reason: str | None = None) -> dict:
    return {
        "id": stage["id"],
        "name": stage["name"],
        "status": status or stage.get("status", ""),
        "status_reason": reason if reason is not None else stage.get("status_reason", ""),
        "rollback": bool(stage.get("rollback")),
    }


def deployment_of(
    source: Source,
    deployment: dict,
    *,
    status: str | None = None,
    reason: str | None = None,
    stage_update: tuple[str, str, str] | None = None,
    now: datetime | None = None,
) -> dict:
    """The deployment as a webhook shows it; `status`/`stage_update` are changes the dict does not hold yet."""
    now = now or _now()
    status = status or deployment.get("status", "")
    created = parse_time(deployment.get("created_at"))
    completed = parse_time(deployment.get("completed_at")) or (now if status in TERMINAL else None)
    trigger = deployment.get("trigger") or {}
    stages = []
    for stage in sorted(deployment.get("stages") or [], key=lambda s: s.get("index", 0)):
        if stage_update and stage["id"] == stage_update[0]:
            stages.append(_stage_out(stage, stage_update[1], stage_update[2]))
        else:
            stages.append(_stage_out(stage))
    return {
        "id": deployment["id"],
        "status": status,
        "status_reason": reason if reason is not None else deployment.get("status_reason", ""),
        "summary": deployment.get("summary") or trigger.get("strategy_summary") or "",
        "sync_strategy": trigger.get("sync_strategy") or "",
        "trigger": {"kind": trigger.get("kind") or "", "commander": trigger.get("commander") or ""},
        "created_at": iso(created),
        "completed_at": iso(completed),
        "duration_seconds": round((completed - created).total_seconds()) if created and completed else None,
        "stages": stages,
        "url": deployment_link(source.portal, deployment["id"]),
    }


def application_of(source: Source, *, app_id: str, name: str, kind: str = "", labels=None) -> dict:
    return {
        "id": app_id,
        "name": name,
        "kind": kind,
        "labels": dict(labels or {}),
        "url": application_link(source.portal, app_id),
    }


def triggered_by(deployment: dict) -> str:
    trigger = deployment.get("trigger") or {}
    if trigger.get("commander"):
        return trigger["commander"]
    kind = trigger.get("kind") or ""
    author = ((trigger.get("commit") or {}).get("author")) or ""
    if kind == "ON_OUT_OF_SYNC":
        return "out-of-sync detection"
    return f"a commit by {author}" if author else "a commit"


def _summary(event_type: str, app: str, *, deployment: dict | None, stage: dict | None, extra: dict) -> str:
    who = extra.get("who", "")
    stage_name = f"{stage['name']} ({stage['id']})" if stage else ""
    duration = (deployment or {}).get("duration_seconds")
    took = f" in {format_seconds(duration)}" if duration is not None else ""
    texts = {
        "DEPLOYMENT_TRIGGERED": f"Deployment of {app} triggered by {who}",
        "DEPLOYMENT_PLANNED": f"Deployment of {app} planned: {extra.get('plan', '')}".rstrip(": "),
        "DEPLOYMENT_STARTED": f"Deployment of {app} started",
        "DEPLOYMENT_WAIT_APPROVAL": (
            f"Reminder: deployment of {app} is still waiting for approval at {stage_name}"
            if extra.get("reminder")
            else f"Deployment of {app} is waiting for approval at {stage_name}"
        ),
        "DEPLOYMENT_APPROVED": f"Deployment of {app} approved by {who}",
        "DEPLOYMENT_ROLLING_BACK": f"Deployment of {app} is rolling back",
        "DEPLOYMENT_SUCCEEDED": f"Deployment of {app} succeeded{took}",
        "DEPLOYMENT_FAILED": f"Deployment of {app} failed{took.replace(' in ', ' after ')}",
        "DEPLOYMENT_CANCELLED": f"Deployment of {app} was cancelled by {who}",
        "DEPLOYMENT_TRIGGER_FAILED": f"A deployment of {app} could not be triggered",
        "APPLICATION_SYNCED": f"{app} is in sync with Git",
        "APPLICATION_OUT_OF_SYNC": f"{app} is out of sync with Git",
        "STAGE_STARTED": f"Stage {stage_name} of {app} started",
        "STAGE_SUCCEEDED": f"Stage {stage_name} of {app} succeeded",
        "STAGE_FAILED": f"Stage {stage_name} of {app} failed",
        "STAGE_CANCELLED": f"Stage {stage_name} of {app} was cancelled",
        "STAGE_SKIPPED": f"Stage {stage_name} of {app} was skipped",
        "PIPED_STARTED": f"Piped {extra.get('piped', '')} started",
        "PIPED_STOPPED": f"Piped {extra.get('piped', '')} stopped",
        "PIPED_OFFLINE": f"Piped {extra.get('piped', '')} is offline",
    }
    return texts.get(event_type, event_type)


def deployment_event(
    source: Source,
    event_type: str,
    deployment: dict,
    *,
    status: str | None = None,
    reason: str | None = None,
    stage: dict | None = None,
    stage_status: str | None = None,
    who: str = "",
    reminder: bool = False,
    approval: dict | None = None,
    id_parts: tuple = (),
    now: datetime | None = None,
) -> Event:
    """An event about a deployment (DEPLOYMENT_*, STAGE_*). `status`, `stage_status`: the new states."""
    now = now or _now()
    stage_update = (stage["id"], stage_status, reason or "") if stage and stage_status else None
    out = deployment_of(
        source,
        deployment,
        status=status,
        reason=reason if stage_update is None else None,
        stage_update=stage_update,
        now=now,
    )
    stage_out = _stage_out(stage, stage_status, reason if stage_status else None) if stage else None
    labels = dict(deployment.get("labels") or {})
    application = application_of(
        source,
        app_id=deployment.get("application_id", ""),
        name=deployment.get("application_name", ""),
        kind=deployment.get("kind", ""),
        labels=labels,
    )
    final_reason = reason if reason is not None else ""
    summary = _summary(
        event_type,
        application["name"],
        deployment=out,
        stage=stage_out,
        extra={"who": who, "reminder": reminder, "plan": out["summary"]},
    )
    git_path = deployment.get("git_path") or {}
    commit = commit_of(source, deployment)
    return Event(
        id=event_id(deployment["id"], *(id_parts or (event_type,))),
        type=event_type,
        occurred_at=now,
        project_id=source.project_id,
        piped=source.piped(),
        portal_url=source.portal,
        application=application,
        deployment=out,
        stage=stage_out,
        commit=commit,
        labels=labels,
        reason=final_reason,
        reminder=reminder,
        approval=approval,
        summary=summary,
        app_config=AppConfigRef(
            repo_id=git_path.get("repo_id", ""),
            path=git_path.get("path", ""),
            config_filename=git_path.get("config_filename", ""),
            commit=commit["hash"],
        )
        if git_path and commit
        else None,
    )


def application_event(
    source: Source,
    event_type: str,
    app: dict,
    *,
    reason: str = "",
    sync_state: dict | None = None,
    commit: dict | None = None,
    id_parts: tuple = (),
    now: datetime | None = None,
) -> Event:
    """An event about an application that is not about one deployment (APPLICATION_*, TRIGGER_FAILED)."""
    now = now or _now()
    application = application_of(
        source, app_id=app["id"], name=app.get("name", ""), kind=app.get("kind", ""), labels=app.get("labels")
    )
    return Event(
        id=event_id(app["id"], *id_parts) if id_parts else str(uuid.uuid4()),
        type=event_type,
        occurred_at=now,
        project_id=source.project_id,
        piped=source.piped(),
        portal_url=source.portal,
        application=application,
        commit=commit,
        labels=dict(application["labels"]),
        reason=reason,
        sync_state=sync_state,
        summary=_summary(event_type, application["name"], deployment=None, stage=None, extra={}),
    )


def piped_event(
    source: Source, event_type: str, *, reason: str = "", event_uuid: str = "", now: datetime | None = None
) -> Event:
    piped = source.piped()
    return Event(
        id=event_uuid or str(uuid.uuid4()),
        type=event_type,
        occurred_at=now or _now(),
        project_id=source.project_id,
        piped=piped,
        portal_url=source.portal,
        reason=reason,
        summary=_summary(event_type, "", deployment=None, stage=None, extra={"piped": piped["name"]}),
    )


# --- One builder per event the piped sends (the hooks call these; so do the tests) -----------------------


def triggered_event(source: Source, deployment: dict, now: datetime | None = None) -> Event:
    trigger = deployment.get("trigger") or {}
    who = trigger.get("commander") or ""
    if not who:
        commit = (trigger.get("commit") or {}).get("hash", "")
        who = "out-of-sync detection" if trigger.get("kind") == "ON_OUT_OF_SYNC" else f"commit {commit[:7]}"
    return deployment_event(source, "DEPLOYMENT_TRIGGERED", deployment, who=who, now=now)


def planned_event(source: Source, deployment: dict, now: datetime | None = None) -> Event:
    return deployment_event(source, "DEPLOYMENT_PLANNED", deployment, now=now)


def status_event(
    source: Source, deployment: dict, status: str, reason: str, now: datetime | None = None
) -> Event | None:
    """DEPLOYMENT_STARTED / _ROLLING_BACK / _SUCCEEDED / _FAILED / _CANCELLED for a new status."""
    event_type = DEPLOYMENT_STATUS_EVENTS.get(status)
    if event_type is None:
        return None
    who = ""
    if status == "CANCELLED":
        who = ((deployment.get("metadata") or {}).get("cancel") or {}).get("commander") or "someone"
    return deployment_event(
        source, event_type, deployment, status=status, reason=reason or "", who=who, now=now
    )


def stage_event(
    source: Source, deployment: dict, stage: dict, status: str, reason: str = "", now: datetime | None = None
) -> Event | None:
    """STAGE_* for a stage that started (RUNNING) or ended."""
    event_type = STAGE_STATUS_EVENTS.get(status)
    if event_type is None:
        return None
    return deployment_event(
        source,
        event_type,
        deployment,
        stage=stage,
        stage_status=status,
        reason=reason,
        id_parts=(stage["id"], stage.get("retried_count") or 0, event_type),
        now=now,
    )


def approval_of(stage: dict, deadline: datetime | None) -> dict:
    return {
        "approvers": list(stage.get("authorized_approvers") or []),
        "min_approver_num": max(int(stage.get("min_approver_num") or 1), 1),
        "approved_by": list(dict.fromkeys((stage.get("metadata") or {}).get("approved_by") or [])),
        "deadline": iso(deadline),
    }


def approved_event(
    source: Source, deployment: dict, stage: dict, reason: str = "", now: datetime | None = None
) -> Event:
    approval = approval_of(stage, None)
    return deployment_event(
        source,
        "DEPLOYMENT_APPROVED",
        deployment,
        stage=stage,
        stage_status="SUCCESS",
        reason=reason,
        who=", ".join(approval["approved_by"]) or "someone",
        approval=approval,
        id_parts=(stage["id"], stage.get("retried_count") or 0, "DEPLOYMENT_APPROVED"),
        now=now,
    )


def waiting_event(
    source: Source,
    deployment: dict,
    stage: dict,
    *,
    deadline: datetime,
    reminder: bool = False,
    now: datetime | None = None,
) -> Event:
    """DEPLOYMENT_WAIT_APPROVAL, or its reminder (`"reminder": true`)."""
    suffix = ("WAIT_APPROVAL", "reminder") if reminder else ("WAIT_APPROVAL",)
    return deployment_event(
        source,
        "DEPLOYMENT_WAIT_APPROVAL",
        deployment,
        status="RUNNING",
        stage=stage,
        stage_status="RUNNING",
        reason="",
        reminder=reminder,
        approval=approval_of(stage, deadline),
        id_parts=(stage["id"], stage.get("retried_count") or 0, *suffix),
        now=now,
    )


def trigger_failed_event(
    source: Source, app: dict, commit_hash: str, reason: str, now: datetime | None = None
) -> Event:
    commit = None
    if commit_hash:
        repo_url = commit_link(source.remotes.get(app.get("repo_id", ""), ""), commit_hash)
        commit = {
            "hash": commit_hash,
            "short_hash": commit_hash[:7],
            "title": "",
            "message": "",
            "author": "",
            "branch": "",
            "url": repo_url,
        }
    return application_event(
        source,
        "DEPLOYMENT_TRIGGER_FAILED",
        app,
        reason=reason,
        commit=commit,
        id_parts=("DEPLOYMENT_TRIGGER_FAILED", commit_hash, reason),
        now=now,
    )


def sync_state_event(
    source: Source, app: dict, status: str, short_reason: str, reason: str, now: datetime | None = None
) -> Event:
    """APPLICATION_SYNCED / _OUT_OF_SYNC; for the latter `reason` is what differs (drift's unified diff)."""
    event_type = "APPLICATION_SYNCED" if status == "SYNCED" else "APPLICATION_OUT_OF_SYNC"
    return application_event(
        source,
        event_type,
        app,
        reason=(reason or "")[:MAX_REASON_CHARS] if status == "OUT_OF_SYNC" else "",
        sync_state={"status": status, "short_reason": short_reason},
        now=now,
    )
