"""The piped process: its Celery app (queue `piped-<pipedID>`), its roles, and how they start and stop.

- default (no broker): one process — a real in-process Celery (memory transport, an embedded thread-pool
  worker) plus the scheduler's threads; not eager mode, so a wait never blocks polling or heartbeats;
- `--broker redis://… --role scheduler`: the scheduler only (run exactly one);
- `--broker redis://… --role worker`: a worker only (run any number);
- `--broker redis://…` without a role: both in one process, sharing the queue with any other workers.
SIGTERM / SIGINT stop cleanly: running steps finish (they release their claims), the piped reports that
it stops, and the process exits.
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import logging
import signal
import threading
from typing import Any

from celery import Celery

from apps.notifications import hooks as notify
from apps.ops.logging import log_context

from . import worker
from .client import ApiError, PipedApiClient
from .config import VERSION, PipedRuntimeConfig
from .deploysource import DeploySource, SourceCache
from .gitrepo import Repositories, auth_from_spec
from .logs import FLUSHER

logger = logging.getLogger(__name__)

TASK_PLAN = "pipedagent.plan"
TASK_STEP = "pipedagent.step"
ROLES = ("scheduler", "worker")


class FatalStartError(Exception):
    """The piped cannot run (the control plane refuses its key, …); the message says what to fix."""


def make_celery_app(runtime: Runtime, broker_url: str | None) -> Celery:
    config = runtime.config
    memory = not broker_url
    app = Celery(f"piped-{config.piped_id}", set_as_current=False, fixups=[])
    app.conf.update(
        broker_url=broker_url or "memory://",
        # The memory transport polls its queue; without a short interval a task waits ~1 s to start.
        broker_transport_options={"polling_interval": 0.02} if memory else {"visibility_timeout": 3600},
        broker_connection_retry_on_startup=True,
        task_default_queue=config.queue,
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )

    @app.task(name=TASK_PLAN, ignore_result=True)
    def plan_task(deployment_id: str) -> None:
        with log_context(deployment_id=deployment_id):
            _guarded(
                "planning", deployment_id, lambda: worker.plan_deployment(runtime, deployment_id, chain=True)
            )

    @app.task(name=TASK_STEP, ignore_result=True)
    def step_task(deployment_id: str, stage_id: str) -> None:
        # Every log line of the step (any logger, this thread) carries the deployment and stage ids.
        with log_context(deployment_id=deployment_id, stage_id=stage_id):
            _guarded(
                f"stage {stage_id}",
                deployment_id,
                lambda: worker.run_stage(runtime, deployment_id, stage_id, chain=True),
            )

    return app


def _guarded(what: str, deployment_id: str, call) -> None:
    """A task never raises into Celery: the scheduler looks again at its next tick anyway."""
    try:
        call()
    except ApiError as exc:
        logger.warning("%s of deployment %s: %s", what, deployment_id, exc)
    except Exception:
        logger.exception("%s of deployment %s failed", what, deployment_id)


class Runtime:
    def __init__(self, config: PipedRuntimeConfig, *, broker_url: str | None = None):
        self.config = config
        self.client = PipedApiClient(config.api_url, config.project_id, config.piped_id, config.key)
        self.repos = Repositories(
            config.repositories(), config.work_dir, auth_from_spec(config.spec), config.knobs.git_timeout
        )
        self.sources = SourceCache()
        self._providers: dict[str, Any] = {}
        self._providers_lock = threading.Lock()
        self.celery = make_celery_app(self, broker_url)
        self.broker_url = broker_url
        self.stop_event = threading.Event()
        self.scheduler = None
        self._worker = None
        self._worker_thread: threading.Thread | None = None

    # --- what tasks and executors use ---

    def deploy_source(self, deployment: dict, commit: str) -> DeploySource:
        git_path = deployment["git_path"]
        repo = self.repos.get(git_path["repo_id"])
        return self.sources.get(
            repo, commit, git_path["path"], git_path["config_filename"], deployment["kind"]
        )

    def platform_provider(self, name: str, kind: str) -> Any:
        from .platforms import ProviderError, provider_for

        with self._providers_lock:
            provider = self._providers.get(name)
            if provider is None:
                spec = self.config.spec.platform_provider(name)
                if spec is None:
                    raise ProviderError(f"Platform provider {name!r} is not in the piped config.")
                if spec.type != kind:
                    raise ProviderError(f"Platform provider {name!r} is of type {spec.type}, not {kind}.")
                provider = provider_for(spec, self.config.knobs)
                self._providers[name] = provider
            return provider

    def dispatch_now(self, kind: str, deployment: dict, stage_id: str = "") -> None:
        if kind == "plan":
            self.celery.tasks[TASK_PLAN].apply_async(args=[deployment["id"]], queue=self.config.queue)
        elif kind == "run":
            self.celery.tasks[TASK_STEP].apply_async(
                args=[deployment["id"], stage_id], queue=self.config.queue
            )

    def on_deployment_status(self, deployment: dict, status: str, reason: str) -> None:
        logger.info(
            "deployment %s of %s: %s %s",
            deployment["id"],
            deployment["application_name"],
            status,
            reason,
            extra={"deployment_id": deployment["id"], "application_id": deployment.get("application_id")},
        )
        notify.deployment_status(self, deployment, status, reason)

    @property
    def client(self) -> PipedApiClient:
        return self._client

    @client.setter
    def client(self, client: PipedApiClient) -> None:
        # Sync-state reports pass by the notifications (APPLICATION_SYNCED / _OUT_OF_SYNC on a change).
        client.around_sync_state_report = functools.partial(notify.around_sync_state_report, self, client)
        self._client = client

    # --- roles ---

    def announce(self) -> None:
        """Tell the control plane who we are; a refused key stops the piped with a clear message."""
        try:
            self.client.report_meta(
                version=VERSION,
                repositories=self.config.repositories(),
                platform_providers=self.config.platform_providers(),
                config=self.config.masked_config(),
            )
        except ApiError as exc:
            if exc.unauthorized:
                raise FatalStartError(
                    f"The control plane at {self.config.api_url} refused this piped (401): check projectID, pipedID "
                    "and the piped key, and that the piped is not disabled."
                ) from None
            raise FatalStartError(f"Cannot reach the control plane at {self.config.api_url}: {exc}") from None

    def start_worker(self) -> None:
        self._worker = self.celery.WorkController(
            pool_cls="threads",
            concurrency=self.config.knobs.worker_concurrency,
            queues=[self.config.queue],
            hostname=f"{self.config.queue}@{worker_name_suffix()}",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="WARNING",
        )
        self._worker_thread = threading.Thread(
            target=self._worker.start, name="piped-celery-worker", daemon=True
        )
        self._worker_thread.start()

    def start_scheduler(self) -> None:
        from .scheduler import Scheduler

        self.scheduler = Scheduler(self)
        self.scheduler.start()

    def run(self, role: str | None = None) -> None:
        """Run until SIGTERM/SIGINT."""
        self.install_signal_handlers()
        FLUSHER.start(self.config.knobs.log_flush)
        self.announce()
        for repo in self.repos:
            repo.prune_exports()
        if role in (None, "worker"):
            self.start_worker()
        if role in (None, "scheduler"):
            self.start_scheduler()
        logger.info(
            "piped %s running (%s) against %s",
            self.config.piped_id,
            role or "scheduler+worker",
            self.config.api_url,
        )
        notify.piped_started(self, role)
        wait_until_set(self.stop_event)
        self.shutdown()

    def install_signal_handlers(self) -> None:
        def stop(signum, frame) -> None:
            logger.info("received %s: stopping", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        # `kill -USR1 <pid>` prints every thread's stack to stderr: where a piped that seems stuck is.
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    def shutdown(self) -> None:
        self.stop_event.set()  # a task running stage after stage ends with its current step
        if self.scheduler is not None:
            self.scheduler.stop()
        if self._worker is not None:
            worker.stop_running_steps()
            try:
                self._worker.stop(in_sighandler=False)
            except Exception:
                logger.exception("stopping the worker failed")
            if self._worker_thread is not None:
                self._worker_thread.join(30)
        FLUSHER.stop()
        notify.piped_stopping(self, scheduler=self.scheduler is not None)
        if self.scheduler is not None:
            with contextlib.suppress(ApiError):
                self.client.report_stat(stopping=True)
        self.repos.env.cleanup()
        logger.info("piped %s stopped", self.config.piped_id)


def wait_until_set(event: threading.Event, slice_seconds: float = 0.5) -> None:
    """Wait for `event` in the main thread, in short slices: the kernel may hand SIGTERM to any thread, and
    Python runs the handler only once the main thread wakes — a wait without a timeout could sleep through
    `docker stop` until the kill comes."""
    while not event.wait(slice_seconds):
        pass


def worker_name_suffix() -> str:
    import os
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"
