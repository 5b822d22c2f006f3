"""What pipeportal/settings.py takes from a control-plane config file at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .controlplane import ControlPlaneSpec, UnsupportedConfig
from .errors import ConfigError
from .loader import load_control_plane_config_from_env, spec_problem


@dataclass
class ControlPlaneSettings:
    spec: ControlPlaneSpec
    file: str
    # `mysql://…` for dj-database-url, when the datastore is wanted (DATABASE_URL unset) and configured.
    database_url: str | None
    filestore: dict[str, Any] | None


def control_plane_settings(
    file: str | None, data: str | None, *, need_database: bool, environ: Mapping[str, str] | None = None
) -> ControlPlaneSettings:
    """Load the file named by `file` (or given base64 as `data`); ConfigError lists every problem."""
    environ = dict(os.environ if environ is None else environ)
    environ.pop("PIPEPORTAL_CONFIG_FILE", None)
    environ.pop("PIPEPORTAL_CONFIG_DATA", None)
    if file:
        environ["PIPEPORTAL_CONFIG_FILE"] = file
    if data:
        environ["PIPEPORTAL_CONFIG_DATA"] = data
    loaded = load_control_plane_config_from_env(environ)
    assert loaded is not None
    spec: ControlPlaneSpec = loaded.spec
    database_url = None
    if need_database and spec.datastore is not None:
        try:
            database_url = spec.mysql_url()
        except UnsupportedConfig as exc:
            raise ConfigError([spec_problem(loaded, exc.path, exc.message)]) from None
    return ControlPlaneSettings(
        spec=spec, file=loaded.file, database_url=database_url, filestore=spec.filestore_settings()
    )
