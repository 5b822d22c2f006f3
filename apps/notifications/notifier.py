"""The piped's notifier: routes an event to its receivers and delivers it off every deployment's path.

Piped side: imports no Django models. One notifier per piped process (`notifier_for(runtime)`), built on
first use. `emit()` only matches routes and queues; a sender thread then claims the event at the control
plane (a deterministic id seen twice — two processes reporting the same change — is sent once), reads
the app config's `notification.mentions` for Slack, tries each receiver with retries, and records every
attempt; the recorder sends the records to the control plane in batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from typing import Any

from .delivery import (
    ABANDONED,
    DROPPED,
    FAILED,
    Attempt,
    DeliveryOptions,
    Dispatcher,
    Job,
    Recorder,
    backoff,
    now_iso,
)
from .events import Event, Source, portal_url

logger = logging.getLogger(__name__)

EVENTS_PATH = "/notifications/events"
ATTEMPTS_PATH = "/notifications/attempts"
MENTION_CACHE_SIZE = 256


def kind_of(receiver) -> str:
    return "slack" if receiver.slack is not None else "webhook"


class Notifier:
    def __init__(self, runtime: Any, options: DeliveryOptions | None = None):
        from apps.pipedagent.config import VERSION

        self.runtime = runtime
        spec = runtime.config.spec
        self.config = spec.notifications
        self.options = options or DeliveryOptions.from_settings()
        self.source = Source(
            project_id=spec.project_id,
            piped_id=spec.piped_id,
            piped_name=spec.name,
            piped_version=VERSION,
            portal=portal_url(spec.web_address, runtime.config.api_url),
            remotes={r.repo_id: r.remote for r in spec.repositories},
        )
        # The lanes bound what waits (PIPED_NOTIFY_QUEUE_SIZE deliveries); the pool's own queue only holds
        # what the lanes let through, and never refuses it.
        self.dispatcher = Dispatcher(workers=self.options.workers, queue_size=2 * self.options.queue_size + 1)
        self.recorder = Recorder(self._send_records, self.options.flush_interval)
        self._mentions: OrderedDict[tuple, Any] = OrderedDict()
        self._mentions_lock = threading.Lock()
        # One lane per (receiver, deployment / application / piped): its deliveries go out one after the
        # other, in the order the events happened, so nobody reads "succeeded" before "triggered".
        self._lanes: dict[tuple[str, str], deque[DeliveryJob]] = {}
        self._lanes_lock = threading.Lock()
        self._pending = 0

    @property
    def enabled(self) -> bool:
        return bool(self.config.routes)

    def receivers_for(self, event: Event) -> list:
        return self.config.receivers_for(event.type, event.app_name, event.labels)

    def emit(self, event: Event) -> bool:
        """Queue the event for its receivers; answers whether any route wanted it. Never blocks."""
        receivers = self.receivers_for(event)
        if not receivers:
            return False
        queued_at = time.monotonic()
        deliveries = [DeliveryJob(self, event, receiver, queued_at) for receiver in receivers]
        with self._lanes_lock:
            room = self._pending + len(deliveries) <= self.options.queue_size
            if room:
                for job in deliveries:
                    self._lanes.setdefault(job.lane, deque()).append(job)
                self._pending += len(deliveries)
        if not room or not self.dispatcher.submit(ClaimJob(self, event, deliveries), at=queued_at):
            logger.warning("notification %s %s dropped: the queue is full", event.type, event.id)
            for job in deliveries:
                self.record(event, job.receiver, 1, Attempt(DROPPED, error="the notification queue is full"))
                if room:
                    self._settle(job, "done")
        return True

    def _settle(self, job: DeliveryJob, state: str) -> None:
        """`ready` (claimed), `skip` (a duplicate) or `done`; then start the next delivery of the lane."""
        start = None
        with self._lanes_lock:
            job.state = state
            lane = self._lanes.get(job.lane)
            while lane and lane[0].state in ("skip", "done"):
                lane.popleft()
                self._pending -= 1
            if lane and lane[0].state == "ready":
                start = lane[0]
                start.state = "running"
            if lane is not None and not lane:
                del self._lanes[job.lane]
        if start is not None:
            # Due since its event was emitted: it goes before the work of events emitted after it.
            self.dispatcher.submit(start, at=start.queued_at, follow_up=True)

    # --- what the sender threads do ---

    def claim(self, event: Event) -> bool:
        """True unless the control plane already has this event (then someone else sends it)."""
        try:
            # Asked once: while the control plane is away, delivering beats waiting for it.
            answer = self.runtime.client.call("POST", EVENTS_PATH, {"event": event.record()}, attempts=1)
        except Exception as exc:
            # Better twice than never: without the control plane, deliver anyway.
            logger.warning("could not register notification %s (%s); sending it anyway", event.id, exc)
            return True
        return bool((answer or {}).get("new", True))

    def mentions(self, event: Event) -> tuple[list[str], list[str]]:
        """Slack users and groups the app config's `notification.mentions` names for this event."""
        ref = event.app_config
        if ref is None:
            return [], []
        key = (ref.repo_id, ref.path, ref.config_filename, ref.commit)
        with self._mentions_lock:
            found = key in self._mentions
            notification = self._mentions.get(key)
        if not found:
            notification = self._load_mentions(ref)
            with self._mentions_lock:
                self._mentions[key] = notification
                while len(self._mentions) > MENTION_CACHE_SIZE:
                    self._mentions.popitem(last=False)
        if notification is None:
            return [], []
        return notification.slack_users_for(event.type), notification.slack_groups_for(event.type)

    def _load_mentions(self, ref) -> Any:
        from apps.pipedagent.deploysource import config_path, load_app_text

        path = config_path(ref.path, ref.config_filename)
        try:
            repo = self.runtime.repos.get(ref.repo_id)
            spec = load_app_text(path, repo.read_file(ref.commit, path)).spec
        except Exception as exc:
            logger.info("no mentions for %s at %s: %s", path, ref.commit[:7], exc)
            return None
        return getattr(spec, "notification", None)

    def attempt(self, event: Event, receiver) -> Attempt:
        from . import slack, webhook

        if receiver.slack is not None:
            users, groups = self.mentions(event)
            return slack.send(
                receiver.slack,
                event,
                timeout=self.options.timeout,
                api_url=self.options.slack_api_url,
                users=users,
                groups=groups,
            )
        return webhook.send(receiver.webhook, event, timeout=self.options.timeout)

    def record(self, event: Event, receiver, number: int, result: Attempt) -> None:
        if result.outcome != "DELIVERED":
            logger.warning(
                "notification %s to %s, attempt %d: %s %s",
                event.type,
                receiver.name,
                number,
                result.outcome,
                result.error,
            )
        self.recorder.add(
            {
                "event": event.record(),
                "receiver": receiver.name,
                "kind": kind_of(receiver),
                "attempt": number,
                "outcome": result.outcome,
                "status_code": result.status_code,
                "error": result.error,
                "duration_ms": result.duration_ms,
                "attempted_at": now_iso(),
            }
        )

    def _send_records(self, batch: list[dict]) -> None:
        self.runtime.client.post(ATTEMPTS_PATH, {"attempts": batch})

    # --- lifecycle ---

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery is done and its attempts are recorded (tests, shutdown)."""
        idle = self.dispatcher.wait_idle(timeout)
        return self.recorder.flush() and idle

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued within `timeout` (PIPED_NOTIFY_SHUTDOWN_SECONDS); record the rest as
        ABANDONED; send the records."""
        self.dispatcher.close(self.options.shutdown_grace if timeout is None else timeout)
        with self._lanes_lock:
            left = [job for lane in self._lanes.values() for job in lane if job.state not in ("skip", "done")]
            self._lanes.clear()
            self._pending = 0
        for job in left:
            reason = "the piped stopped before this notification could be delivered"
            self.record(job.event, job.receiver, job.tried + 1, Attempt(ABANDONED, error=reason))
        self.recorder.close()


