"""ECS service and task definition files, normalised to the input shapes of botocore's ECS model.

The key lists come from botocore's own service model (the one boto3 sends with), so a key AWS does not
know is reported with its path instead of failing at deploy time — or vanishing, as in PipeCD.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ERROR, WARNING, ConfigError, Problem
from .source import Source, parse, read_config_text
from .types import suggest

_DROP = object()

# The names PipeCD's files use (from ECS's describe output) for CreateService's `cluster` and `role`.
SERVICE_ALIASES = {"clusterArn": "cluster", "roleArn": "role"}


@functools.cache
def ecs_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("ecs")


@functools.cache
def _input_shape(operation: str) -> Any:
    # Cached: botocore builds new shape objects per lookup, and member lists are cached per shape object.
    return ecs_model().operation_model(operation).input_shape


@functools.cache
def _output_only(output_shape: str, operation: str) -> frozenset[str]:
    """Keys that ECS returns for the resource but does not take when creating it (`revision`, `status`…)."""
    model = ecs_model()
    return frozenset(model.shape_for(output_shape).members) - frozenset(_input_shape(operation).members)


@dataclass
class ECSDefinitions:
    """An app's definitions in boto3's shapes: `service` for create_service (None for a standalone task)
    and `task` for register_task_definition."""

    service: dict | None
    task: dict
    warnings: list[Problem] = field(default_factory=list)
    service_file: str | None = None
    task_file: str = ""

    @property
    def containers(self) -> dict[str, dict]:
        return {c.get("name", ""): c for c in self.task.get("containerDefinitions", [])}


class _Normaliser:
    def __init__(self, source: Source):
        self.source = source
        self.problems: list[Problem] = []

    def warn(self, path: tuple, message: str, *, key: bool = False) -> None:
        self.problems.append(self.source.problem(path, message, WARNING, key=key))

    def error(self, path: tuple, message: str, *, key: bool = False) -> None:
        self.problems.append(self.source.problem(path, message, ERROR, key=key))

    def value(self, value: Any, shape: Any, path: tuple) -> Any:
        if value is None:
            return _DROP
        kind = shape.type_name
        if kind == "structure":
            return self.structure(value, shape, path)
        if kind == "list":
            return self.list(value, shape, path)
        if kind == "map":
            return self.map(value, shape, path)
        return self.scalar(value, shape, path)

    def structure(self, value: Any, shape: Any, path: tuple, skip: frozenset[str] = frozenset()) -> Any:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping ({shape.name}), got {_describe(value)}")
            return _DROP
        members = shape.members
        out: dict[str, Any] = {}
        for key, item in value.items():
            member = members.get(key)
            if member is None:
                if key not in skip:
                    self.warn(
                        (*path, key),
                        f"unknown key {key!r}{suggest(key, members)}: AWS's {shape.name} has no such field; ignored",
                        key=True,
                    )
                continue
            result = self.value(item, member, (*path, key))
            if result is not _DROP:
                out[key] = result
        for required in shape.required_members:
            if value.get(required) is None:
                self.error(path, f"{required} is required ({shape.name})")
        return out

    def list(self, value: Any, shape: Any, path: tuple) -> Any:
        if not isinstance(value, list):
            if isinstance(value, dict) or shape.member.type_name in ("structure", "list", "map"):
                self.error(path, f"expected a list, got {_describe(value)}")
                return _DROP
            self.warn(path, f"expected a list; read the single value {value!r} as a one-item list")
            value = [value]
        out = []
        for index, item in enumerate(value):
            result = self.value(item, shape.member, (*path, index))
            if result is not _DROP:
                out.append(result)
        return out

    def map(self, value: Any, shape: Any, path: tuple) -> Any:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {_describe(value)}")
            return _DROP
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            # Map values are kept even when empty: an empty docker label or option is meaningful.
            result = self.scalar(item, shape.value, (*path, key), keep_empty=True)
            if result is not _DROP:
                out[str(key)] = result
        return out

    def scalar(self, value: Any, shape: Any, path: tuple, keep_empty: bool = False) -> Any:
        kind = shape.type_name
        if isinstance(value, dict | list):
            self.error(path, f"expected a {_TYPE_WORDS.get(kind, kind)}, got {_describe(value)}")
            return _DROP
        if kind == "string":
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, int | float):
                # AWS wants text (`cpu: 256`); use the digits as written, not Python's float formatting.
                value = self.source.scalar_text.get(path, str(value))
            if value == "" and not keep_empty and path[-1] != "value":
                return _DROP
            if shape.enum and value not in shape.enum:
                self.error(
                    path,
                    f"expected one of {', '.join(shape.enum)}, got {value!r}{suggest(value, shape.enum)}",
                )
                return _DROP
            return value
        if kind in ("integer", "long"):
            if isinstance(value, bool):
                self.error(path, f"expected a whole number, got {value!r}")
                return _DROP
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
            if not isinstance(value, int):
                self.error(path, f"expected a whole number, got {value!r}")
                return _DROP
            return value
        if kind == "boolean":
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if not isinstance(value, bool):
                self.error(path, f"expected true or false, got {value!r}")
                return _DROP
            return value
        if kind in ("float", "double"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.error(path, f"expected a number, got {value!r}")
                return _DROP
            return float(value)
        return value  # timestamps and blobs are rare in inputs; botocore checks them itself


_TYPE_WORDS = {
    "string": "string",
    "integer": "whole number",
    "long": "whole number",
    "boolean": "true or false",
}


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    # Shortened: a message may end up on a portal page, and a file read by mistake may hold a secret.
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read(file: Path, label: str) -> tuple[Any, Source, list[Problem]]:
    try:
        text = read_config_text(file, label)
    except FileNotFoundError:
        return None, Source(label), [Problem(label, 0, 0, "", ERROR, "the file does not exist")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, Source(label), [Problem(label, 0, 0, "", ERROR, f"cannot read the file: {exc}")]
    except ValueError as exc:
        return None, Source(label), [Problem(label, 0, 0, "", ERROR, str(exc))]
    if file.suffix == ".json":
        # A .json file must be JSON (YAML would forgive a trailing comma); YAML then finds key positions.
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problem = Problem(label, exc.lineno, exc.colno, "", ERROR, f"JSON syntax error: {exc.msg}")
            return None, Source(label), [problem]
        except (ValueError, RecursionError) as exc:  # a number of thousands of digits, deep nesting
            reason = "it is nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            return (
                None,
                Source(label),
                [Problem(label, 0, 0, "", ERROR, f"the JSON cannot be read: {reason}")],
            )
        marked, source, problems = parse(text, label)
        duplicates = [p for p in problems if p.message.startswith("duplicate key")]
        if duplicates:
            # json.loads keeps the last of two equal keys without a word; YAML's reading names them.
            return None, source, duplicates
        if marked is None or problems:
            return data, Source(label), []  # JSON that YAML cannot read (tabs…): no key positions then
        return marked, source, []
    return parse(text, label)


def _unwrap(data: Any, source: Source, norm: _Normaliser, label: str) -> tuple[Any, tuple]:
    if (
        isinstance(data, dict)
        and "spec" in data
        and set(data) <= {"version", "spec"}
        and isinstance(data["spec"], dict)
    ):
        norm.warn(
            (),
            f"{label} is wrapped as {{version, spec}}; its spec: mapping is read as the definition "
            "(write the definition at the top level, as AWS and PipeCD expect)",
        )
        return data["spec"], ("spec",)
    return data, ()


def normalise_service(data: Any, source: Source, label: str) -> tuple[dict | None, list[Problem]]:
    norm = _Normaliser(source)
    data, base = _unwrap(data, source, norm, label)
    if not isinstance(data, dict):
        norm.error(
            base, f"a service definition is a mapping of CreateService's fields, got {_describe(data)}"
        )
        return None, norm.problems
    data = dict(data)
    for alias, name in SERVICE_ALIASES.items():
        if alias in data:
            if name in data:
                norm.error((*base, alias), f"give only one of {alias} and {name}", key=True)
            data[name] = data.pop(alias)
    for forbidden, why in (
        ("taskDefinition", "PipePortal registers the task definition file and points each task set at it"),
        (
            "loadBalancers",
            "load balancers belong to the task sets: set spec.input.targetGroups in the app config",
        ),
    ):
        if data.get(forbidden):
            norm.error(
                (*base, forbidden), f"{forbidden} is not allowed in a service definition: {why}", key=True
            )
            data.pop(forbidden)
    output_only = _output_only("Service", "CreateService")
    service = norm.structure(data, _input_shape("CreateService"), base, skip=output_only)
    controller = (service or {}).get("deploymentController", {}).get("type")
    if service is not None and controller != "EXTERNAL":
        got = f"type {controller}" if controller else "none"
        norm.error(
            (*base, "deploymentController"),
            f"deploymentController.type must be EXTERNAL (got {got}): PipePortal rolls out through task sets",
        )
    return (service if service is not _DROP else None), norm.problems


def normalise_task(data: Any, source: Source, label: str) -> tuple[dict | None, list[Problem]]:
    norm = _Normaliser(source)
    data, base = _unwrap(data, source, norm, label)
    if not isinstance(data, dict):
        norm.error(
            base, f"a task definition is a mapping of RegisterTaskDefinition's fields, got {_describe(data)}"
        )
        return None, norm.problems
    output_only = _output_only("TaskDefinition", "RegisterTaskDefinition")
    task = norm.structure(data, _input_shape("RegisterTaskDefinition"), base, skip=output_only)
    return (task if task is not _DROP else None), norm.problems


def resolve(app_dir: Path, name: str) -> Path:
    """A definition file's path as PipeCD joins it: relative to the app directory, even when it starts with /."""
    return Path(app_dir) / name.lstrip("/")


