"""Stage executors: one small class per stage, found in a registry by stage name (and application kind).

A stage runs as short *steps*. `execute(ctx)` answers `Done(status, reason)` when the stage has finished,
or `Continue(after)` to be looked at again in `after` seconds (a wait, an approval, an ECS stability check)
— no step sleeps for minutes, so waits never hold a worker thread. Whatever a step must remember across
steps and restarts goes to the stage metadata, never to memory: the next step may run in another process
after a crash. Steps must be idempotent.

Two ways to record metadata:
- `ctx.save_stage_metadata` / `ctx.save_deployment_metadata`: recorded before the call returns — for what
  must be known before the step goes on (a write-ahead record: the listeners about to be changed, the
  primary about to be replaced);
- `ctx.note_stage_metadata` / `ctx.note_deployment_metadata`: progress that a re-run finds again anyway (a
  task set found by its tags); sent with the next save, before the next call that changes something in the
  cloud (`ctx.platform_provider()` sends them first), or with the step's outcome — so what is recorded at any
  crash is still a state the step could have crashed in with every note saved at once.

Adding a stage: see CONTRIBUTING.md, "Adding a stage".
"""

from __future__ import annotations

import math
import threading
import time
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


class StageTakenOver(Exception):
    """Another worker holds the stage now (our claim ran out), or it was cancelled: this step must stop
    without changing or recording anything more."""


# A claim is trusted for this share of its lease, counted from when the call that granted or renewed it was
# sent: the control plane counts the lease from when it answered, so another worker can take the stage over
# only after this process has stopped trusting its claim.
CLAIM_TRUST = 0.9


