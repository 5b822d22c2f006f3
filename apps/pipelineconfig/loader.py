"""Loading files: parse, check apiVersion/kind, validate the spec, and turn every failure into a `Problem`.

Pydantic's errors are mapped back to the file: their location becomes the key path, the path finds the
line and column, and the message says what was expected. Nothing here ever lets a traceback reach a user.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .application import APP_SPECS, AppSpec, required_options
from .constants import (
    API_VERSION,
    APP_KINDS,
    KIND_CONTROL_PLANE,
    KIND_ECS_APP,
    KIND_PIPED,
    KNOWN_KINDS,
    UNSUPPORTED_KINDS,
)
from .controlplane import ControlPlaneSpec
from .errors import ERROR, WARNING, ConfigError, Problem
from .piped import PipedSpec
from .source import Source, parse, path_str, read_config_text
from .types import suggest

SPEC_MODELS: dict[str, type] = {**APP_SPECS, KIND_PIPED: PipedSpec, KIND_CONTROL_PLANE: ControlPlaneSpec}
ROOT_KEYS = ("apiVersion", "kind", "spec")


@dataclass
class Loaded:
    """A file that loaded: its kind, the validated `spec:` model, and the warnings about it."""

    kind: str
    spec: Any
    warnings: list[Problem]
    file: str
    api_version: str = API_VERSION
    source: Source | None = field(default=None, repr=False)

    @property
    def is_app(self) -> bool:
        return self.kind in APP_KINDS


# --- Mapping pydantic's errors to the file --------------------------------------------------------------


def _file_path(loc: tuple, data: Any, *, missing: bool) -> tuple:
    """Pydantic's `loc` as a path of keys present in `data`: union tags and such are left out."""
    out: list[Any] = []
    current = data
    for index, part in enumerate(loc):
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        ):
            out.append(part)
            current = current[part]
        elif missing and index == len(loc) - 1 and isinstance(part, str):
            out.append(part)
    return tuple(out)


def _at(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: dict) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    got = _describe(value)
    if kind == "string_type":
        hint = " (put quotes around it)" if isinstance(value, bool | int | float) else ""
        return f"expected a string, got {got}{hint}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"expected a number, got {got}"
    if kind == "list_type":
        return f"expected a list, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {got}"
    if kind in ("literal_error", "enum"):
        return f"expected {ctx.get('expected', '?')}, got {got}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return f"{err['msg'].lower()}, got {got}"
    return err["msg"]


def problems_from_validation(
    exc: ValidationError, data: Any, source: Source, prefix: tuple = ("spec",), *, unknown: str = ERROR
) -> list[Problem]:
    """One Problem per pydantic error; `unknown` is the severity given to unknown keys."""
    problems: list[Problem] = []
    seen: set[tuple] = set()
    for err in exc.errors(include_url=False):
        kind = err["type"]
        ctx = err.get("ctx") or {}
        path = _file_path(err["loc"], data, missing=kind == "missing")
        severity = ERROR
        at_key = False
        if kind == "config":
            message = ctx["message"]
            at = ctx.get("at")
            if at:
                path = (*path, *at)
        elif kind == "missing" and path and path[-1] == "with":
            stage = _at(data, path[:-1])
            name = stage.get("name") if isinstance(stage, dict) else None
            needed = " and ".join(required_options(name)) if isinstance(name, str) else ""
            message = f"{name} needs with: giving {needed}" if needed else "with: is required"
        elif kind == "missing":
            message = f"{path[-1] if path else 'a value'} is required"
        elif kind == "extra_forbidden":
            key = path[-1] if path else "?"
            message = f"unknown key {key!r}{suggest(str(key), _KNOWN_KEYS)}"
            severity = unknown
            at_key = True
            if unknown == WARNING:
                message += "; ignored"
        else:
            message = _message(err)
        full = (*prefix, *path)
        if (full, message) in seen:  # a union can report the same thing once per member
            continue
        seen.add((full, message))
        problems.append(source.problem(full, message, severity, key=at_key))
    return problems


def _aliases(model: type, out: set[str], seen: set[type]) -> None:
    if model in seen or not hasattr(model, "model_fields"):
        return
    seen.add(model)
    for name, info in model.model_fields.items():
        out.add(info.serialization_alias or info.alias or name)
        for arg in _walk_types(info.annotation):
            _aliases(arg, out, seen)


def _walk_types(annotation: Any) -> list:
    from typing import get_args

    found = [annotation]
    for arg in get_args(annotation):
        found.extend(_walk_types(arg))
    return found


_KNOWN_KEYS: set[str] = set()
for _model in SPEC_MODELS.values():
    _aliases(_model, _KNOWN_KEYS, set())


def _drop(data: Any, path: tuple) -> None:
    """Remove the key at `path` (below spec) from `data`, for a second pass without unknown keys."""
    current = data
    for part in path[:-1]:
        current = current[part]
    current.pop(path[-1], None)