def outside_app_dir(app_dir: Path, file: Path) -> bool:
    """Whether `file` leaves the application directory (through `..` or a symbolic link).

    The piped reads these files from its own disk: a config in Git must not point it at its SSH key or
    AWS credentials and have them come back in an error message.
    """
    root = Path(os.path.realpath(app_dir))
    return not Path(os.path.realpath(file)).is_relative_to(root)


def outside_message(name: str) -> str:
    return f"{name} is outside the application directory; the files an app config names must live in it"


def load_definition(file: Path, kind: str) -> tuple[dict | None, list[Problem]]:
    """One definition file (`kind` "service" or "task") normalised; problems name the file."""
    label = str(file)
    data, source, problems = _read(file, label)
    if data is None:
        return None, problems
    if any(p.is_error for p in problems):
        return None, problems
    normaliser = normalise_service if kind == "service" else normalise_task
    result, more = normaliser(data, source, Path(label).name)
    return result, problems + more


def load_ecs_definitions(app_dir: Path | str, spec: Any) -> ECSDefinitions:
    """Read and normalise the definitions an ECSApp spec points to; ConfigError names the file at fault."""
    app_dir = Path(app_dir)
    problems: list[Problem] = []
    service = None
    service_file = None
    task = None
    origin = getattr(spec, "_origin", None)

    def confined(path: Path, key: str, name: str) -> bool:
        if not outside_app_dir(app_dir, path):
            return True
        at = ("spec", "input", key)
        message = outside_message(name)
        problems.append(
            origin.problem(at, message)
            if isinstance(origin, Source)
            else Problem(str(path), 0, 0, "", ERROR, message)
        )
        return False

    if spec.input.service_definition_file:
        service_path = resolve(app_dir, spec.input.service_definition_file)
        service_file = str(service_path)
        if confined(service_path, "serviceDefinitionFile", spec.input.service_definition_file):
            service, found = load_definition(service_path, "service")
            problems += found
    task_path = resolve(app_dir, spec.input.task_definition_file)
    if confined(task_path, "taskDefinitionFile", spec.input.task_definition_file):
        task, found = load_definition(task_path, "task")
        problems += found
    if any(p.is_error for p in problems):
        raise ConfigError(problems)
    assert task is not None
    return ECSDefinitions(
        service=service,
        task=task,
        warnings=problems,
        service_file=service_file,
        task_file=str(task_path),
    )
