"""Which strategy a deployment uses and which stages it runs — PipeCD's planner, as a pure function.

The order of the rules (the first that applies wins):
1. a strategy forced by the command (Sync button with QUICK_SYNC or PIPELINE);
2. no pipeline in the app config → quick sync;
3. `planner.alwaysUsePipeline` → pipeline;
4. the first deployment (no successful one yet) → quick sync;
5. `commitMatcher.pipeline` / `commitMatcher.quickSync` regexes on the commit message (commits only);
6. a container image changed since the running version → pipeline; otherwise quick sync.
Versions are the container images of the task definition. With `planner.autoRollback` (default true) a
hidden ROLLBACK stage is appended (to quick syncs too, as PipeCD does for ECS), plus one
SCRIPT_RUN_ROLLBACK per SCRIPT_RUN that has `onRollback`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

QUICK_SYNC = "QUICK_SYNC"
PIPELINE = "PIPELINE"
ROLLBACK = "ROLLBACK"
SCRIPT_RUN = "SCRIPT_RUN"
SCRIPT_RUN_ROLLBACK = "SCRIPT_RUN_ROLLBACK"
WAIT_APPROVAL = "WAIT_APPROVAL"
ROLLBACK_STAGE_ID = "rollback"

# The stage a quick sync runs, per application kind.
QUICK_SYNC_STAGES = {"ECS": ("ECS_SYNC", "Sync by applying the task and service definitions")}


class PlanError(Exception):
    """The deployment cannot be planned; the message becomes the deployment's failure reason."""


@dataclass
class Plan:
    sync_strategy: str
    summary: str
    stages: list[dict] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)


def parse_image(image: str) -> tuple[str, str]:
    """`registry:5000/org/app:v2@sha256:…` → (`app`, `v2`). A missing tag is Docker's `latest`."""
    image = image.split("@", 1)[0]
    repository, tag = image, "latest"
    last_slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > last_slash:
        repository, tag = image[:colon], image[colon + 1 :]
    return repository.rsplit("/", 1)[-1], tag


def versions_of(task_definition: dict | None) -> list[dict]:
    """The container images of a task definition as [{name, version, url}], each image once, in order."""
    out, seen = [], set()
    for container in (task_definition or {}).get("containerDefinitions", []) or []:
        image = str(container.get("image") or "")
        if not image or image in seen:
            continue
        seen.add(image)
        name, tag = parse_image(image)
        out.append({"name": name, "version": tag, "url": image})
    return out


def describe_versions(versions: list[dict]) -> str:
    return ", ".join(f"{v['name']}:{v['version']}" for v in versions) or "unknown"


def image_change_summary(running: list[dict], target: list[dict]) -> str | None:
    """PipeCD's wording for what changed between two sets of images, or None when nothing did."""
    if {v["url"] for v in running} == {v["url"] for v in target}:
        return None
    old_by_name = {v["name"]: v for v in running}
    parts = []
    unmatched_old = [v for v in running if v["url"] not in {t["url"] for t in target}]
    for new in target:
        if new["url"] in {v["url"] for v in running}:
            continue
        old = old_by_name.get(new["name"])
        if old is not None and old["url"] != new["url"]:
            parts.append(f"{new['name']} from {old['version']} to {new['version']}")
            unmatched_old = [v for v in unmatched_old if v["name"] != new["name"]]
        elif unmatched_old:
            gone = unmatched_old.pop(0)
            parts.append(f"{gone['name']}:{gone['version']} to {new['name']}:{new['version']}")
        else:
            parts.append(f"{new['name']} to {new['version']} (new image)")
    if not parts:
        parts = [f"{v['name']}:{v['version']} (removed)" for v in unmatched_old]
    return "Sync progressively because of updating image " + ", ".join(parts)


def _stage_dict(stage_id: str, name: str, index: int, *, desc: str = "", requires=(), visible=True) -> dict:
    return {
        "id": stage_id,
        "name": name,
        "desc": desc,
        "index": index,
        "requires": list(requires),
        "visible": visible,
        "rollback": False,
        "metadata": {},
        "authorized_approvers": [],
        "min_approver_num": 1,
    }


