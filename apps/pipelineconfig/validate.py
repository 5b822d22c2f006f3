"""Checking files and folders the way `manage.py validateconfig` does: load, then cross-check app dirs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .checks import validate_app_dir
from .errors import ConfigError, Problem
from .loader import load_file

APP_CONFIG_SUFFIXES = (".pipecd.yaml", ".pipecd.yml")


@dataclass
class Report:
    files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]


def find_configs(folder: Path) -> list[Path]:
    """Every `*.pipecd.yaml` below `folder`, skipping hidden directories such as .git."""
    found = []
    for suffix in APP_CONFIG_SUFFIXES:
        for path in folder.rglob(f"*{suffix}"):
            relative = path.relative_to(folder).parts
            if path.is_file() and not any(part.startswith(".") for part in relative[:-1]):
                found.append(path)
    return sorted(found)


def check_file(path: Path, *, strict: bool = False) -> list[Problem]:
    """A file's problems: its own, and for an app config those of its directory (definitions, cross-checks)."""
    try:
        loaded = load_file(path)
    except ConfigError as exc:
        problems = list(exc.problems)
    else:
        problems = list(loaded.warnings)
        if loaded.is_app:
            problems += validate_app_dir(path.parent, loaded.spec)
    if strict:
        problems = [p.as_error() for p in problems]
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.file, p.line, p.col))


def check_paths(paths: Iterable[Path], *, strict: bool = False) -> Report:
    """Files are checked as given; folders contribute their `*.pipecd.yaml` files. Paths must exist."""
    report = Report()
    for path in paths:
        files = find_configs(path) if path.is_dir() else [path]
        for file in files:
            report.files.append(str(file))
            report.problems += check_file(file, strict=strict)
    return report
