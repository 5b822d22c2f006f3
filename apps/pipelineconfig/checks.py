"""Cross-checks of an application directory: the app config against its definition files.

Loading a file only parses it; these checks catch what AWS would refuse at deploy time (a target group
naming a container the task definition does not have, a port it does not publish, a missing file…).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .application import AppSpec, ECSAppSpec, ECSTrafficRoutingOptions
from .ecsdefs import ECSDefinitions, load_ecs_definitions, outside_app_dir, outside_message, resolve
from .errors import ERROR, WARNING, ConfigError, Problem
from .source import Source

_ROLLOUT_STAGES = ("ECS_CANARY_ROLLOUT", "ECS_PRIMARY_ROLLOUT", "ECS_TRAFFIC_ROUTING", "ECS_CANARY_CLEAN")


class _Reporter:
    def __init__(self, spec: AppSpec, app_dir: Path):
        origin = spec._origin
        self.source: Source = (
            origin if isinstance(origin, Source) else Source(str(app_dir / "app.pipecd.yaml"))
        )
        self.problems: list[Problem] = []

    def add(self, path: tuple, message: str, severity: str = ERROR) -> None:
        self.problems.append(self.source.problem(("spec", *path), message, severity))


def validate_app_dir(app_dir: Path | str, spec: Any) -> list[Problem]:
    """Every problem of an app directory beyond its config's own syntax: errors and warnings."""
    app_dir = Path(app_dir)
    report = _Reporter(spec, app_dir)
    if not isinstance(spec, ECSAppSpec):
        report.add((), spec.unsupported_reason or "this kind is not deployed by PipePortal", WARNING)
        return report.problems
    _check_files(app_dir, spec, report)
    if any(p.is_error for p in report.problems):
        return report.problems
    try:
        definitions = load_ecs_definitions(app_dir, spec)
    except ConfigError as exc:
        report.problems.extend(exc.problems)
        return report.problems
    report.problems.extend(definitions.warnings)
    _check_target_groups(spec, definitions, report)
    _check_pipeline(spec, definitions, report)
    _check_standalone(spec, definitions, report)
    return report.problems


def _check_files(app_dir: Path, spec: ECSAppSpec, report: _Reporter) -> None:
    for key, name in (
        ("serviceDefinitionFile", spec.input.service_definition_file),
        ("taskDefinitionFile", spec.input.task_definition_file),
    ):
        if name and outside_app_dir(app_dir, resolve(app_dir, name)):
            report.add(("input", key), outside_message(name))
        elif name and not resolve(app_dir, name).is_file():
            default = " (the default when taskDefinitionFile is not given)" if name == "taskdef.json" else ""
            report.add(("input", key), f"the file {name}{default} does not exist in {app_dir}")
    for index, name in enumerate(spec.encryption.decryption_targets if spec.encryption else []):
        if not resolve(app_dir, name).is_file():
            report.add(("encryption", "decryptionTargets", index), f"the file {name} does not exist", WARNING)
    if spec.attachment:
        for key, name in spec.attachment.sources.items():
            if not resolve(app_dir, name).is_file():
                report.add(("attachment", "sources", key), f"the file {name} does not exist", WARNING)
        for index, name in enumerate(spec.attachment.targets):
            if not resolve(app_dir, name).is_file():
                report.add(("attachment", "targets", index), f"the file {name} does not exist", WARNING)


def _check_target_groups(spec: ECSAppSpec, definitions: ECSDefinitions, report: _Reporter) -> None:
    containers = definitions.containers
    task_file = Path(definitions.task_file).name
    for role in ("primary", "canary"):
        group = getattr(spec.input.target_groups, role)
        if group is None:
            continue
        path = ("input", "targetGroups", role)
        container = containers.get(group.container_name)
        if container is None:
            names = ", ".join(sorted(n for n in containers if n)) or "none"
            report.add(
                (*path, "containerName"),
                f"container {group.container_name!r} is not defined in {task_file} (its containers: {names}); "
                "AWS would refuse to create the task set",
            )
            continue
        ports = [m.get("containerPort") for m in container.get("portMappings", []) if "containerPort" in m]
        if group.container_port not in ports:
            listed = ", ".join(str(p) for p in ports) or "none"
            report.add(
                (*path, "containerPort"),
                f"container {group.container_name!r} in {task_file} does not publish port {group.container_port} "
                f"(its containerPort values: {listed})",
            )


def _check_pipeline(spec: ECSAppSpec, definitions: ECSDefinitions, report: _Reporter) -> None:
    stages = spec.stages
    routing = [i for i, s in enumerate(stages) if s.name == "ECS_TRAFFIC_ROUTING"]
    if definitions.service is None:
        for index, stage in enumerate(stages):
            if stage.name in _ROLLOUT_STAGES:
                report.add(
                    ("pipeline", "stages", index, "name"),
                    f"{stage.name} needs a service; this app runs a standalone task (no serviceDefinitionFile)",
                )
        return
    groups = spec.input.target_groups
    if spec.input.access_type == "SERVICE_DISCOVERY":
        for index in routing:
            report.add(
                ("pipeline", "stages", index, "name"),
                "ECS_TRAFFIC_ROUTING shifts load balancer weights; with accessType SERVICE_DISCOVERY there is none",
            )
        return
    if groups.primary is None:
        severity = ERROR if routing else WARNING
        report.add(
            ("input", "targetGroups"),
            "accessType ELB without targetGroups.primary: the task sets get no load balancer",
            severity,
        )
    if routing and groups.canary is None:
        report.add(
            ("pipeline", "stages", routing[0], "name"),
            "ECS_TRAFFIC_ROUTING needs spec.input.targetGroups.canary (the canary task set's target group)",
        )
    # Traffic for the canary target group while no canary task set serves it would all fail (the stage
    # refuses it at deploy time; said here before anything is deployed).
    canary_up = False
    for index, stage in enumerate(stages):
        if stage.name == "ECS_CANARY_ROLLOUT":
            canary_up = True
        elif stage.name in ("ECS_CANARY_CLEAN", "ECS_SYNC"):
            canary_up = False
        elif stage.name == "ECS_TRAFFIC_ROUTING" and isinstance(stage.options, ECSTrafficRoutingOptions):
            share = stage.options.weights()[1]
            if share > 0 and not canary_up:
                report.add(
                    ("pipeline", "stages", index, "with"),
                    f"routes {share} % of the traffic to the canary target group while no canary task set "
                    "serves it (no ECS_CANARY_ROLLOUT before this stage, or the canary was removed): those "
                    "requests would fail, and the stage refuses to do it",
                    WARNING,
                )


def _check_standalone(spec: ECSAppSpec, definitions: ECSDefinitions, report: _Reporter) -> None:
    if definitions.service is not None:
        return
    if definitions.task.get("networkMode") == "awsvpc":
        vpc = spec.input.awsvpc_configuration
        if vpc is None or not vpc.subnets:
            report.add(
                ("input", "awsvpcConfiguration"),
                "a standalone task with networkMode awsvpc needs awsvpcConfiguration.subnets to run",
            )