# --- Loading --------------------------------------------------------------------------------------------


def _read(path: str | os.PathLike | None, text: str | None, default_label: str) -> tuple[str, str]:
    if text is not None:
        return text, str(path) if path is not None else default_label
    if path is None:
        raise TypeError("give the path of the file or its text")
    label = str(path)
    try:
        return read_config_text(path, label), label
    except FileNotFoundError:
        raise ConfigError([Problem(label, 0, 0, "", ERROR, "the file does not exist")]) from None
    except IsADirectoryError:
        raise ConfigError([Problem(label, 0, 0, "", ERROR, "this is a directory, not a file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(label, 0, 0, "", ERROR, f"cannot read the file: {exc}")]) from None
    except ValueError as exc:
        raise ConfigError([Problem(label, 0, 0, "", ERROR, str(exc))]) from None


def _check_root(data: Any, source: Source, expected: tuple[str, ...], what: str) -> tuple[str | None, list]:
    problems: list[Problem] = []
    if not isinstance(data, dict):
        problems.append(
            source.problem((), f"expected a mapping with apiVersion, kind and spec, got {_describe(data)}")
        )
        return None, problems
    for key in data:
        if key not in ROOT_KEYS:
            problems.append(source.problem((key,), f"unknown key {key!r}{suggest(key, ROOT_KEYS)}", key=True))
    api_version = data.get("apiVersion")
    if api_version is None:
        problems.append(source.problem((), f"apiVersion is required ({API_VERSION})"))
    elif api_version != API_VERSION:
        problems.append(
            source.problem(("apiVersion",), f"expected apiVersion {API_VERSION}, got {api_version!r}")
        )
    kind = data.get("kind")
    if kind is None:
        problems.append(source.problem((), f"kind is required ({what})"))
        return None, problems
    if not isinstance(kind, str) or kind not in KNOWN_KINDS:
        if kind in UNSUPPORTED_KINDS:
            message = f"kind {kind} is not read by PipePortal; expected {what}"
        else:
            message = f"unknown kind {kind!r}{suggest(str(kind), KNOWN_KINDS, 0.6)}; expected {what}"
        problems.append(source.problem(("kind",), message))
        return None, problems
    if kind not in expected:
        problems.append(source.problem(("kind",), f"this is a {kind} config; expected {what}"))
        return None, problems
    return kind, problems


def _follows_from(path: str, env_paths: set[str]) -> bool:
    """Whether an error at `path` may just be the consequence of an unset variable at or below it."""
    return any(e == path or e.startswith((f"{path}.", f"{path}[")) for e in env_paths)


def _validate(kind: str, data: dict, source: Source, problems: list[Problem]) -> Any:
    model = SPEC_MODELS[kind]
    spec_data = data.get("spec")
    if spec_data is None and kind in APP_KINDS:
        spec_data = {}  # PipeCD reads an app config without spec: as all defaults
    if spec_data is None:
        problems.append(source.problem((), "spec is required"))
        return None
    if not isinstance(spec_data, dict):
        problems.append(source.problem(("spec",), f"expected a mapping, got {_describe(spec_data)}"))
        return None
    # An unset ${VAR} already has its error; the empty value it left must not add a second, confusing one.
    env_paths = {p.path for p in problems if p.message.startswith("environment variable")}
    env_paths |= source.unreadable
    unknown = ERROR if kind in APP_KINDS else WARNING
    for _attempt in range(2):
        try:
            return model.model_validate(spec_data, by_alias=True, by_name=False)
        except ValidationError as exc:
            found = problems_from_validation(exc, spec_data, source, unknown=unknown)
            found = [p for p in found if not _follows_from(p.path, env_paths)]
            problems.extend(found)
            if unknown == WARNING and found and not any(p.is_error for p in found):
                # Only unknown keys: PipeCD's schema grows; read the file without them.
                for err in exc.errors():
                    if err["type"] == "extra_forbidden":
                        _drop(spec_data, _file_path(err["loc"], spec_data, missing=False))
                continue
            return None
    return None


def _file_warnings(spec: Any, source: Source) -> list[Problem]:
    """Referenced files (keys, credentials) that do not exist: warnings, read only when used."""
    from .piped import _files

    out = []
    for path, file in _files(spec, ("spec",)):
        if not Path(file).exists():
            out.append(
                source.problem(path, f"the file {file} does not exist (yet); it is read when used", WARNING)
            )
    return out


def _load(
    text: str,
    label: str,
    expected: tuple[str, ...],
    what: str,
    *,
    expand_env: bool = False,
    env: Mapping[str, str] | None = None,
) -> Loaded:
    data, source, problems = parse(text, label, expand_env=expand_env, env=env)
    if data is None:
        raise ConfigError(problems)
    kind, found = _check_root(data, source, expected, what)
    problems += found
    spec = None
    if kind is not None:
        spec = _validate(kind, data, source, problems)
    if spec is not None and kind in (KIND_PIPED, KIND_CONTROL_PLANE):
        problems += _file_warnings(spec, source)
    if spec is None or any(p.is_error for p in problems):
        if not any(p.is_error for p in problems):  # pragma: no cover - every failure above adds an error
            problems.append(Problem(label, 0, 0, "", ERROR, "the file could not be read"))
        raise ConfigError(problems)
    if isinstance(spec, AppSpec):
        spec._origin = source
    problems.sort(key=lambda p: (p.line, p.col))
    return Loaded(kind=kind, spec=spec, warnings=problems, file=label, source=source)


def load_app_config(path: str | os.PathLike, *, text: str | None = None) -> Loaded:
    """An application config (`app.pipecd.yaml`). `${...}` is never expanded here: the file comes from Git."""
    text, label = _read(path, text, "app.pipecd.yaml")
    return _load(text, label, APP_KINDS, f"an application config (kind {KIND_ECS_APP})")


def load_piped_config(
    path: str | os.PathLike | None = None,
    *,
    text: str | None = None,
    expand_env: bool = True,
    env: Mapping[str, str] | None = None,
) -> Loaded:
    """A piped config (`kind: Piped`); `${VAR}` in values is taken from `env` (default: the environment)."""
    text, label = _read(path, text, "<piped config>")
    return _load(text, label, (KIND_PIPED,), "a piped config (kind Piped)", expand_env=expand_env, env=env)


def load_control_plane_config(
    path: str | os.PathLike | None = None,
    *,
    text: str | None = None,
    expand_env: bool = True,
    env: Mapping[str, str] | None = None,
) -> Loaded:
    """A control-plane config (`kind: ControlPlane`); `${VAR}` in values is taken from the environment."""
    text, label = _read(path, text, "<control-plane config>")
    return _load(
        text,
        label,
        (KIND_CONTROL_PLANE,),
        "a control-plane config (kind ControlPlane)",
        expand_env=expand_env,
        env=env,
    )


def load_control_plane_config_from_env(environ: Mapping[str, str] | None = None) -> Loaded | None:
    """The control-plane config named by PIPEPORTAL_CONFIG_FILE, or given base64 in PIPEPORTAL_CONFIG_DATA."""
    environ = os.environ if environ is None else environ
    path = environ.get("PIPEPORTAL_CONFIG_FILE")
    data = environ.get("PIPEPORTAL_CONFIG_DATA")
    if path and data:
        raise ConfigError(
            [
                Problem(
                    "PIPEPORTAL_CONFIG_DATA",
                    0,
                    0,
                    "",
                    ERROR,
                    "set only one of PIPEPORTAL_CONFIG_FILE and PIPEPORTAL_CONFIG_DATA",
                )
            ]
        )
    if path:
        return load_control_plane_config(path, env=environ)
    if data:
        try:
            text = base64.b64decode("".join(data.split()), validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise ConfigError(
                [
                    Problem(
                        "PIPEPORTAL_CONFIG_DATA",
                        0,
                        0,
                        "",
                        ERROR,
                        "not base64 of a UTF-8 file (base64 -w0 FILE)",
                    )
                ]
            ) from None
        return load_control_plane_config(text=text, env=environ)
    return None


def detect_kind(text: str, label: str) -> str | None:
    """The `kind:` of a document, or None when it cannot be read (load it to hear why)."""
    data, _, _ = parse(text, label)
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def load_file(
    path: str | os.PathLike, *, strict: bool = False, env: Mapping[str, str] | None = None
) -> Loaded:
    """Any of the three kinds of file, told apart by `kind:`. With `strict`, a warning is an error."""
    text, label = _read(path, None, "")
    kind = detect_kind(text, label)
    if kind == KIND_PIPED:
        loaded = load_piped_config(path, text=text, env=env)
    elif kind == KIND_CONTROL_PLANE:
        loaded = load_control_plane_config(path, text=text, env=env)
    else:
        loaded = _load(
            text, label, (*APP_KINDS, KIND_PIPED, KIND_CONTROL_PLANE), "one of " + ", ".join(KNOWN_KINDS)
        )
    if strict and loaded.warnings:
        raise ConfigError([w.as_error() for w in loaded.warnings])
    return loaded


def spec_problem(loaded: Loaded, path: str | tuple, message: str, severity: str = ERROR) -> Problem:
    """A Problem about a key of a loaded file (`path` below the document root, e.g. "spec.datastore.type")."""
    if isinstance(path, str):
        parts: list[Any] = []
        for piece in path.replace("]", "").split("."):
            name, *indexes = piece.split("[")
            parts.append(name)
            parts.extend(int(i) for i in indexes)
        path = tuple(parts)
    if loaded.source is None:
        return Problem(loaded.file, 0, 0, path_str(path), severity, message)
    return loaded.source.problem(path, message, severity)