def _rollback_stages(spec: Any, forward: list[dict], pipeline_stages: list[Any]) -> list[dict]:
    index = len(forward)
    out = []
    rollback = _stage_dict(
        ROLLBACK_STAGE_ID, ROLLBACK, index, desc="Roll back this deployment", visible=False
    )
    rollback["rollback"] = True
    out.append(rollback)
    for position, stage in enumerate(pipeline_stages):
        if stage.name != SCRIPT_RUN or not getattr(stage.options, "on_rollback", ""):
            continue
        base_id = forward[position]["id"]
        index += 1
        extra = _stage_dict(
            f"{base_id}-rollback", SCRIPT_RUN_ROLLBACK, index, desc=f"Roll back {base_id}", visible=False
        )
        extra["rollback"] = True
        extra["metadata"] = {"base_stage_id": base_id}
        out.append(extra)
    return out


def quick_sync_stages(kind: str, spec: Any) -> list[dict]:
    name, desc = QUICK_SYNC_STAGES.get(kind, ("", ""))
    if not name:
        raise PlanError(f"{kind} applications cannot be deployed yet (platform not supported yet).")
    forward = [_stage_dict("stage-0", name, 0, desc=desc)]
    return forward + (_rollback_stages(spec, forward, []) if spec.auto_rollback else [])


def pipeline_stages(spec: Any) -> list[dict]:
    configured = list(spec.stages)
    forward = []
    previous = None
    for index, stage in enumerate(configured):
        stage_id = stage.id or f"stage-{index}"
        item = _stage_dict(
            stage_id, stage.name, index, desc=stage.desc, requires=[previous] if previous else []
        )
        if stage.name == WAIT_APPROVAL and stage.options is not None:
            item["authorized_approvers"] = list(stage.options.approvers)
            item["min_approver_num"] = max(int(stage.options.min_approver_num or 1), 1)
        forward.append(item)
        previous = stage_id
    return forward + (_rollback_stages(spec, forward, configured) if spec.auto_rollback else [])


def plan(
    *,
    kind: str,
    spec: Any,
    trigger: dict,
    target_versions: list[dict],
    running_versions: list[dict] | None,
    running_commit: str,
) -> Plan:
    """Decide the strategy, the summary and the stages of a deployment.

    `trigger` is the deployment's trigger (kind, commander, sync_strategy, strategy_summary, commit);
    `running_versions` is None when the running deployment's definitions could not be read.
    """
    has_pipeline = bool(spec.stages)
    forced = trigger.get("sync_strategy") or "AUTO"
    commit_message = (trigger.get("commit") or {}).get("message") or ""
    by_command = bool(trigger.get("commander"))
    images = describe_versions(target_versions)

    def quick(summary: str) -> Plan:
        return Plan(QUICK_SYNC, summary, quick_sync_stages(kind, spec), target_versions)

    def progressive(summary: str) -> Plan:
        return Plan(PIPELINE, summary, pipeline_stages(spec), target_versions)

    if forced == QUICK_SYNC:
        return quick(trigger.get("strategy_summary") or "Quick sync because it was asked for")
    if forced == PIPELINE:
        if not has_pipeline:
            raise PlanError(
                "Unable to force sync with pipeline because no pipeline was specified in the app config."
            )
        return progressive(
            trigger.get("strategy_summary") or "Sync with the specified pipeline because it was asked for"
        )
    if not has_pipeline:
        return quick(
            f"Quick sync to deploy image {images} and configure all traffic to it (pipeline was not configured)"
        )
    if spec.planner.always_use_pipeline:
        return progressive("Sync with the specified pipeline (alwaysUsePipeline was set)")
    if not running_commit:
        return quick(
            f"Quick sync to deploy image {images} and configure all traffic to it (it seems this is the first deployment)"
        )
    if not by_command:
        for pattern, strategy in (
            (spec.commit_matcher.pipeline, PIPELINE),
            (spec.commit_matcher.quick_sync, QUICK_SYNC),
        ):
            if not pattern:
                continue
            try:
                matched = re.search(pattern, commit_message) is not None
            except re.error as exc:
                raise PlanError(
                    f"commitMatcher pattern {pattern!r} is not a valid regular expression: {exc}"
                ) from None
            if matched and strategy == PIPELINE:
                return progressive(f'Sync progressively because the commit message was matching "{pattern}"')
            if matched:
                return quick(f'Quick sync because the commit message was matching "{pattern}"')
    if running_versions is None:
        return progressive("Sync with the specified pipeline")
    change = image_change_summary(running_versions, target_versions)
    if change:
        return progressive(change)
    return quick(f"Quick sync to apply the definitions because no container image changed (still {images})")
