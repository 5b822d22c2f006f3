"""Reading YAML/JSON text into plain data while remembering where every key and value sits in the file.

PyYAML composes the document into nodes (with line/column marks); we build the Python values ourselves
so that each key path maps to its marks, duplicate keys are reported, and `${VAR}` placeholders can be
expanded in scalar values only (never in keys, comments or YAML structure).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

from .errors import ERROR, Problem

try:  # libyaml is several times faster; the pure-Python loader gives the same nodes and marks.
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

Path = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_PLACEHOLDER = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
_MAX_DEPTH = 64
# YAML aliases let a few lines stand for billions of values ("billion laughs"). A config reuses an anchor
# a handful of times; a document whose aliases expand to more values than this is refused, not built.
MAX_ALIAS_EXPANSION = 100_000
# No config or definition file comes near this; a larger one is refused before it is parsed.
MAX_FILE_CHARS = 8 * 1024 * 1024


def path_str(path: Path) -> str:
    """`("spec", "pipeline", "stages", 2, "with")` -> `spec.pipeline.stages[2].with`."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f'["{part}"]')
    return "".join(out)


class Source:
    """Where each value of one parsed file came from."""

    def __init__(self, file: str):
        self.file = file
        self.value_marks: dict[Path, tuple[int, int]] = {}
        self.key_marks: dict[Path, tuple[int, int]] = {}
        # The text of scalars YAML resolved to something other than a string (`cpu: 256`), so that a
        # definition file's number can become AWS's string without float formatting surprises.
        self.scalar_text: dict[Path, str] = {}
        # Key paths (as path_str) of values that could not be read and became null: their error is said,
        # and what a model then says about the null would only repeat it.
        self.unreadable: set[str] = set()

    def mark(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """The line/column of `path` (its key when `key`), else of its nearest ancestor present in the file."""
        if key and path in self.key_marks:
            return self.key_marks[path]
        probe = tuple(path)
        while probe:
            if probe in self.value_marks:
                return self.value_marks[probe]
            probe = probe[:-1]
        return self.value_marks.get((), (0, 0))

    def problem(self, path: Path, message: str, severity: str = ERROR, *, key: bool = False) -> Problem:
        line, col = self.mark(path, key=key)
        return Problem(self.file, line, col, path_str(path), severity, message)


class _TooManyAliases(Exception):
    pass


class _Builder:
    def __init__(self, loader: Any, source: Source, env: Mapping[str, str] | None):
        self.loader = loader
        self.source = source
        self.env = env
        self.problems: list[Problem] = []
        self.built: set[int] = set()
        self.repeated = 0

    def build(self, node: yaml.Node, path: Path, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            self.problems.append(self.source.problem(path, "nesting is too deep (a recursive YAML alias?)"))
            return None
        # An alias hands us a node built before: count every value built again that way.
        if id(node) in self.built:
            self.repeated += 1
            if self.repeated > MAX_ALIAS_EXPANSION:
                raise _TooManyAliases
        else:
            self.built.add(id(node))
        self.source.value_marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict:
        try:
            self.loader.flatten_mapping(node)  # resolves `<<:` merge keys the way PyYAML does
        except yaml.MarkedYAMLError as exc:
            self.problems.append(_yaml_problem(self.source.file, exc))
            return {}
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                self.problems.append(
                    Problem(
                        self.source.file, line, col, path_str(path), ERROR, "a key must be a plain string"
                    )
                )
                continue
            key = key_node.value  # the key as written: `on:` stays "on", `1:` stays "1"
            child = (*path, key)
            key_mark = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in out:
                first = self.source.key_marks.get(child, (0, 0))[0]
                self.problems.append(
                    Problem(
                        self.source.file,
                        *key_mark,
                        path_str(child),
                        ERROR,
                        f"duplicate key {key!r} (first given on line {first})",
                    )
                )
                continue
            self.source.key_marks[child] = key_mark
            out[key] = self.build(value_node, child, depth + 1)
        return out

    def scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        tag = node.tag
        if tag == _STR:
            value = node.value
            if self.env is not None and "${" in value:
                value = self.expand(value, node, path)
            return value
        if tag == _TIMESTAMP:
            # A date is only ever meant as text in these files; keep what was written.
            return node.value
        constructor = self.loader.yaml_constructors.get(tag)
        if constructor is None:
            line, col = node.start_mark.line + 1, node.start_mark.column + 1
            self.problems.append(
                Problem(self.source.file, line, col, path_str(path), ERROR, f"unsupported YAML tag {tag}")
            )
            self.source.unreadable.add(path_str(path))
            return None
        try:
            value = constructor(self.loader, node)
        except (yaml.YAMLError, ValueError, TypeError, KeyError, OverflowError) as exc:
            # `!!int abc`, `!!bool maybe`, an integer of 5,000 digits, `!!binary` that is not base64…
            line, col = node.start_mark.line + 1, node.start_mark.column + 1
            what = tag.rpartition(":")[2] or tag
            shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
            message = f"{shown!r} is not a valid {what}"
            if "digits" in str(exc):
                message = f"{shown!r} has too many digits ({len(node.value)}) to be read as a number"
            self.problems.append(Problem(self.source.file, line, col, path_str(path), ERROR, message))
            self.source.unreadable.add(path_str(path))
            return None
        if value is not None:
            self.source.scalar_text[path] = node.value
        return value

    def expand(self, value: str, node: yaml.ScalarNode, path: Path) -> str:
        env = self.env
        assert env is not None

        def replace(match: re.Match) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            line = node.start_mark.line + 1
            col = node.start_mark.column + 1
            before = value[: match.start()]
            if not node.style and "\n" not in before:
                col += match.start()
            elif node.style in ("'", '"') and "\n" not in before:
                col += 1 + match.start()
            self.problems.append(
                Problem(
                    self.source.file,
                    line,
                    col,
                    path_str(path),
                    ERROR,
                    f"environment variable {name} is not set (placeholder ${{{name}}})",
                )
            )
            return ""

        return _PLACEHOLDER.sub(replace, value)


def _yaml_problem(file: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem:
        message = f"YAML syntax error: {problem}"
        if context:
            message += f" ({context})"
    else:
        message = f"YAML syntax error: {exc}"
    return Problem(file, line, col, "", ERROR, message)


def parse(
    text: str, file: str, *, expand_env: bool = False, env: Mapping[str, str] | None = None
) -> tuple[Any, Source, list[Problem]]:
    """Parse one YAML (or JSON) document. Returns the data, where it came from, and the problems found.

    With `expand_env`, `${NAME}` in string values is replaced from `env` (default: the process
    environment); `${NAME:-default}` gives a fallback and `$${` writes a literal `${`.
    """
    source = Source(file)
    if len(text) > MAX_FILE_CHARS:
        return None, source, [too_large(file)]
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        return None, source, [_yaml_problem(file, exc)]
    finally:
        loader.dispose()
    if node is None:
        return None, source, [Problem(file, 0, 0, "", ERROR, "the file is empty")]
    builder = _Builder(loader, source, (os.environ if env is None else env) if expand_env else None)
    try:
        data = builder.build(node, ())
    except _TooManyAliases:
        message = (
            f"the document's aliases (*name) expand to more than {MAX_ALIAS_EXPANSION:,} values; "
            "is it a YAML alias bomb?"
        )
        return None, source, [Problem(file, 0, 0, "", ERROR, message)]
    return data, source, builder.problems


def too_large(file: str) -> Problem:
    return Problem(file, 0, 0, "", ERROR, f"the file is larger than {MAX_FILE_CHARS // (1024 * 1024)} MB")


def read_config_text(path: Any, label: str) -> str:
    """A config or definition file's text, refused (ValueError) when it is too large.

    At most one character past the limit is ever read, whatever the file is (a device, a pipe).
    Raises OSError and UnicodeDecodeError as `Path.read_text` does.
    """
    with open(path, encoding="utf-8") as handle:
        text = handle.read(MAX_FILE_CHARS + 1)
    if len(text) > MAX_FILE_CHARS:
        raise ValueError(too_large(label).message)
    return text
