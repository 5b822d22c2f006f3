"""JSON log lines (LOG_FORMAT=json) and the ids that tie a line to a deployment, a stage or a piped.

Two ways to put the ids on a line, usable on both halves (control plane and piped):

    from apps.ops.logging import bind, log_context

    log = bind(logging.getLogger(__name__), deployment_id=d.id, stage_id=s.stage_id)
    log.info("task set created")                  # this line carries both ids

    with log_context(deployment_id=d.id, stage_id=s.stage_id):
        run_stage()                               # every line logged inside, by any logger, carries them

`logger.info("...", extra={"deployment_id": ...})` works too. The ids are plain strings; a key that is
None is left out. This module imports nothing from Django so that logging can be configured before apps.
"""

import contextvars
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

# The ids a line may carry, in the order they are written.
CONTEXT_FIELDS = ("project_id", "piped_id", "application_id", "deployment_id", "stage_id", "command_id")

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "pipeportal_log_context", default=MappingProxyType({})
)


def _clean(ids: Mapping[str, Any]) -> dict[str, str]:
    unknown = set(ids) - set(CONTEXT_FIELDS)
    if unknown:
        raise TypeError(f"unknown log context field(s): {', '.join(sorted(unknown))}")
    return {key: str(value) for key, value in ids.items() if value is not None}


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Every record logged in this block (this thread or task) carries `ids`; blocks nest."""
    token = _context.set({**_context.get(), **_clean(ids)})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    return dict(_context.get())


class ContextAdapter(logging.LoggerAdapter):
    """A logger bound to some ids; ids given with `extra=` on a call win over the bound ones."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def bind(logger: logging.Logger | str, **ids: Any) -> ContextAdapter:
    if isinstance(logger, str):
        logger = logging.getLogger(logger)
    return ContextAdapter(logger, _clean(ids))


class ContextFilter(logging.Filter):
    """Copies the ids of the current `log_context` onto the record, so any formatter can show them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, then the ids it concerns."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _context.get()
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is None:
                value = context.get(key)
            if value is not None:
                payload[key] = str(value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, ensure_ascii=False, default=str)
