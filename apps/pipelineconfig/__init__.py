"""Parsing and validating PipeCD's files: app.pipecd.yaml, piped-config.yaml, control-plane-config.yaml.

Imports no Django models: the piped uses it too. The public interface is re-exported here, lazily, so
that Django's start-up (which imports every installed app) does not build the config models it may
never use.
"""

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AppSpec": "application",
    "ECSAppSpec": "application",
    "ECSInput": "application",
    "ECSTargetGroup": "application",
    "Stage": "application",
    "validate_app_dir": "checks",
    "ControlPlaneSpec": "controlplane",
    "SharedSSOConfig": "controlplane",
    "UnsupportedConfig": "controlplane",
    "parse_mysql_dsn": "controlplane",
    "ECSDefinitions": "ecsdefs",
    "load_ecs_definitions": "ecsdefs",
    "ERROR": "errors",
    "WARNING": "errors",
    "ConfigError": "errors",
    "Problem": "errors",
    "Loaded": "loader",
    "load_app_config": "loader",
    "load_control_plane_config": "loader",
    "load_control_plane_config_from_env": "loader",
    "load_file": "loader",
    "load_piped_config": "loader",
    "spec_problem": "loader",
    "PipedSpec": "piped",
    "MASK": "types",
    "format_duration": "types",
    "parse_duration": "types",
    "parse_percentage": "types",
}

__all__ = [
    "ERROR",
    "MASK",
    "WARNING",
    "AppSpec",
    "ConfigError",
    "ControlPlaneSpec",
    "ECSAppSpec",
    "ECSDefinitions",
    "ECSInput",
    "ECSTargetGroup",
    "Loaded",
    "PipedSpec",
    "Problem",
    "SharedSSOConfig",
    "Stage",
    "UnsupportedConfig",
    "format_duration",
    "load_app_config",
    "load_control_plane_config",
    "load_control_plane_config_from_env",
    "load_ecs_definitions",
    "load_file",
    "load_piped_config",
    "parse_duration",
    "parse_mysql_dsn",
    "parse_percentage",
    "spec_problem",
    "validate_app_dir",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from .application import AppSpec, ECSAppSpec, ECSInput, ECSTargetGroup, Stage
    from .checks import validate_app_dir
    from .controlplane import ControlPlaneSpec, SharedSSOConfig, UnsupportedConfig, parse_mysql_dsn
    from .ecsdefs import ECSDefinitions, load_ecs_definitions
    from .errors import ERROR, WARNING, ConfigError, Problem
    from .loader import (
        Loaded,
        load_app_config,
        load_control_plane_config,
        load_control_plane_config_from_env,
        load_file,
        load_piped_config,
        spec_problem,
    )
    from .piped import PipedSpec
    from .types import MASK, format_duration, parse_duration, parse_percentage
