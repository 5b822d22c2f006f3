"""Drift detection for ECS: the Git head's service and task definitions against the live ones, after both
are normalised so that AWS's defaults and echoes do not count as differences.

Normalisation (docs/ecs.md lists it for users):
- only the fields of the create/register calls' inputs are compared; response-only fields (ARNs, revision,
  status, counts, events, compatibilities, registeredAt…) are dropped; `clusterArn` is read as `cluster`
  and compared by name, `roleArn` as `role`;
- the service's task set fields (network configuration, launch type, platform version, service registries,
  capacity providers) are compared with the PRIMARY task set's; load balancers and the task definition
  ARN are not compared on the service (the task definition is compared on its own);
- `desiredCount` is ignored when Git leaves it to autoscaling (0 or unset);
- AWS's defaults are filled in where Git leaves them out: launch type EC2 (unless a capacity provider
  strategy is given), platform version LATEST on Fargate, scheduling strategy REPLICA, propagateTags NONE,
  enableECSManagedTags / enableExecuteCommand false, assignPublicIp DISABLED, network mode bridge,
  `essential` true, container cpu 0, port protocol tcp, hostPort = containerPort with awsvpc;
- lists whose order AWS does not keep are sorted (environment and secrets by name, subnets, security
  groups, compatibilities, containers by name); tags are compared as a mapping, without PipePortal's own
  (`pipecd-dev-*`, `pipeportal-*`) and AWS's (`aws:*`);
- empty values (null, "", [], {}) are the same as absent;
- a service field the live description does not carry at all is not compared (AWS does not echo every
  input back, and the emulator echoes fewer): the task definition, which AWS echoes whole, is compared in
  full.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from functools import cache

import yaml

from .provider import short_name, tag_dict

SYNCED, OUT_OF_SYNC = "SYNCED", "OUT_OF_SYNC"
MAX_DIFF_CHARS = 60_000
OWN_TAG_PREFIXES = ("pipecd-dev-", "pipeportal-", "aws:")
SERVICE_TASK_SET_FIELDS = (
    "networkConfiguration",
    "launchType",
    "platformVersion",
    "serviceRegistries",
    "capacityProviderStrategy",
)
SERVICE_DEFAULTS = {
    "schedulingStrategy": "REPLICA",
    "propagateTags": "NONE",
    "enableECSManagedTags": False,
    "enableExecuteCommand": False,
    "healthCheckGracePeriodSeconds": 0,
}


@dataclass
class DriftResult:
    status: str
    summary: str
    diff: str = ""
    fields: tuple = ()


@cache
def _input_members(operation: str) -> frozenset[str]:
    from apps.pipelineconfig.ecsdefs import ecs_model

    return frozenset(ecs_model().operation_model(operation).input_shape.members)


def _empty(value) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _prune(value):
    """Drop empty values everywhere (AWS echoes `mountPoints: []`, Git may write `command: null`)."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if not _empty(v)}
    if isinstance(value, list):
        return [_prune(v) for v in value if not _empty(_prune(v))]
    return value


def _tags(tags) -> dict:
    mapping = tag_dict(tags) if isinstance(tags, list) else dict(tags or {})
    return {k: v for k, v in sorted(mapping.items()) if not k.startswith(OWN_TAG_PREFIXES)}


def _network(config: dict | None) -> dict | None:
    if not config:
        return config
    config = copy.deepcopy(config)
    vpc = config.get("awsvpcConfiguration")
    if isinstance(vpc, dict):
        vpc.setdefault("assignPublicIp", "DISABLED")
        for key in ("subnets", "securityGroups"):
            if isinstance(vpc.get(key), list):
                vpc[key] = sorted(vpc[key])
    return config


def normalise_task(task: dict) -> dict:
    """A task definition (Git's RegisterTaskDefinition input or DescribeTaskDefinition's answer) in the
    comparable form."""
    members = _input_members("RegisterTaskDefinition")
    out = {k: copy.deepcopy(v) for k, v in task.items() if k in members}
    out["tags"] = _tags(out.get("tags"))
    network_mode = out.setdefault("networkMode", "bridge")
    for key in ("cpu", "memory"):
        if key in out and out[key] is not None:
            out[key] = str(out[key])
    if isinstance(out.get("requiresCompatibilities"), list):
        out["requiresCompatibilities"] = sorted(out["requiresCompatibilities"])
    containers = []
    for container in out.get("containerDefinitions") or []:
        container = dict(container)
        container.setdefault("essential", True)
        container.setdefault("cpu", 0)
        mappings = []
        for mapping in container.get("portMappings") or []:
            mapping = dict(mapping)
            mapping.setdefault("protocol", "tcp")
            if network_mode == "awsvpc" and "containerPort" in mapping:
                mapping.setdefault("hostPort", mapping["containerPort"])
            mappings.append(mapping)
        if mappings:
            container["portMappings"] = mappings
        for key in ("environment", "secrets"):
            if isinstance(container.get(key), list):
                container[key] = sorted(container[key], key=lambda item: str(item.get("name", "")))
        containers.append(container)
    out["containerDefinitions"] = sorted(containers, key=lambda c: str(c.get("name", "")))
    return _prune(out)


