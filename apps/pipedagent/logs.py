"""Stage logs: lines are buffered and sent in batches (at least every PIPED_LOG_FLUSH_SECONDS) by one flusher
thread per process, and with the step's metadata and outcome when the step records them (one call). Each
line is one log block; its index goes on from where the stage's log stopped (a resumed stage appends), and
re-sending a block is harmless."""

from __future__ import annotations

import logging
import threading
import weakref
from datetime import UTC, datetime

logger = logging.getLogger(__name__)

INFO, SUCCESS, ERROR = "INFO", "SUCCESS", "ERROR"


class StageLogger:
    def __init__(
        self, client, deployment_id: str, stage_id: str, *, retried_count: int = 0, start_index: int = 0
    ):
        self.client = client
        self.deployment_id = deployment_id
        self.stage_id = stage_id
        self.retried_count = retried_count
        self.next_index = start_index
        self._pending: list[dict] = []
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        FLUSHER.register(self)

    def _add(self, severity: str, message: str) -> None:
        with self._lock:
            for line in str(message).splitlines() or [""]:
                self._pending.append(
                    {
                        "index": self.next_index,
                        "retried_count": self.retried_count,
                        "severity": severity,
                        "log": line,
                        "created_at": datetime.now(UTC).isoformat(),
                    }
                )
                self.next_index += 1

    def info(self, message: str) -> None:
        self._add(INFO, message)

    def success(self, message: str) -> None:
        self._add(SUCCESS, message)

    def error(self, message: str) -> None:
        self._add(ERROR, message)

    def flush(self) -> None:
        with self._send_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                for start in range(0, len(batch), 500):
                    self.client.report_stage_logs(
                        self.deployment_id, self.stage_id, batch[start : start + 500]
                    )
            except Exception as exc:
                logger.warning("could not send %d log lines of stage %s: %s", len(batch), self.stage_id, exc)
                with self._lock:
                    self._pending = batch + self._pending

    def take(self, limit: int = 500) -> list[dict]:
        """Up to `limit` lines not sent yet, for the caller to send with its own report (`restore` them if
        that fails); a longer backlog is flushed on its own first."""
        with self._lock:
            backlog = len(self._pending) > limit
        if backlog:
            self.flush()
        with self._send_lock, self._lock:
            batch, self._pending = self._pending[:limit], self._pending[limit:]
        return batch

    def restore(self, batch: list[dict]) -> None:
        with self._lock:
            self._pending = batch + self._pending

    def close(self, *, flush: bool = True) -> None:
        """Stop the periodic flushing; `flush=False` when the caller sends what is left with its report."""
        if flush:
            self.flush()
        FLUSHER.unregister(self)


class _Flusher:
    """Flushes every open StageLogger of the process on a short period."""

    def __init__(self) -> None:
        self._loggers: weakref.WeakSet[StageLogger] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.interval = 0.5

    def start(self, interval: float) -> None:
        self.interval = interval
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="piped-log-flusher", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for stage_logger in list(self._loggers):
            stage_logger.flush()

    def register(self, stage_logger: StageLogger) -> None:
        with self._lock:
            self._loggers.add(stage_logger)

    def unregister(self, stage_logger: StageLogger) -> None:
        with self._lock:
            self._loggers.discard(stage_logger)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                loggers = list(self._loggers)
            for stage_logger in loggers:
                stage_logger.flush()


FLUSHER = _Flusher()
