"""Plan preview: what a deployment will change and which stages it will run, for the portal, computed by the
piped (it has Git) and kept in the deployment metadata as `plan_preview`.

- A PENDING deployment that waits behind another one of its application gets a *predicted* preview from the
  scheduler (the planner's rules applied to what is known now; the real plan may still differ if another
  deployment succeeds first).
- Planning replaces it with the planned one: the stages the deployment really runs.
The diffs compare the task and service definitions (as normalised for AWS) of the running commit — the last
successful deployment's — with the deployment's commit.
"""

from __future__ import annotations

import difflib
import logging
from datetime import UTC, datetime

import yaml

from .client import ApiError
from .deploysource import SourceError
from .gitrepo import GitError
from .planner import PlanError, plan, versions_of

logger = logging.getLogger(__name__)

KEY = "plan_preview"
MAX_DIFF_CHARS = 20_000


def _yaml(value) -> list[str]:
    if value is None:
        return []
    return yaml.safe_dump(
        value, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120
    ).splitlines()


def _diff(old, new, old_label: str, new_label: str) -> str:
    text = "\n".join(
        difflib.unified_diff(_yaml(old), _yaml(new), fromfile=old_label, tofile=new_label, lineterm="")
    )
    return text[:MAX_DIFF_CHARS] + ("\n… (diff cut short)" if len(text) > MAX_DIFF_CHARS else "")


def definition_diffs(target, running) -> list[dict]:
    """[{file, diff}] for the task and service definitions; an empty diff means no change."""
    new = target.ecs_definitions()
    old = running.ecs_definitions() if running is not None else None
    old_label = f"running ({running.commit[:7]})" if running is not None else "running (nothing deployed yet)"
    new_label = f"target ({target.commit[:7]})"
    spec = target.spec
    out = [
        {
            "file": spec.input.task_definition_file,
            "diff": _diff(old.task if old else None, new.task, old_label, new_label),
        }
    ]
    if new.service is not None or (old is not None and old.service is not None):
        out.append(
            {
                "file": spec.input.service_definition_file or "(no service definition)",
                "diff": _diff(old.service if old else None, new.service, old_label, new_label),
            }
        )
    return out


def build(runtime, deployment: dict, *, running_commit: str, result, predicted: bool) -> dict:
    """The preview of `deployment` given the planner's `result`."""
    preview = {
        "computed_at": datetime.now(UTC).isoformat(),
        "predicted": predicted,
        "target_commit": deployment["trigger"]["commit"]["hash"],
        "running_commit": running_commit,
        "sync_strategy": result.sync_strategy,
        "summary": result.summary,
        "stages": [
            {"id": s["id"], "name": s["name"], "desc": s.get("desc", "")}
            for s in result.stages
            if s.get("visible", True) and not s.get("rollback")
        ],
        "versions": result.versions,
        "diffs": [],
        "error": "",
    }
    if deployment["kind"] == "ECS":
        try:
            target = runtime.deploy_source(deployment, preview["target_commit"])
            running = runtime.deploy_source(deployment, running_commit) if running_commit else None
            preview["diffs"] = definition_diffs(target, running)
        except (SourceError, GitError) as exc:
            preview["error"] = f"The definitions could not be compared: {exc}"
    return preview


def planned_preview(runtime, deployment: dict, result, running_commit: str) -> dict:
    """For planning: never fails the plan (a preview that cannot be made says why)."""
    try:
        return build(runtime, deployment, running_commit=running_commit, result=result, predicted=False)
    except Exception as exc:
        logger.warning("plan preview of %s: %s", deployment["id"], exc)
        return {"error": f"No preview: {exc}", "target_commit": deployment["trigger"]["commit"]["hash"]}


def preview_pending(runtime, deployment: dict) -> None:
    """Give a waiting PENDING deployment its predicted preview, once per deployment."""
    commit = deployment["trigger"]["commit"]["hash"]
    if ((deployment.get("metadata") or {}).get(KEY) or {}).get("target_commit") == commit:
        return
    client = runtime.client
    try:
        source = runtime.deploy_source(deployment, commit)
        spec = source.spec
        if spec.unsupported_reason:
            raise PlanError(spec.unsupported_reason)
        running = client.most_recent_successful_deployment(deployment["application_id"])
        running_commit = running["trigger"]["commit"]["hash"] if running else ""
        running_versions = (running.get("versions") or None) if running else None
        target_versions = versions_of(source.ecs_definitions().task) if deployment["kind"] == "ECS" else []
        result = plan(
            kind=deployment["kind"],
            spec=spec,
            trigger=deployment["trigger"],
            target_versions=target_versions,
            running_versions=running_versions,
            running_commit=running_commit,
        )
        preview = build(runtime, deployment, running_commit=running_commit, result=result, predicted=True)
    except (SourceError, GitError, PlanError) as exc:
        preview = {
            "target_commit": commit,
            "predicted": True,
            "error": f"It cannot be planned as it is: {exc}",
        }
    except ApiError as exc:
        logger.warning("plan preview of %s: %s", deployment["id"], exc)
        return
    try:
        client.save_deployment_metadata(deployment["id"], {KEY: preview})
    except ApiError as exc:
        logger.warning("plan preview of %s: %s", deployment["id"], exc)
