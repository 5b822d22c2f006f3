"""What the piped runs with: its piped-config.yaml (file or base64), the control plane's address, the knobs.

`apiAddress` is `host:port` (HTTPS) or a full URL. Plain HTTP is refused unless `--insecure` is given, so a
typo cannot send the piped key across a network in clear text.
"""

from __future__ import annotations

import base64
import binascii
import os
import socket
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from apps.pipelineconfig.types import mask_url_credentials

VERSION = "0.1.0"


class PipedConfigError(Exception):
    """The piped cannot start; the message says why, in words meant for the person starting it."""


def api_base_url(api_address: str, *, insecure: bool) -> str:
    """`host:port` → `https://host:port/api/piped/v1`; a full URL keeps its scheme (http needs --insecure)."""
    address = (api_address or "").strip()
    if not address.strip("/"):
        raise PipedConfigError("apiAddress is empty: set it to the control plane's host:port or URL.")
    if "://" not in address:
        address = f"https://{address}"
    invalid = PipedConfigError(f"apiAddress {api_address!r} is neither host:port nor an http(s) URL.")
    try:
        parts = urlsplit(address)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:  # an unclosed IPv6 bracket, a port out of range
        raise invalid from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid
    if parts.scheme == "http" and not insecure:
        raise PipedConfigError(
            f"apiAddress {api_address!r} is plain HTTP: the piped key would travel unencrypted. "
            "Use https, or pass --insecure (meant for a control plane on localhost)."
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/api/piped/v1"):
        path = f"{path}/api/piped/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def decode_config_data(data: str) -> str:
    """The seed starts its piped with `--config-data $(base64 piped-config.yaml)`."""
    try:
        return base64.b64decode("".join((data or "").split()), validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise PipedConfigError("--config-data is not base64 of a piped-config.yaml.") from None


def default_work_dir() -> Path:
    return Path(tempfile.gettempdir()) / "pipeportal-piped"


@dataclass
class Knobs:
    """Timings and sizes; every one comes from a PIPED_* setting (docs/settings.md)."""

    command_poll: float = 1.0
    heartbeat: float = 10.0
    dispatch: float = 1.0
    claim_lease: float = 10.0
    log_flush: float = 0.5
    stage_tick: float = 5.0
    app_refresh: float = 60.0
    git_timeout: float = 120.0
    git_retry_base: float = 5.0
    git_retry_max: float = 300.0
    worker_concurrency: int = 8
    ecs_stable_timeout: float = 1800.0
    ecs_poll: float = 5.0
    aws_max_attempts: int = 5
    sync_interval_override: float = 0.0
    # Live state and drift detection (apps/pipedagent/livestate.py); 0 turns one off.
    livestate_interval: float = 15.0
    drift_interval: float = 60.0

    @classmethod
    def from_settings(cls) -> Knobs:
        return cls(
            command_poll=settings.PIPED_COMMAND_POLL_SECONDS,
            heartbeat=settings.PIPED_HEARTBEAT_SECONDS,
            dispatch=settings.PIPED_DISPATCH_SECONDS,
            claim_lease=settings.PIPED_CLAIM_LEASE_SECONDS,
            log_flush=settings.PIPED_LOG_FLUSH_SECONDS,
            stage_tick=settings.PIPED_STAGE_TICK_SECONDS,
            app_refresh=settings.PIPED_APP_REFRESH_SECONDS,
            git_timeout=settings.PIPED_GIT_TIMEOUT_SECONDS,
            git_retry_base=settings.PIPED_GIT_RETRY_BASE_SECONDS,
            git_retry_max=settings.PIPED_GIT_RETRY_MAX_SECONDS,
            worker_concurrency=max(1, settings.PIPED_WORKER_CONCURRENCY),
            ecs_stable_timeout=settings.PIPED_ECS_STABLE_TIMEOUT_SECONDS,
            ecs_poll=settings.PIPED_ECS_POLL_SECONDS,
            aws_max_attempts=max(1, settings.PIPED_AWS_MAX_ATTEMPTS),
            sync_interval_override=settings.PIPED_SYNC_INTERVAL_SECONDS,
            livestate_interval=settings.PIPED_LIVESTATE_SECONDS,
            drift_interval=settings.PIPED_DRIFT_SECONDS,
        )


@dataclass
class PipedRuntimeConfig:
    """The loaded piped config plus what the command line and the settings add."""

    spec: Any  # apps.pipelineconfig.PipedSpec
    api_url: str
    key: str
    work_dir: Path
    knobs: Knobs = field(default_factory=Knobs)
    insecure: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def project_id(self) -> str:
        return self.spec.project_id

    @property
    def piped_id(self) -> str:
        return self.spec.piped_id

    @property
    def sync_interval(self) -> float:
        if self.knobs.sync_interval_override > 0:
            return self.knobs.sync_interval_override
        interval = self.spec.sync_interval
        seconds = interval.total_seconds() if isinstance(interval, timedelta) else float(interval)
        return max(seconds, 1.0)

    @property
    def queue(self) -> str:
        """The piped's own Celery queue (the control plane's is `cp`)."""
        return f"piped-{self.piped_id}"

    def masked_config(self) -> str:
        import yaml

        masked = {"apiVersion": "pipecd.dev/v1beta1", "kind": "Piped", "spec": self.spec.mask()}
        return yaml.safe_dump(masked, sort_keys=False, allow_unicode=True)

    def repositories(self) -> list[dict]:
        return [
            {"repo_id": r.repo_id, "remote": mask_url_credentials(r.remote), "branch": r.branch}
            for r in self.spec.repositories
        ]

    def platform_providers(self) -> list[dict]:
        return [{"name": p.name, "type": p.type} for p in self.spec.platform_providers]


def load_runtime_config(
    *,
    config_file: str | None = None,
    config_data: str | None = None,
    insecure: bool = False,
    work_dir: str | None = None,
) -> PipedRuntimeConfig:
    """Load and check everything the piped needs before it contacts anyone."""
    from apps.pipelineconfig import ConfigError, load_piped_config

    if bool(config_file) == bool(config_data):
        raise PipedConfigError("Give exactly one of --config-file and --config-data.")
    try:
        if config_file:
            if not Path(config_file).is_file():
                raise PipedConfigError(f"--config-file {config_file}: no such file.")
            loaded = load_piped_config(config_file)
        else:
            loaded = load_piped_config("--config-data", text=decode_config_data(config_data or ""))
    except ConfigError as exc:
        raise PipedConfigError(f"The piped config is invalid:\n{exc}") from None
    if loaded.kind != "Piped":
        raise PipedConfigError(f"The config is a {loaded.kind}, not a Piped config.")
    spec = loaded.spec
    try:
        key = spec.piped_key()
    except (OSError, ValueError) as exc:
        raise PipedConfigError(f"Cannot read the piped key: {exc}") from None
    if not key:
        raise PipedConfigError("The piped key is empty (pipedKeyData / pipedKeyFile).")
    api_url = api_base_url(spec.api_address, insecure=insecure)
    chosen = work_dir or settings.PIPED_WORK_DIR or str(default_work_dir())
    path = Path(chosen).expanduser() / spec.piped_id
    try:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise PipedConfigError(f"Cannot use the work directory {path}: {exc.strerror}.") from None
    return PipedRuntimeConfig(
        spec=spec,
        api_url=api_url,
        key=key,
        work_dir=path,
        knobs=Knobs.from_settings(),
        insecure=insecure,
        warnings=[str(w) for w in loaded.warnings],
    )


def worker_name() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"
