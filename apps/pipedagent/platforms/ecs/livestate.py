"""The live state of an ECS application: its service, task sets and tasks, and how the load balancer splits
the traffic between them — a JSON snapshot the piped reports to the control plane.

Shares: a target group's share is its weight in the listener rule that speaks for the service (a default
rule forwarding to the primary target group, else the rule giving it the most traffic); the task sets of
one target group share it by their running tasks (by their scale when AWS reports no counts). Tasks are
attributed to a task set by `startedBy` (the task set's id), else by a task definition only one task set
uses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from ...planner import versions_of
from .provider import (
    LABEL_COMMIT_HASH,
    is_managed_by,
    short_name,
    tag_dict,
    variant_of,
)
from .traffic import LoadBalancing

SNAPSHOT_VERSION = 1
MAX_TASKS_SHOWN = 100


@lru_cache(maxsize=256)
def _images(provider, task_definition_arn: str) -> tuple:
    """The container images of a task definition (revisions never change, so they are cached)."""
    described = provider.describe_task_definition(task_definition_arn)
    if described is None:
        return ()
    return tuple((v["name"], v["version"], v["url"]) for v in versions_of(described[0]))


def _version_label(images: tuple) -> str:
    return ", ".join(f"{name}:{version}" for name, version, _ in images) or "unknown"


def _task_view(task: dict) -> dict:
    return {
        "id": short_name(task.get("taskArn", "")),
        "status": task.get("lastStatus", ""),
        "desired": task.get("desiredStatus", ""),
        "health": task.get("healthStatus") or "UNKNOWN",
        "task_definition": short_name(task.get("taskDefinitionArn", "")),
        "started_at": str(task.get("startedAt") or task.get("createdAt") or ""),
        "zone": task.get("availabilityZone", ""),
    }


def _running(task: dict) -> bool:
    return task.get("lastStatus") == "RUNNING" and task.get("desiredStatus", "RUNNING") == "RUNNING"


def collect(provider, target, *, piped_id: str, commit: str) -> dict:
    """A snapshot of what runs for `target` (a resources.ServiceTarget read from the Git head)."""
    now = datetime.now(UTC).isoformat()
    snapshot: dict = {
        "version": SNAPSHOT_VERSION,
        "kind": "ECS",
        "collected_at": now,
        "commit": commit,
        "cluster": short_name(target.cluster),
    }
    if target.standalone:
        tasks = [
            t
            for t in provider.tasks(target.cluster, family=target.family)
            if t.get("lastStatus") != "STOPPED"
        ]
        images = {}
        for task in tasks:
            images.setdefault(
                task.get("taskDefinitionArn", ""), _images(provider, task.get("taskDefinitionArn", ""))
            )
        snapshot["standalone"] = True
        snapshot["family"] = target.family
        snapshot["tasks"] = [_task_view(t) for t in tasks[:MAX_TASKS_SHOWN]]
        snapshot["versions"] = _versions_of_tasks(tasks, images)
        return snapshot
    service = provider.describe_service(target.cluster, target.name)
    if service is None:
        snapshot["service"] = {"name": target.name, "exists": False}
        snapshot["task_sets"] = []
        return snapshot
    snapshot["service"] = {
        "name": target.name,
        "exists": True,
        "arn": service.get("serviceArn", ""),
        "status": service.get("status", ""),
        "desired": service.get("desiredCount"),
        "running": service.get("runningCount"),
        "pending": service.get("pendingCount"),
        "launch_type": service.get("launchType", ""),
        "controller": (service.get("deploymentController") or {}).get("type", "ECS"),
    }
    task_sets = provider.task_sets(target.cluster, target.name, draining=True)
    tasks = [
        t for t in provider.tasks(target.cluster, service=target.name) if t.get("lastStatus") != "STOPPED"
    ]
    ids = {t.get("id") for t in task_sets}
    by_definition: dict[str, list[str]] = {}
    for task_set in task_sets:
        by_definition.setdefault(task_set.get("taskDefinition", ""), []).append(task_set["taskSetArn"])
    attributed: dict[str, list[dict]] = {t["taskSetArn"]: [] for t in task_sets}
    others = []
    for task in tasks:
        owner = next(
            (
                t["taskSetArn"]
                for t in task_sets
                if task.get("startedBy") and task.get("startedBy") == t.get("id")
            ),
            None,
        )
        if owner is None and task.get("startedBy") not in ids:
            candidates = by_definition.get(task.get("taskDefinitionArn", ""), [])
            owner = candidates[0] if len(candidates) == 1 else None
        if owner is not None:
            attributed[owner].append(task)
        elif task.get("group") == f"service:{target.name}":
            others.append(task)

    lb = LoadBalancing(provider)
    groups = [e.get("targetGroupArn") for t in task_sets for e in t.get("loadBalancers") or []]
    for configured in (target.primary, target.canary):
        if configured is not None and target.access_type == "ELB":
            groups.append(configured.target_group_arn)
    groups = [g for g in dict.fromkeys(groups) if g]
    errors = []
    rules = []
    try:
        rules = [r for r in lb.rules_for(groups) if any(r.forwards_to(g) for g in groups)]
    except Exception as exc:  # the snapshot still shows the task sets without the traffic
        errors.append(f"Could not read the load balancer: {exc}")
    names = {g: lb.name(g) for g in groups} if rules else {g: short_name(g) for g in groups}
    speaking = _speaking_rule(rules, target)
    shares = {g: (speaking.share(g) if speaking else 0.0) for g in groups}

    views = []
    for task_set in task_sets:
        arn = task_set["taskSetArn"]
        tags = tag_dict(task_set.get("tags"))
        images = _images(provider, task_set.get("taskDefinition", ""))
        own_tasks = attributed.get(arn, [])
        running = task_set.get("runningCount")
        if running is None:
            running = sum(1 for t in own_tasks if _running(t))
        views.append(
            {
                "id": task_set.get("id", ""),
                "arn": arn,
                "status": task_set.get("status", ""),
                "variant": variant_of(task_set) if is_managed_by(tags, piped_id) else "",
                "managed": is_managed_by(tags, piped_id),
                "commit": tags.get(LABEL_COMMIT_HASH, ""),
                "scale": float((task_set.get("scale") or {}).get("value", 0)),
                "task_definition": short_name(task_set.get("taskDefinition", "")),
                "version": _version_label(images),
                "images": [url for _, _, url in images],
                "target_groups": [
                    {"arn": e.get("targetGroupArn", ""), "name": names.get(e.get("targetGroupArn", ""), "")}
                    for e in task_set.get("loadBalancers") or []
                ],
                "registries": [
                    short_name(r.get("registryArn", "")) for r in task_set.get("serviceRegistries") or []
                ],
                "stability": task_set.get("stabilityStatus", ""),
                "desired": task_set.get("computedDesiredCount"),
                "running": running,
                "pending": task_set.get("pendingCount"),
                "healthy": sum(1 for t in own_tasks if t.get("healthStatus") == "HEALTHY"),
                "unhealthy": sum(1 for t in own_tasks if t.get("healthStatus") == "UNHEALTHY"),
                "created_at": str(task_set.get("createdAt") or ""),
                "tasks": [_task_view(t) for t in own_tasks[:MAX_TASKS_SHOWN]],
            }
        )
    _share_traffic(views, shares, registries=target.access_type == "SERVICE_DISCOVERY")
    snapshot["task_sets"] = views
    snapshot["other_tasks"] = [_task_view(t) for t in others[:MAX_TASKS_SHOWN]]
    snapshot["traffic"] = {
        "rule": speaking.label if speaking else "",
        "target_groups": [
            {"arn": g, "name": names.get(g, short_name(g)), "percent": round(shares[g], 1)} for g in groups
        ],
        "rules": [r.as_dict(names) for r in rules],
    }
    snapshot["versions"] = _versions_of_task_sets(views)
    if errors:
        snapshot["errors"] = errors
    return snapshot


def _speaking_rule(rules: list, target):
    """The rule that says how the service's traffic is split: a default rule forwarding to the primary
    target group first, else the rule that gives the primary the most."""
    primary = target.primary.target_group_arn if target.primary is not None else ""
    candidates = [r for r in rules if primary and r.forwards_to(primary)] or rules
    defaults = [r for r in candidates if r.is_default]
    if defaults:
        return defaults[0]
    return max(candidates, key=lambda r: r.share(primary), default=None)


def _share_traffic(views: list[dict], shares: dict[str, float], *, registries: bool) -> None:
    """Each task set's share of the traffic: its target groups' shares, split among the task sets of each
    group by running tasks (by scale when no task runs or AWS gives no counts)."""
    if registries:
        # Behind a service registry every running task gets an equal part.
        total = sum(v["running"] or 0 for v in views) or sum(v["scale"] for v in views)
        for view in views:
            part = (view["running"] or 0) if sum(v["running"] or 0 for v in views) else view["scale"]
            view["traffic_percent"] = round(100.0 * part / total, 1) if total else None
        return
    for view in views:
        view["traffic_percent"] = 0.0 if view["target_groups"] else None
    for group, share in shares.items():
        members = [v for v in views if any(g["arn"] == group for g in v["target_groups"])]
        weights = [v["running"] or 0 for v in members]
        if not sum(weights):
            weights = [v["scale"] for v in members]
        total = sum(weights)
        for view, weight in zip(members, weights, strict=True):
            view["traffic_percent"] = round(
                view["traffic_percent"] + (share * weight / total if total else 0), 1
            )


def _versions_of_task_sets(views: list[dict]) -> list[dict]:
    """Per version: its share of the traffic and of the running tasks; the newest version is marked."""
    out: dict[str, dict] = {}
    total_tasks = sum(v["running"] or 0 for v in views)
    newest = max((v["created_at"] for v in views), default="")
    for view in views:
        item = out.setdefault(
            view["version"],
            {"version": view["version"], "traffic_percent": 0.0, "tasks": 0, "task_sets": 0, "newest": False},
        )
        item["traffic_percent"] = round(item["traffic_percent"] + (view.get("traffic_percent") or 0), 1)
        item["tasks"] += view["running"] or 0
        item["task_sets"] += 1
        item["newest"] = item["newest"] or (bool(newest) and view["created_at"] == newest and len(views) > 1)
    for item in out.values():
        item["tasks_total"] = total_tasks
    return sorted(out.values(), key=lambda v: (not v["newest"], v["version"]))


def _versions_of_tasks(tasks: list[dict], images: dict) -> list[dict]:
    out: dict[str, dict] = {}
    for task in tasks:
        label = _version_label(images.get(task.get("taskDefinitionArn", ""), ()))
        item = out.setdefault(label, {"version": label, "tasks": 0, "tasks_total": len(tasks)})
        item["tasks"] += 1 if _running(task) else 0
    return list(out.values())


def report(client, app_id: str, snapshot: dict) -> None:
    client.post(
        f"/applications/{app_id}/live-state",
        {"snapshot": snapshot, "collected_at": snapshot.get("collected_at")},
    )
