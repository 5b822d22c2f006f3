"""JSON log lines (LOG_FORMAT=json) and the ids that tie a line to a deployment, a stage or a piped.

Two ways to put the ids on a line, usable on both halves (control plane and piped):

    from apps.ops.logging import bind, log_context

    log = bind(logging.getLogger(__name__), deployment_id=d.id, stage_id=s.stage_id)
    log.info("task set created")                  # this line carries both ids

    with log_context(deployment_id=d.id, stage_id=s.stage_id):
        run_stage()                               # every line logged inside, by any logger, carries them

`logger.info("...", extra={"deployment_id": ...})` works too. The ids are plain strings; a key that is
None is left out. This module imports nothing from Django so that logging can be configured before apps.
Django's processes get their handlers from settings.LOGGING; a process that sets logging up itself (the
piped) calls `configure()`.
"""

import contextvars
import json
import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

# LOG_FORMAT=plain, for people reading a terminal.
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

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


def configure(log_format: str = "plain", level: str | int = "INFO", stream: Any = None) -> None:
    """One handler on the root logger, writing `plain` or `json` lines to stderr (replacing any other).

    With `json`, Python's warnings and uncaught exceptions (of the main thread and of other threads) are
    logged too, so that every line the process writes is a JSON object.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if log_format == "json":
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("uncaught").critical(
        "uncaught %s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("uncaught").error(
        "uncaught %s in thread %s: %s",
        args.exc_type.__name__,
        thread,
        args.exc_value,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