@dataclass(eq=False)
class StageContext:
    """Everything a step may use. Built by the worker for one step of one stage.

    With `worker_id` (the claim's holder), saved and noted metadata travel with the step's log lines in one
    report call that the control plane refuses once another worker holds the stage; without it each save is
    a call of its own.
    """

    runtime: Any
    deployment: dict
    stage: dict
    logger: Any
    stop: threading.Event = field(default_factory=threading.Event)
    worker_id: str = ""
    # Until when (time.monotonic()) this worker's claim holds, as far as it can tell: set from the start call
    # and each renewal. A worker cut off from the control plane stops changing things once it has passed.
    claim_valid_until: float = math.inf
    _stage_notes: dict = field(default_factory=dict, repr=False)
    _deployment_notes: dict = field(default_factory=dict, repr=False)
    _when_recorded: list = field(default_factory=list, repr=False)

    @property
    def client(self) -> Any:
        return self.runtime.client

    # --- the claim ---

    def claim_granted(self, sent_at: float, lease: float) -> None:
        """A call sent at `sent_at` (time.monotonic()) granted or renewed the claim for `lease` seconds."""
        self.claim_valid_until = sent_at + lease * CLAIM_TRUST

    def claim_lost(self) -> bool:
        """Whether the step must stop: it was cancelled or taken over (`stop`), or its claim may have run out."""
        if not self.stop.is_set() and self.worker_id and time.monotonic() >= self.claim_valid_until:
            self.stop.set()
        return self.stop.is_set()

    def check_claim(self) -> None:
        """Raise StageTakenOver when the step must change nothing more (before every change in the cloud)."""
        if self.claim_lost():
            raise StageTakenOver(
                "the stage was cancelled or taken over, or this worker could not renew its claim in time"
            )

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
        """Merged into the stage metadata and recorded (with every note) before this returns."""
        if not self.worker_id:
            self.stage["metadata"] = self.client.save_stage_metadata(
                self.deployment_id, self.stage_id, values
            )
            return self.stage["metadata"]
        self.note_stage_metadata(**values)
        self.flush()
        return self.metadata

    def save_deployment_metadata(self, **values: Any) -> dict:
        """Merged into the deployment metadata and recorded (with every note) before this returns."""
        if not self.worker_id:
            self.deployment["metadata"] = self.client.save_deployment_metadata(self.deployment_id, values)
            return self.deployment["metadata"]
        self.note_deployment_metadata(**values)
        self.flush()
        return self.deployment["metadata"]

    def note_stage_metadata(self, **values: Any) -> None:
        """Merged into the stage metadata now, recorded a little later (see the module's docstring)."""
        if not self.worker_id:
            self.save_stage_metadata(**values)
            return
        self.stage["metadata"] = {**(self.stage.get("metadata") or {}), **values}
        self._stage_notes.update(values)

    def note_deployment_metadata(self, **values: Any) -> None:
        """Merged into the deployment metadata now, recorded a little later (see the module's docstring)."""
        if not self.worker_id:
            self.save_deployment_metadata(**values)
            return
        self.deployment["metadata"] = {**(self.deployment.get("metadata") or {}), **values}
        self._deployment_notes.update(values)

    def when_recorded(self, call: Any) -> None:
        """Run `call` once every note made so far is recorded (at once without notes): a side effect that
        must follow its record, as a notification that must not go out twice after a restart."""
        if self.worker_id and self.has_notes:
            self._when_recorded.append(call)
        else:
            call()

    def recorded(self) -> None:
        """The notes went to the control plane: run what waited for that."""
        calls, self._when_recorded = self._when_recorded, []
        for call in calls:
            call()

    @property
    def has_notes(self) -> bool:
        return bool(self._stage_notes or self._deployment_notes)

    def take_notes(self) -> tuple[dict, dict]:
        """(stage, deployment) metadata noted and not sent yet; the caller sends them (the step's report)."""
        notes = (self._stage_notes, self._deployment_notes)
        self._stage_notes, self._deployment_notes = {}, {}
        return notes

    def flush(self) -> None:
        """Send the notes (and the log lines waiting) now, in one call."""
        if not self.has_notes:
            return
        from ..client import ApiError

        stage_notes, deployment_notes = self.take_notes()
        blocks = self.logger.take() if hasattr(self.logger, "take") else []
        try:
            answer = self.client.report_stage_step(
                self.deployment_id,
                self.stage_id,
                worker_id=self.worker_id,
                blocks=blocks,
                metadata=stage_notes or None,
                deployment_metadata=deployment_notes or None,
            )
        except ApiError as exc:
            if blocks:
                self.logger.restore(blocks)
            if exc.conflict:
                self.stop.set()
                raise StageTakenOver(exc.detail) from None
            if exc.status == 0 or exc.status >= 500:
                # Not recorded, for now: they go with the next call (a refused note, a 400, goes nowhere).
                self._stage_notes = {**stage_notes, **self._stage_notes}
                self._deployment_notes = {**deployment_notes, **self._deployment_notes}
            raise
        # The control plane's merge also carries what others wrote meanwhile (approvals, a cancel).
        self.stage["metadata"] = {**answer["metadata"], **self._stage_notes}
        self.deployment["metadata"] = {**answer["deployment_metadata"], **self._deployment_notes}
        self.recorded()

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
        """The application's platform provider; the notes are sent before any call that changes something."""
        from ..platforms import READ_ONLY_CALLS

        provider = self.runtime.platform_provider(self.deployment["platform_provider"], self.kind)
        return NotesFirst(provider, self, READ_ONLY_CALLS.get(self.kind, frozenset()))


class NotesFirst:
    """A platform provider seen by a step: before any call not known to only read, the step's claim is
    checked (a step that was cancelled, or whose claim may have run out, changes nothing more) and its notes
    are recorded, as they would have been had every note been a save."""

    def __init__(self, provider: Any, ctx: StageContext, reads: frozenset[str]):
        self._provider, self._ctx, self._reads = provider, ctx, reads

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._provider, name)
        if name in self._reads or not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._ctx.check_claim()
            self._ctx.flush()
            self._ctx.check_claim()
            return value(*args, **kwargs)

        return call