def live_service_input(service: dict, primary_task_set: dict | None) -> dict:
    """DescribeServices' answer (and the primary task set) in CreateService's input shape."""
    members = _input_members("CreateService")
    out = {k: copy.deepcopy(v) for k, v in service.items() if k in members}
    if service.get("clusterArn"):
        out["cluster"] = service["clusterArn"]
    if service.get("roleArn"):
        out["role"] = service["roleArn"]
    for key in (*SERVICE_TASK_SET_FIELDS, "loadBalancers", "taskDefinition"):
        out.pop(key, None)
    for key in SERVICE_TASK_SET_FIELDS:
        if primary_task_set and not _empty(primary_task_set.get(key)):
            out[key] = copy.deepcopy(primary_task_set[key])
    return out


def normalise_services(live: dict, git: dict) -> tuple[dict, dict]:
    """Both service definitions in the comparable form (see the module's docstring)."""
    live, git = copy.deepcopy(live), copy.deepcopy(git)
    for side in (live, git):
        side.pop("loadBalancers", None)
        side.pop("taskDefinition", None)
        side.pop("clientToken", None)
        if side.get("cluster"):
            side["cluster"] = short_name(side["cluster"])
        side["tags"] = _tags(side.get("tags"))
        if "networkConfiguration" in side:
            side["networkConfiguration"] = _network(side["networkConfiguration"])
        for key in ("placementConstraints", "placementStrategy"):
            if isinstance(side.get(key), list) and not side[key]:
                side.pop(key)
    if not git.get("desiredCount"):
        git.pop("desiredCount", None)
        live.pop("desiredCount", None)
    if (
        not git.get("launchType")
        and not git.get("capacityProviderStrategy")
        and "capacityProviderStrategy" not in live
    ):
        git["launchType"] = "EC2"
    if git.get("launchType") == "FARGATE":
        git.setdefault("platformVersion", "LATEST")
    for key, value in SERVICE_DEFAULTS.items():
        if key in live:
            git.setdefault(key, value)
    live, git = _prune(live), _prune(git)
    # What the live description does not carry cannot be compared (AWS does not echo every input back).
    for key in list(git):
        if key not in live and key not in ("tags",):
            git.pop(key)
    return live, git


def _dump(value: dict) -> list[str]:
    return yaml.safe_dump(
        value, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120
    ).splitlines()


def _changed_paths(live, git, path: str = "") -> list[str]:
    if isinstance(live, dict) and isinstance(git, dict):
        out = []
        for key in sorted(set(live) | set(git)):
            out += _changed_paths(live.get(key), git.get(key), f"{path}.{key}" if path else key)
        return out
    if isinstance(live, list) and isinstance(git, list) and len(live) == len(git):
        out = []
        for index, (a, b) in enumerate(zip(live, git, strict=True)):
            name = (b.get("name") if isinstance(b, dict) else None) or index
            out += _changed_paths(a, b, f"{path}[{name}]")
        return out
    return [] if live == git else [path]


def compare(live: dict, git: dict) -> DriftResult:
    """`live` and `git` are {"service": …, "taskDefinition": …} in the comparable form."""
    fields = tuple(_changed_paths(live, git))
    if not fields:
        return DriftResult(SYNCED, "The live service and task definition match Git")
    lines = difflib.unified_diff(_dump(live), _dump(git), fromfile="live", tofile="Git", lineterm="", n=3)
    diff = "\n".join(lines)
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + "\n… (diff cut short)"
    shown = ", ".join(fields[:5]) + (f" and {len(fields) - 5} more" if len(fields) > 5 else "")
    summary = f"{len(fields)} field{'s' if len(fields) != 1 else ''} differ{'s' if len(fields) == 1 else ''} from Git: {shown}"
    return DriftResult(OUT_OF_SYNC, summary[:300], diff, fields)


def check(provider, target) -> DriftResult:
    """Compare the live service (and its primary task set's task definition) with `target`'s definitions."""
    git_task = normalise_task(target.definitions.task)
    if target.standalone:
        return DriftResult(SYNCED, "A standalone task has no service to drift")
    service = provider.describe_service(target.cluster, target.name)
    if service is None:
        return DriftResult(
            OUT_OF_SYNC,
            f"Service {target.name} does not exist in cluster {short_name(target.cluster)}",
            f"--- live\n+++ Git\n@@ service @@\n+serviceName: {target.name}",
            ("service",),
        )
    task_sets = provider.task_sets(target.cluster, target.name)
    primary = next((t for t in task_sets if t.get("status") == "PRIMARY"), None)
    git_service = {**target.service, **target.task_set_part, "tags": target.service_tags}
    live_service, git_service = normalise_services(live_service_input(service, primary), git_service)
    live_task: dict = {}
    if primary is not None:
        described = provider.describe_task_definition(primary.get("taskDefinition", ""))
        if described is not None:
            task, tags = described
            live_task = normalise_task({**task, "tags": [{"key": k, "value": v} for k, v in tags.items()]})
    result = compare(
        {"service": live_service, "taskDefinition": live_task},
        {"service": git_service, "taskDefinition": git_task},
    )
    if primary is None and result.status == OUT_OF_SYNC:
        result.summary = f"Service {target.name} has no primary task set; {result.summary}"[:300]
    return result
