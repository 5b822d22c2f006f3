"""Delivering notifications: one HTTP attempt, the retry rule, a bounded sender pool, the attempt recorder.

Piped side (the control plane reuses `post` and `Retrier` for PIPED_OFFLINE): imports no Django models.

- An attempt is one POST with a timeout (connect and each read). A network error, a timeout, a 5xx or a 429
  is retried after `retry_base * 2^(attempt-1)` seconds (at most `retry_max`; a 429's Retry-After is
  honoured within that), up to `max_attempts`; any other 4xx (and a redirect) is final.
- Deliveries run in a small pool of threads of their own, fed from a bounded queue with a timer heap for
  retries: a hanging receiver holds one sender thread for one timeout, and never a stage step, the
  scheduler or the Celery worker. A full queue drops the new delivery (recorded as DROPPED).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests

logger = logging.getLogger(__name__)

DELIVERED, RETRYING, FAILED, DROPPED, ABANDONED = "DELIVERED", "RETRYING", "FAILED", "DROPPED", "ABANDONED"
USER_AGENT = "PipePortal-Notifier/1"
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class DeliveryOptions:
    """The PIPED_NOTIFY_* settings (docs/settings.md)."""

    timeout: float = 10.0
    max_attempts: int = 5
    retry_base: float = 1.0
    retry_max: float = 60.0
    workers: int = 4
    queue_size: int = 1000
    flush_interval: float = 1.0
    shutdown_grace: float = 10.0
    slack_api_url: str = "https://slack.com/api"

    @classmethod
    def from_settings(cls) -> DeliveryOptions:
        from django.conf import settings

        default = cls()
        return cls(
            timeout=getattr(settings, "PIPED_NOTIFY_TIMEOUT_SECONDS", default.timeout),
            max_attempts=max(1, getattr(settings, "PIPED_NOTIFY_MAX_ATTEMPTS", default.max_attempts)),
            retry_base=getattr(settings, "PIPED_NOTIFY_RETRY_BASE_SECONDS", default.retry_base),
            retry_max=getattr(settings, "PIPED_NOTIFY_RETRY_MAX_SECONDS", default.retry_max),
            workers=max(1, getattr(settings, "PIPED_NOTIFY_WORKERS", default.workers)),
            queue_size=max(1, getattr(settings, "PIPED_NOTIFY_QUEUE_SIZE", default.queue_size)),
            flush_interval=getattr(settings, "PIPED_NOTIFY_FLUSH_SECONDS", default.flush_interval),
            shutdown_grace=getattr(settings, "PIPED_NOTIFY_SHUTDOWN_SECONDS", default.shutdown_grace),
            slack_api_url=(getattr(settings, "PIPED_SLACK_API_URL", "") or default.slack_api_url).rstrip("/"),
        )


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: DELIVERED, RETRYING (worth another try) or FAILED (final)."""

    outcome: str
    status_code: int | None = None
    error: str = ""
    duration_ms: int = 0
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.outcome == RETRYING


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    *,
    check: Callable[[requests.Response], str] | None = None,
) -> Attempt:
    """POST once. `check(response)` may turn a 2xx into an error (Slack's API answers 200 `ok: false`)."""
    started = time.monotonic()

    def took() -> int:
        return round((time.monotonic() - started) * 1000)

    hide = _url_hider(url)
    try:
        response = requests.post(
            url,
            data=body,
            headers={"User-Agent": USER_AGENT, **headers},
            timeout=(min(timeout, 5.0), timeout),
            allow_redirects=False,
        )
    except requests.Timeout:
        return Attempt(RETRYING, error=f"no answer within {timeout:g}s", duration_ms=took())
    except requests.RequestException as exc:
        return Attempt(RETRYING, error=_short(hide(f"{type(exc).__name__}: {exc}")), duration_ms=took())
    status = response.status_code
    text = _short(hide(response.text))
    if status >= 500 or status == 429:
        return Attempt(
            RETRYING,
            status,
            f"{status} {text}".strip(),
            took(),
            _retry_after(response) if status == 429 else None,
        )
    if status >= 400:
        return Attempt(FAILED, status, f"{status} {text}".strip(), took())
    if status >= 300:
        where = hide(response.headers.get("Location", ""))
        return Attempt(FAILED, status, f"{status} redirect to {where}: the receiver must answer 2xx", took())
    if check is not None:
        problem = check(response)
        if problem:
            outcome = RETRYING if problem.startswith("retry:") else FAILED
            return Attempt(outcome, status, problem.removeprefix("retry:"), took(), _retry_after(response))
    return Attempt(DELIVERED, status, "", took())


def _url_hider(url: str) -> Callable[[str], str]:
    """Removes `url`'s secret parts from a text. A Slack hook URL or a catch hook is a secret in its path and
    query, and requests puts the path into its error messages: they are recorded and logged, so the path
    and query become `/…` (the scheme and host stay, to say where it failed)."""
    parts = urlsplit(url)
    query = f"?{parts.query}" if parts.query else ""
    secrets = [f"{parts.path}{query}", parts.path, parts.query, parts.password or "", parts.username or ""]
    secrets = sorted({s for s in secrets if len(s) > 1}, key=len, reverse=True)

    def hide(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "/…")
        return text

    return hide


