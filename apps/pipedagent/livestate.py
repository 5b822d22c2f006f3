"""The piped's watchers, in the scheduler: the live state of every application (every
PIPED_LIVESTATE_SECONDS, 15 s by default, and every DEPLOYING_REFRESH_SECONDS for the applications whose
deployment runs, so the portal follows a canary) and drift detection (every PIPED_DRIFT_SECONDS, a minute
by default), each reported to the control plane. None of it runs in a stage: a deployment never waits for
them.

Both read the application's files at the Git head its repository poller last fetched. Drift is not
checked while a deployment is pending or runs, nor while the config is invalid (the control plane ignores a
drift report during a deployment anyway). An OUT_OF_SYNC result wakes the repository poller, which applies the application's
`onOutOfSync` trigger. Only ECS applications are watched (the only kind PipePortal deploys).
"""

from __future__ import annotations

import logging
import threading
import time

from .client import ApiError

logger = logging.getLogger(__name__)

SKIP_DRIFT = ("DEPLOYING", "INVALID_CONFIG")
DEPLOYING_REFRESH_SECONDS = 3.0
COMPLETED = ("SUCCESS", "FAILURE", "CANCELLED")


class Watchers:
    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.runtime = scheduler.runtime
        self.client = scheduler.client
        self.last_drift: dict[str, str] = {}

    def start(self) -> list[threading.Thread]:
        knobs = self.runtime.config.knobs
        threads = []
        for interval, loop, name in (
            (knobs.livestate_interval, self._live_state_loop, "livestate"),
            (knobs.drift_interval, self._drift_loop, "drift"),
        ):
            if interval and interval > 0:
                thread = threading.Thread(target=loop, args=(interval,), name=f"piped-{name}", daemon=True)
                thread.start()
                threads.append(thread)
        return threads

    def _guarded(self, call, *args) -> None:
        try:
            call(*args)
        except Exception:
            logger.exception("%s failed", call.__name__)

    def _live_state_loop(self, interval: float) -> None:
        """Every application each `interval`; in between, every few seconds, those whose deployment runs."""
        stop = self.scheduler.stop_event
        tick = min(interval, DEPLOYING_REFRESH_SECONDS)
        # A first look soon after start (the pollers fetch first).
        full_due = time.monotonic() + min(interval, 2.0)
        while not stop.wait(max(min(tick, full_due - time.monotonic()), 0)):
            if time.monotonic() >= full_due:
                full_due = time.monotonic() + interval
                self._guarded(self.live_state_once)
                continue
            deploying = set(getattr(self.scheduler, "deploying_apps", ()) or ())
            if deploying:
                self._guarded(self.live_state_once, deploying)

    def _drift_loop(self, interval: float) -> None:
        stop = self.scheduler.stop_event
        next_due = time.monotonic() + min(interval, 2.0)
        while not stop.wait(max(next_due - time.monotonic(), 0)):
            next_due = time.monotonic() + interval
            self._guarded(self.drift_once)

    # --- What is watched ---

    def _target(self, app: dict):
        """The application's ServiceTarget at the head its poller fetched, or None (not fetched yet, not ECS,
        or its files cannot be read — the poller reports that as INVALID_CONFIG)."""
        from .deploysource import SourceError
        from .gitrepo import GitError
        from .platforms.ecs.resources import service_target

        if app.get("kind") != "ECS":
            return None
        poller = self.scheduler.pollers.get(app.get("repo_id"))
        head = getattr(poller, "head", None)
        if poller is None or not head:
            return None
        source = self.runtime.sources.get(poller.repo, head, app["path"], app["config_filename"], "ECS")
        try:
            return service_target(source, head)
        except (SourceError, GitError) as exc:
            logger.debug("application %s at %s: %s", app.get("name"), head[:7], exc)
            return None

    def _provider(self, app: dict):
        from .platforms import ProviderError

        try:
            return self.runtime.platform_provider(app["platform_provider"], "ECS")
        except ProviderError as exc:
            logger.warning("application %s: %s", app.get("name"), exc)
            return None

    # --- Live state ---

    def live_state_once(self, only: set | None = None) -> int:
        """Collect and report the live state of every application (or of those in `only`); answers how
        many were reported."""
        from .platforms import ProviderError
        from .platforms.ecs.livestate import collect, report

        reported = 0
        for app in self.scheduler.apps.all():
            if only is not None and app["id"] not in only:
                continue
            target = self._target(app)
            provider = self._provider(app) if target is not None else None
            if provider is None:
                continue
            try:
                snapshot = collect(
                    provider, target, piped_id=self.runtime.config.piped_id, commit=target.commit
                )
                report(self.client, app["id"], snapshot)
                reported += 1
            except (ProviderError, ApiError) as exc:
                logger.warning("live state of %s: %s", app.get("name"), exc)
        return reported

    # --- Drift ---

    def drift_once(self) -> int:
        """Check every application that is not deploying; answers how many were checked."""
        from .platforms import ProviderError
        from .platforms.ecs.drift import OUT_OF_SYNC, check

        self.scheduler.refresh_apps()
        checked = 0
        for app in self.scheduler.apps.all():
            if app.get("deploying") or app.get("sync_status") in SKIP_DRIFT:
                continue
            if (app.get("most_recent_deployment") or {}).get("status") not in COMPLETED:
                continue  # a deployment is on its way: the Git head is about to be applied
            if not app.get("most_recent_successful_deployment"):
                continue  # never deployed: there is nothing live to compare yet
            target = self._target(app)
            provider = self._provider(app) if target is not None else None
            if provider is None:
                continue
            try:
                result = check(provider, target)
                answer = self._report_drift(app, target.commit, result)
            except (ProviderError, ApiError) as exc:
                logger.warning("drift of %s: %s", app.get("name"), exc)
                continue
            checked += 1
            sync_status = answer.get("sync_status") or app.get("sync_status")
            self.scheduler.apps.update(app["id"], sync_status=sync_status)
            if self.last_drift.get(app["id"]) != result.status:
                logger.info("application %s: %s (%s)", app.get("name"), result.status, result.summary)
            self.last_drift[app["id"]] = result.status
            if sync_status == OUT_OF_SYNC:
                # The poller applies onOutOfSync (when the app config enables it) at its next look.
                poller = self.scheduler.pollers.get(app.get("repo_id"))
                if poller is not None:
                    poller.wake()
        return checked

    def _report_drift(self, app: dict, commit: str, result) -> dict:
        """Send the result through the same wrapper as every sync-state report, so that notifications hear
        about a change of the sync state."""
        answers: list[dict] = []

        def send() -> None:
            body = {"status": result.status, "commit": commit, "summary": result.summary, "diff": result.diff}
            answers.append(self.client.post(f"/applications/{app['id']}/drift", body) or {})

        around = getattr(self.client, "around_sync_state_report", None)
        if around is None:
            send()
        else:
            around(app["id"], result.status, result.summary, result.diff, send)
        return answers[0] if answers else {}
