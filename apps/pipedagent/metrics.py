"""Prometheus metrics of the piped, served by the piped itself on `PIPED_METRICS_ADDR` / `--metrics-addr`.

Off unless an address is given (a piped accepts no connection by default, and two pipeds on one machine
must not fight over a port). What is measured:
- Git: every fetch (the first one into an empty clone is a `clone`) by repository, its time and failures;
- AWS: every call of the ECS provider's boto3 clients, from botocore's own events (`before-call`,
  `after-call`, `after-call-error`): time, retries included, and errors by code;
- pending work, computed at scrape time: deployments not completed by status (asked of the control plane),
  steps waiting in the piped's Celery queue, steps running in this process, notification deliveries queued;
- the process itself (CPU, memory, open files, Python's GC), from prometheus_client's collectors.
The measurements are always taken (a few microseconds each); the address only decides whether they are
served. Each process serves its own: with `--broker`, give every process its own address.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

# Seconds. A fetch of a known clone takes tens of milliseconds; a first clone of a big repository or a
# remote that times out (PIPED_GIT_TIMEOUT_SECONDS, 120 s) much longer.
GIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Seconds. ECS and ELB answer in tens to hundreds of milliseconds; retries and throttling add seconds.
AWS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# Not in prometheus_client's default registry: each server builds its own (see `registry_for`), so tests
# may run several pipeds in one process.
GIT_FETCH_SECONDS = Histogram(
    "pipeportal_piped_git_fetch_duration_seconds",
    "Time of each Git fetch (operation=clone: the first one into an empty clone), failures included.",
    ["repository", "operation"],
    buckets=GIT_BUCKETS,
    registry=None,
)
GIT_FETCH_FAILURES = Counter(
    "pipeportal_piped_git_fetch_failures",
    "Git fetches that failed (unreachable remote, refused credentials, timeout, missing branch).",
    ["repository", "operation"],
    registry=None,
)
GIT_LAST_SUCCESS = Gauge(
    "pipeportal_piped_git_last_fetch_success_timestamp_seconds",
    "Unix time of the repository's last successful fetch.",
    ["repository"],
    registry=None,
)
AWS_SECONDS = Histogram(
    "pipeportal_piped_aws_request_duration_seconds",
    "Time of each AWS API call of the ECS provider (botocore's retries included), by IAM service prefix "
    "and operation.",
    ["service", "operation"],
    buckets=AWS_BUCKETS,
    registry=None,
)
AWS_ERRORS = Counter(
    "pipeportal_piped_aws_request_errors",
    "AWS API calls that failed: AWS's error code, or the exception when no answer came.",
    ["service", "operation", "code"],
    registry=None,
)

_STARTED = "pipeportal_metrics_started"


# --- Git ------------------------------------------------------------------------------------------------


@contextmanager
def git_fetch(repository: str, operation: str) -> Iterator[None]:
    """Time one fetch of `repository`; an exception out of the block counts as a failure."""
    failures = GIT_FETCH_FAILURES.labels(repository, operation)  # the series exists (at 0) from the start
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        failures.inc()
        raise
    finally:
        GIT_FETCH_SECONDS.labels(repository, operation).observe(time.perf_counter() - started)
    GIT_LAST_SUCCESS.labels(repository).set(time.time())


# --- AWS ------------------------------------------------------------------------------------------------


def instrument_aws_client(client: Any) -> Any:
    """Attach the timing handlers to a boto3 client (its own copy of the session's events); answers it."""
    # The IAM prefix (ecs, elasticloadbalancing), so that service:operation reads as the IAM action.
    service = client.meta.service_model.signing_name
    events = client.meta.events
    events.register("before-call.*.*", _aws_call_started, unique_id=_STARTED)
    finished = functools.partial(_aws_call_finished, service)
    events.register("after-call.*.*", finished, unique_id="pipeportal_metrics_finished")
    events.register("after-call-error.*.*", finished, unique_id="pipeportal_metrics_failed")
    return client


def _aws_call_started(context: dict | None = None, **kwargs: Any) -> None:
    if context is not None:
        context[_STARTED] = time.perf_counter()


def _aws_call_finished(
    service: str,
    event_name: str = "",
    context: dict | None = None,
    http_response: Any = None,
    parsed: dict | None = None,
    exception: BaseException | None = None,
    **kwargs: Any,
) -> None:
    started = (context or {}).pop(_STARTED, None)
    if started is None:
        return
    operation = event_name.rsplit(".", 1)[-1]
    AWS_SECONDS.labels(service, operation).observe(time.perf_counter() - started)
    if exception is not None:
        code = type(exception).__name__
    elif http_response is not None and http_response.status_code >= 300:
        code = ((parsed or {}).get("Error") or {}).get("Code") or f"HTTP{http_response.status_code}"
    else:
        return
    AWS_ERRORS.labels(service, operation, code).inc()


# --- Pending work ---------------------------------------------------------------------------------------


class PendingWorkCollector:
    """Gauges read at scrape time from the runtime, its Celery broker and the control plane."""

    # A scrape must answer within Prometheus's timeout (10 s by default) even if the control plane does not.
    API_TIMEOUT = 3.0

    def __init__(self, runtime: Any):
        from .client import PipedApiClient

        self.runtime = runtime
        config = runtime.config
        self.client = PipedApiClient(
            config.api_url, config.project_id, config.piped_id, config.key, timeout=self.API_TIMEOUT
        )

    def collect(self):
        from . import worker

        running = GaugeMetricFamily(
            "pipeportal_piped_steps_running", "Stage steps running in this process now."
        )
        running.add_metric([], len(getattr(worker, "ACTIVE_STEPS", ())))
        yield running
        # The notifier is made on first use; `_pending` counts deliveries queued or being tried.
        notifier = getattr(self.runtime, "_notifier", None)
        notifications = GaugeMetricFamily(
            "pipeportal_piped_notifications_queued",
            "Notification deliveries of this process waiting or being tried (at most PIPED_NOTIFY_QUEUE_SIZE).",
        )
        notifications.add_metric([], getattr(notifier, "_pending", 0) if notifier is not None else 0)
        yield notifications
        # The queue and the deployments are shared by every process of the piped: only the scheduler's
        # process reports them, so that summing over processes never counts them twice.
        if getattr(self.runtime, "scheduler", None) is None:
            return
        queued = self.steps_queued()
        if queued is not None:
            family = GaugeMetricFamily(
                "pipeportal_piped_steps_queued",
                "Plan and step tasks waiting in the piped's Celery queue (not yet taken by a worker).",
            )
            family.add_metric([], queued)
            yield family
        yield from self.deployments()

    def steps_queued(self) -> int | None:
        celery = self.runtime.celery
        try:
            with celery.connection_for_read() as connection, connection.channel() as channel:
                return channel.queue_declare(queue=self.runtime.config.queue, passive=True).message_count
        except Exception as exc:  # no queue yet (nothing ever sent), or the broker is away
            logger.debug("metrics: the piped's queue could not be measured: %s", exc)
            return 0 if "NOT_FOUND" in str(exc) else None

    def deployments(self):
        from .client import ApiError

        up = GaugeMetricFamily(
            "pipeportal_piped_control_plane_up",
            "1 when the control plane answered the scrape's question about deployments, else 0.",
        )
        try:
            listed = self.client.call("GET", "/deployments", attempts=1)["deployments"]
        except (ApiError, KeyError, TypeError, ValueError) as exc:
            logger.debug("metrics: listing the deployments failed: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        counts = dict.fromkeys(("PENDING", "PLANNED", "RUNNING", "ROLLING_BACK"), 0)
        for deployment in listed:
            status = str(deployment.get("status") or "UNKNOWN")
            counts[status] = counts.get(status, 0) + 1
        family = GaugeMetricFamily(
            "pipeportal_piped_deployments",
            "This piped's deployments not completed, by status (PENDING: waiting to be planned).",
            labels=["status"],
        )
        for status, count in counts.items():
            family.add_metric([status], count)
        yield family


# --- Serving --------------------------------------------------------------------------------------------


class MetricsAddressError(ValueError):
    """PIPED_METRICS_ADDR / --metrics-addr is not HOST:PORT; the message says what is expected."""


def parse_address(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT`, `:PORT` (every interface) or `PORT` (localhost only)."""
    text = (value or "").strip()
    host, port = "127.0.0.1", text
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif ":" in text:
        host, _, port = text.rpartition(":")
        host = host or "0.0.0.0"  # noqa: S104 - ":PORT" asks for every interface
    if not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise MetricsAddressError(
            f"metrics address {value!r}: expected HOST:PORT, e.g. 127.0.0.1:9102 (this machine only) or "
            "0.0.0.0:9102 (every interface)."
        )
    return host, int(port)


def registry_for(runtime: Any | None) -> CollectorRegistry:
    # No auto_describe: it would run the pending-work queries once at registration, for nothing.
    registry = CollectorRegistry(auto_describe=False)
    for collector in (GIT_FETCH_SECONDS, GIT_FETCH_FAILURES, GIT_LAST_SUCCESS, AWS_SECONDS, AWS_ERRORS):
        registry.register(collector)
    ProcessCollector(registry=registry)
    registry.register(PLATFORM_COLLECTOR)
    registry.register(GC_COLLECTOR)
    if runtime is not None:
        registry.register(PendingWorkCollector(runtime))
    return registry


@dataclass
class MetricsServer:
    host: str
    port: int
    _httpd: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def serve(address: str, runtime: Any | None = None) -> MetricsServer:
    """Serve the metrics at http://ADDRESS/metrics in a daemon thread (port 0: any free port)."""
    host, port = parse_address(address)
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry_for(runtime))
    except OSError as exc:
        raise MetricsAddressError(f"cannot serve metrics on {address}: {exc.strerror or exc}") from None
    server = MetricsServer(host, httpd.server_address[1], httpd, thread)
    logger.info("metrics at %s", server.url)
    return server