class ClaimJob(Job):
    """Registers the event at the control plane, then lets its deliveries go (or drops a duplicate)."""

    def __init__(self, notifier: Notifier, event: Event, deliveries: list[DeliveryJob]):
        self.notifier, self.event, self.deliveries = notifier, event, deliveries

    def run(self) -> None:
        new = self.notifier.claim(self.event)
        if not new:
            logger.info(
                "notification %s %s was already sent by another process", self.event.type, self.event.id
            )
        for job in self.deliveries:
            self.notifier._settle(job, "ready" if new else "skip")
        return None


class DeliveryJob(Job):
    """One event to one receiver, with its retries; the head of its lane while it runs."""

    def __init__(self, notifier: Notifier, event: Event, receiver, queued_at: float):
        self.notifier, self.event, self.receiver = notifier, event, receiver
        self.queued_at = queued_at
        self.lane = (receiver.name, event.ordering_key)
        self.state = "waiting"
        self.tried = 0

    def run(self) -> float | None:
        self.tried += 1
        options = self.notifier.options
        try:
            result = self.notifier.attempt(self.event, self.receiver)
        except Exception as exc:  # a bug in rendering must not retry forever nor kill the thread
            logger.exception("notification %s to %s failed", self.event.type, self.receiver.name)
            result = Attempt(FAILED, error=f"{type(exc).__name__}: {exc}")
        again = result.retryable and self.tried < options.max_attempts
        if result.retryable and not again:
            result = Attempt(
                FAILED,
                result.status_code,
                f"{result.error} (gave up after {self.tried} attempts)",
                result.duration_ms,
            )
        self.notifier.record(self.event, self.receiver, self.tried, result)
        if again:
            return backoff(options, self.tried, result.retry_after)
        self.notifier._settle(self, "done")
        return None


_LOCK = threading.Lock()


def notifier_for(runtime: Any) -> Notifier:
    """The runtime's notifier, built on first use (a worker-only process builds one too)."""
    notifier = getattr(runtime, "_notifier", None)
    if notifier is None:
        with _LOCK:
            notifier = getattr(runtime, "_notifier", None)
            if notifier is None:
                notifier = Notifier(runtime)
                runtime._notifier = notifier
    return notifier