def _short(text: str) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def backoff(options: DeliveryOptions, attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait after the `attempt`-th try failed."""
    delay = min(options.retry_base * 2 ** max(attempt - 1, 0), options.retry_max)
    if retry_after is not None:
        delay = min(max(delay, retry_after), options.retry_max)
    return delay


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


# --- The sender pool ------------------------------------------------------------------------------------


class Job:
    """Something for the pool: `run()` answers None when done, or seconds after which to run it again."""

    def run(self) -> float | None:
        raise NotImplementedError

    def abandon(self, reason: str) -> None:
        """Called for a job still waiting when the pool closes (the notifier records its own)."""


class Dispatcher:
    """`workers` threads taking jobs from a bounded heap ordered by due time (retries wait there)."""

    def __init__(self, *, workers: int, queue_size: int, name: str = "notify"):
        self.workers, self.queue_size, self.name = workers, queue_size, name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._running = 0
        self._closed = False
        self._threads: list[threading.Thread] = []

    def _start(self) -> None:
        while len(self._threads) < self.workers:
            thread = threading.Thread(
                target=self._loop, name=f"{self.name}-{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def submit(
        self, job: Job, delay: float = 0.0, *, at: float | None = None, follow_up: bool = False
    ) -> bool:
        """Queue a job to run after `delay` seconds, or at monotonic time `at` (a past time puts it before
        what was queued later: the oldest work goes first). False when the pool is full, or closed (a
        running job's follow-ups still go in)."""
        with self._cond:
            if (self._closed and not follow_up) or len(self._heap) >= self.queue_size:
                return False
            self._start()
            due = at if at is not None else time.monotonic() + delay
            heapq.heappush(self._heap, (due, next(self._seq), job))
            self._cond.notify()
            return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed and not self._heap:
                        return
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        _, _, job = heapq.heappop(self._heap)
                        self._running += 1
                        break
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
            again = None
            try:
                again = job.run()
            except Exception:
                logger.exception("a notification job failed")
            with self._cond:
                self._running -= 1
                if again is not None:
                    heapq.heappush(self._heap, (time.monotonic() + again, next(self._seq), job))
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                due = self._heap[0][0] - time.monotonic() if self._heap else left
                self._cond.wait(min(left, max(due, 0.01)))
            return True

    def close(self, timeout: float) -> None:
        """Let queued and running jobs (retries included) finish within `timeout`; abandon the rest."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while (self._heap or self._running) and time.monotonic() < deadline:
                self._cond.wait(min(0.05, max(deadline - time.monotonic(), 0.001)))
            left, self._heap = self._heap, []
            self._cond.notify_all()
        for _, _, job in left:
            try:
                job.abandon("the piped stopped before this delivery could be tried again")
            except Exception:
                logger.exception("abandoning a notification job failed")
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.1))


# --- Recording attempts ---------------------------------------------------------------------------------


class Recorder:
    """Buffers attempt records and posts them in batches (every `interval`, and on close)."""

    BATCH = 200
    MAX_BUFFER = 5000

    def __init__(self, send: Callable[[list[dict]], None], interval: float):
        self._send = send
        self.interval = interval
        self._lock = threading.Lock()
        self._buffer: list[dict] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, record: dict) -> None:
        with self._lock:
            self._buffer.append(record)
            if len(self._buffer) > self.MAX_BUFFER:
                dropped = len(self._buffer) - self.MAX_BUFFER
                del self._buffer[:dropped]
                logger.warning("notification records: dropped %d unsent records", dropped)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="notify-recorder", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> bool:
        """Send what is buffered; True when nothing is left."""
        while True:
            with self._lock:
                batch = self._buffer[: self.BATCH]
            if not batch:
                return True
            try:
                self._send(batch)
            except Exception as exc:
                logger.warning("recording notification attempts failed (kept for later): %s", exc)
                return False
            with self._lock:
                del self._buffer[: len(batch)]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()


class Retrier:
    """The retry loop run in place (the control plane's Celery task): at most `max_attempts` tries."""

    def __init__(self, options: DeliveryOptions, sleep: Callable[[float], None] = time.sleep):
        self.options, self.sleep = options, sleep

    def run(self, attempt_once: Callable[[], Attempt], on_attempt: Callable[[int, Attempt], None]) -> Attempt:
        result = Attempt(FAILED, error="not tried")
        for number in range(1, self.options.max_attempts + 1):
            result = attempt_once()
            final = not result.retryable or number == self.options.max_attempts
            on_attempt(number, result if not (final and result.retryable) else _gave_up(result, number))
            if final:
                return result
            self.sleep(backoff(self.options, number, result.retry_after))
        return result


def _gave_up(result: Attempt, attempts: int) -> Attempt:
    return Attempt(
        FAILED,
        result.status_code,
        f"{result.error} (gave up after {attempts} attempts)",
        result.duration_ms,
    )
