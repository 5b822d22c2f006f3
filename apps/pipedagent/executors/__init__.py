"""Stage executors: one small class per stage, found in a registry by stage name (and application kind).

A stage runs as short *steps*. `execute(ctx)` answers `Done(status, reason)` when the stage has finished,
or `Continue(after)` to be looked at again in `after` seconds (a wait, an approval, an ECS stability check)
— no step sleeps for minutes, so waits never hold a worker thread. Whatever a step must remember across
steps and restarts goes to the stage metadata (`ctx.save_stage_metadata`), never to memory: the next step
may run in another process after a crash. Steps must be idempotent.

Adding a stage: see CONTRIBUTING.md, "Adding a stage".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar


@dataclass(frozen=True)
class Done:
    status: str
    reason: str = ""


@dataclass(frozen=True)
class Continue:
    after: float
    reason: str = ""


SUCCESS, FAILURE, CANCELLED, SKIPPED = "SUCCESS", "FAILURE", "CANCELLED", "SKIPPED"


class StageExecutor:
    """Subclass, set `name` (and `kinds` for a platform's stage), implement `execute`, decorate with @register."""

    name: ClassVar[str] = ""
    # Application kinds this executor serves; empty = every kind (generic stages).
    kinds: ClassVar[frozenset[str]] = frozenset()

    def execute(self, ctx: StageContext) -> Done | Continue:
        raise NotImplementedError


_REGISTRY: dict[tuple[str, str], type[StageExecutor]] = {}


def register(cls: type[StageExecutor]) -> type[StageExecutor]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no stage name")
    for kind in cls.kinds or {"*"}:
        key = (cls.name, kind)
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"stage {cls.name} for {kind} is registered twice")
        _REGISTRY[key] = cls
    return cls


def executor_for(stage_name: str, kind: str) -> StageExecutor | None:
    _load_builtin_executors()
    cls = _REGISTRY.get((stage_name, kind)) or _REGISTRY.get((stage_name, "*"))
    return cls() if cls is not None else None


def registered_stages() -> list[tuple[str, str]]:
    _load_builtin_executors()
    return sorted(_REGISTRY)


def _load_builtin_executors() -> None:
    # Importing the modules runs their @register decorators.
    from ..platforms.ecs import stages  # noqa: F401
    from . import generic  # noqa: F401


@dataclass(eq=False)
class StageContext:
    """Everything a step may use. Built by the worker for one step of one stage."""

    runtime: Any
    deployment: dict
    stage: dict
    logger: Any
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def client(self) -> Any:
        return self.runtime.client

    @property
    def knobs(self) -> Any:
        return self.runtime.config.knobs

    @property
    def deployment_id(self) -> str:
        return self.deployment["id"]

    @property
    def stage_id(self) -> str:
        return self.stage["id"]

    @property
    def kind(self) -> str:
        return self.deployment["kind"]

    @property
    def commit(self) -> dict:
        return self.deployment["trigger"]["commit"]

    @property
    def is_rollback(self) -> bool:
        return bool(self.stage.get("rollback"))

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    # --- metadata (survives restarts) ---

    @property
    def metadata(self) -> dict:
        return self.stage.setdefault("metadata", {})

    def save_stage_metadata(self, **values: Any) -> dict:
        self.stage["metadata"] = self.client.save_stage_metadata(self.deployment_id, self.stage_id, values)
        return self.stage["metadata"]

    def save_deployment_metadata(self, **values: Any) -> dict:
        self.deployment["metadata"] = self.client.save_deployment_metadata(self.deployment_id, values)
        return self.deployment["metadata"]

    @property
    def cancel_requested(self) -> dict | None:
        return (self.deployment.get("metadata") or {}).get("cancel")

    @property
    def skip_requested_by(self) -> str:
        return self.metadata.get("skipped_by") or ""

    # --- sources ---

    @property
    def target(self) -> Any:
        """The application at the deployment's commit."""
        return self.runtime.deploy_source(self.deployment, self.commit["hash"])

    @property
    def running(self) -> Any | None:
        """The application at the commit of the last successful deployment, or None for a first deployment."""
        running_commit = self.deployment.get("running_commit_hash")
        if not running_commit:
            return None
        return self.runtime.deploy_source(self.deployment, running_commit)

    @property
    def stage_config(self) -> Any | None:
        """This stage's entry of the app config's pipeline (None for quick sync and rollback stages)."""
        if self.is_rollback or self.deployment["trigger"]["sync_strategy"] != "PIPELINE":
            return None
        stages = self.target.spec.stages
        index = self.stage["index"]
        return stages[index] if index < len(stages) else None

    @property
    def options(self) -> Any | None:
        config = self.stage_config
        return getattr(config, "options", None) if config is not None else None

    def platform_provider(self) -> Any:
        return self.runtime.platform_provider(self.deployment["platform_provider"], self.kind)


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_seconds(seconds: float) -> str:
    if 0 < seconds < 1:
        return f"{seconds:g}s"
    seconds = max(round(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
