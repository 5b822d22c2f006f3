"""Checking files and folders the way `manage.py validateconfig` does: load, then cross-check app dirs."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .checks import validate_app_dir
from .errors import ERROR, ConfigError, Problem
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


def scan_folder(folder: Path) -> tuple[list[Path], list[Problem]]:
    """Every `*.pipecd.yaml` below `folder` (hidden directories such as .git skipped, symlinks to folders not
    followed), and an error for each folder that could not be read: a check never passes over files unseen."""
    found: list[Path] = []
    unreadable: list[Problem] = []

    def refused(exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        unreadable.append(
            Problem(str(exc.filename or folder), 0, 0, "", ERROR, f"cannot read this folder ({reason})")
        )

    for root, dirs, files in os.walk(folder, onerror=refused):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / name for name in files if name.endswith(APP_CONFIG_SUFFIXES)]
    return sorted(p for p in found if p.is_file()), unreadable


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
        if path.is_dir():
            files, unreadable = scan_folder(path)
            report.problems += unreadable
        else:
            files = [path]
        for file in files:
            report.files.append(str(file))
            report.problems += check_file(file, strict=strict)
    return report
