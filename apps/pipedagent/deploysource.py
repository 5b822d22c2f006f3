"""A deploy source: an application's directory and config as they are at one commit (read from the shared
clone, exported on demand for the stages that need files on disk)."""

from __future__ import annotations

import posixpath
import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path
from typing import Any

from .gitrepo import LocalRepo

KIND_OF_APP_CONFIG = {
    "ECSApp": "ECS",
    "KubernetesApp": "KUBERNETES",
    "TerraformApp": "TERRAFORM",
    "LambdaApp": "LAMBDA",
    "CloudRunApp": "CLOUDRUN",
}


class SourceError(Exception):
    """The application's files at this commit cannot be used; the message says why (file, line, key)."""


def config_path(app_path: str, config_filename: str) -> str:
    app_path = app_path.strip("/")
    return config_filename if app_path in ("", ".") else posixpath.join(app_path, config_filename)


def load_app_text(path: str, text: str | None):
    """Parse an app config with the config package; a missing file or a bad one is a SourceError."""
    from apps.pipelineconfig import ConfigError, load_app_config

    if text is None:
        raise SourceError(f"{path}: the application config file was not found in Git.")
    try:
        return load_app_config(path, text=text)
    except ConfigError as exc:
        raise SourceError(str(exc)) from None


class DeploySource:
    def __init__(
        self, repo: LocalRepo, commit: str, app_path: str, config_filename: str, expected_kind: str = ""
    ):
        self.repo = repo
        self.commit = commit
        self.app_path = app_path.strip("/") or "."
        self.config_filename = config_filename
        self.expected_kind = expected_kind
        self._lock = threading.Lock()

    @property
    def config_file(self) -> str:
        return config_path(self.app_path, self.config_filename)

    @cached_property
    def loaded(self) -> Any:
        self.repo.ensure_commit(self.commit)
        loaded = load_app_text(self.config_file, self.repo.read_file(self.commit, self.config_file))
        kind = KIND_OF_APP_CONFIG.get(loaded.kind)
        if self.expected_kind and kind != self.expected_kind:
            raise SourceError(
                f"{self.config_file}: kind {loaded.kind} does not match the application's kind {self.expected_kind}."
            )
        return loaded

    @property
    def spec(self) -> Any:
        return self.loaded.spec

    @cached_property
    def app_dir(self) -> Path:
        self.repo.ensure_commit(self.commit)
        return self.repo.export(self.commit, self.app_path)

    def ecs_definitions(self) -> Any:
        from apps.pipelineconfig import ConfigError, load_ecs_definitions

        with self._lock:
            cached = getattr(self, "_ecs", None)
            if cached is not None:
                return cached
            try:
                definitions = load_ecs_definitions(self.app_dir, self.spec)
            except ConfigError as exc:
                raise SourceError(self.relative(str(exc))) from None
            definitions.warnings = [self.relative(str(w)) for w in definitions.warnings]
            self._ecs = definitions
            return definitions

    def relative(self, message: str) -> str:
        """Messages name files as they are in the repository, not where the piped exported them."""
        prefix = str(self.app_dir).rstrip("/") + "/"
        in_repo = "" if self.app_path == "." else f"{self.app_path}/"
        return message.replace(prefix, in_repo)


class SourceCache:
    """A few recent deploy sources per process, so the steps of one deployment share their parsing."""

    def __init__(self, size: int = 32):
        self.size = size
        self._items: OrderedDict[tuple, DeploySource] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, repo: LocalRepo, commit: str, app_path: str, config_filename: str, kind: str = ""
    ) -> DeploySource:
        key = (repo.repo_id, commit, app_path, config_filename, kind)
        with self._lock:
            source = self._items.get(key)
            if source is None:
                source = DeploySource(repo, commit, app_path, config_filename, kind)
                self._items[key] = source
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return source
