"""The scheduler role: the piped's clock and ears, in threads. Exactly one runs per piped.

- heartbeat: `stat` every PIPED_HEARTBEAT_SECONDS (and `meta` at start);
- command poll (every PIPED_COMMAND_POLL_SECONDS): sync, approve, skip and cancel commands, the Git
  webhook's fetch requests, and "your application list changed";
- one Git poller per repository: fetch every syncInterval (at once on a webhook or a Sync), back off
  exponentially while the remote fails (reported on the repository), then look at that repository's
  applications — config errors, name/labels re-sync, triggers — and at unregistered app configs;
- dispatcher (every PIPED_DISPATCH_SECONDS): for each deployment not completed, what it needs next
  (reconcile.next_actions), enqueued as Celery tasks for the workers. One deployment per application at a
  time, the oldest pending first.
"""

from __future__ import annotations

import logging
import posixpath
import threading
import time
from datetime import UTC, datetime, timedelta

from apps.core.times import read_time as parse_time
from apps.notifications import hooks as notify

from .client import ApiError
from .deploysource import KIND_OF_APP_CONFIG, SourceError, config_path, load_app_text
from .gitrepo import GitError, LocalRepo
from .preview import preview_pending
from .reconcile import DEPLOYMENT_TERMINAL, PENDING
from .triggers import (
    ON_COMMAND,
    ON_COMMIT,
    ON_OUT_OF_SYNC,
    OUT_OF_SYNC_SUMMARY,
    command_summary,
    on_commit,
    on_out_of_sync,
)
from .worker import advance

logger = logging.getLogger(__name__)

ACTIVE = ("PLANNED", "RUNNING", "ROLLING_BACK")
SKIPPABLE = ("WAIT", "ANALYSIS")
SUGGESTION_SUFFIX = ".pipecd.yaml"
MAX_SUGGESTION_FILES = 200
REDISPATCH_SECONDS = 15.0


def _now() -> datetime:
    return datetime.now(UTC)


class Applications:
    """The piped's applications as the control plane last listed them, plus what this process triggered."""

    def __init__(self, client):
        self.client = client
        self._lock = threading.Lock()
        self._apps: dict[str, dict] = {}
        self.loaded_at = 0.0
        # app id → commit of the deployment we triggered last (the list may lag behind our own triggers).
        self.last_triggered: dict[str, str] = {}

    def refresh(self) -> set[str]:
        """Reload; answers the ids of applications that were not known before."""
        apps = self.client.list_applications()
        with self._lock:
            new = {a["id"] for a in apps} - set(self._apps)
            self._apps = {a["id"]: a for a in apps}
            self.loaded_at = time.monotonic()
        return new

    def get(self, app_id: str) -> dict | None:
        with self._lock:
            return self._apps.get(app_id)

    def for_repo(self, repo_id: str) -> list[dict]:
        with self._lock:
            return [a for a in self._apps.values() if a["repo_id"] == repo_id]

    def all(self) -> list[dict]:
        with self._lock:
            return list(self._apps.values())

    def update(self, app_id: str, **fields) -> None:
        with self._lock:
            if app_id in self._apps:
                self._apps[app_id] = {**self._apps[app_id], **fields}

    def last_triggered_commit(self, app: dict) -> str:
        recent = app.get("most_recent_deployment") or {}
        return self.last_triggered.get(app["id"]) or recent.get("commit_hash") or ""


class RepoPoller(threading.Thread):
    """Fetches one repository and looks at its applications; a slow remote only delays its own apps."""

    def __init__(self, scheduler: Scheduler, repo: LocalRepo):
        super().__init__(name=f"git-{repo.repo_id}", daemon=True)
        self.scheduler = scheduler
        self.runtime = scheduler.runtime
        self.repo = repo
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._syncs: list[dict] = []
        self.failures = 0
        self.head: str | None = None
        self.scanned_head: tuple | None = None
        self._evaluated: dict[str, tuple] = {}
        self._invalid: dict[str, str] = {}

    def wake(self) -> None:
        self._wake.set()

    def add_sync(self, command: dict) -> None:
        with self._lock:
            if all(c["id"] != command["id"] for c in self._syncs):
                self._syncs.append(command)
        self.wake()

    def _take_syncs(self, app_id: str) -> list[dict]:
        with self._lock:
            mine = [c for c in self._syncs if c["application_id"] == app_id]
            self._syncs = [c for c in self._syncs if c["application_id"] != app_id]
        return mine

    def run(self) -> None:
        stop = self.scheduler.stop_event
        next_due = 0.0
        while not stop.is_set():
            woken = self._wake.wait(max(next_due - time.monotonic(), 0))
            self._wake.clear()
            if stop.is_set():
                return
            if not woken and time.monotonic() < next_due:
                continue
            next_due = time.monotonic() + self.poll_once()

    def poll_once(self) -> float:
        """Fetch and look at the applications; answers how long to wait before the next fetch."""
        knobs = self.runtime.config.knobs
        try:
            head = self.repo.fetch()
        except GitError as exc:
            self.failures += 1
            delay = min(knobs.git_retry_base * 2 ** (self.failures - 1), knobs.git_retry_max)
            logger.warning("repository %s: %s (retry in %.0fs)", self.repo.repo_id, exc, delay)
            self._report(
                error=str(exc),
                failures=self.failures,
                last_error_at=_now().isoformat(),
                next_attempt_at=(_now() + timedelta(seconds=delay)).isoformat(),
            )
            self._fail_syncs(f"Could not fetch repository {self.repo.repo_id}: {exc}")
            return delay
        self.failures = 0
        self.head = head
        interval = self.runtime.config.sync_interval
        self._report(
            error="",
            failures=0,
            head=head,
            last_fetch_at=_now().isoformat(),
            next_attempt_at=(_now() + timedelta(seconds=interval)).isoformat(),
        )
        try:
            self.evaluate(head)
        except Exception:
            logger.exception("looking at the applications of %s failed", self.repo.repo_id)
        return interval

    def _report(self, **status) -> None:
        try:
            self.runtime.client.report_repository_status({self.repo.repo_id: status})
        except ApiError as exc:
            logger.warning("reporting the status of %s failed: %s", self.repo.repo_id, exc)

    def _fail_syncs(self, reason: str) -> None:
        with self._lock:
            syncs, self._syncs = self._syncs, []
        for command in syncs:
            self.scheduler.handled(command, "FAILED", {"error": reason})

    # --- applications ---

    def evaluate(self, head: str) -> None:
        for app in self.scheduler.apps.for_repo(self.repo.repo_id):
            try:
                self.evaluate_app(app, head)
            except (ApiError, GitError) as exc:
                logger.warning("application %s: %s", app["name"], exc)
        registered = frozenset(
            (posixpath.normpath(a["path"] or "."), a["config_filename"])
            for a in self.scheduler.apps.for_repo(self.repo.repo_id)
        )
        if (head, registered) != self.scanned_head:
            try:
                self.report_suggestions(head, registered)
                self.scanned_head = (head, registered)
            except (ApiError, GitError) as exc:
                logger.warning("scanning %s for app configs failed: %s", self.repo.repo_id, exc)

    def _key(self, app_id: str, head: str) -> tuple:
        """What an application's evaluation depends on; the same key again means nothing to do."""
        app = self.scheduler.apps.get(app_id) or {}
        recent = app.get("most_recent_deployment") or {}
        return (
            head,
            self.scheduler.apps.last_triggered_commit(app) if app else "",
            app.get("sync_status"),
            recent.get("status"),
        )

    def evaluate_app(self, app: dict, head: str) -> None:
        apps = self.scheduler.apps
        client = self.runtime.client
        syncs = self._take_syncs(app["id"])
        if not syncs and self._evaluated.get(app["id"]) == self._key(app["id"], head):
            return
        path = config_path(app["path"], app["config_filename"])
        try:
            loaded = load_app_text(path, self.repo.read_file(head, path))
            kind = KIND_OF_APP_CONFIG.get(loaded.kind)
            if kind != app["kind"]:
                raise SourceError(
                    f"{path}: kind {loaded.kind} does not match the application's kind {app['kind']}."
                )
        except SourceError as exc:
            message = str(exc)
            if app.get("sync_status") != "INVALID_CONFIG" or self._invalid.get(app["id"]) != message:
                client.report_sync_state(
                    app["id"], "INVALID_CONFIG", "The application config is invalid", message
                )
                apps.update(app["id"], sync_status="INVALID_CONFIG")
                self._invalid[app["id"]] = message
                logger.info("application %s: invalid config: %s", app["name"], message.splitlines()[0])
                notify.deployment_trigger_failed(self.runtime, app, head, message)
            for command in syncs:
                self.scheduler.handled(command, "FAILED", {"error": message})
            self._evaluated[app["id"]] = self._key(app["id"], head)
            return
        spec = loaded.spec
        self._invalid.pop(app["id"], None)
        if app.get("sync_status") == "INVALID_CONFIG":
            client.report_sync_state(app["id"], "UNKNOWN", "The application config is valid again", "")
            apps.update(app["id"], sync_status="UNKNOWN")
        name = spec.name or app["name"]
        synced = (name, dict(spec.labels), spec.description)
        if synced != (app["name"], app["labels"], app["description"]) and client.report_app_config(
            app["id"], name=name, labels=synced[1], description=spec.description
        ):
            apps.update(app["id"], name=name, labels=synced[1], description=spec.description)
        commit = None
        for command in syncs:
            if spec.trigger.on_command.disabled:
                self.scheduler.handled(
                    command, "FAILED", {"error": "onCommand is disabled in the application config."}
                )
                continue
            commit = commit or self.repo.commit_info(head)
            strategy = (command.get("payload") or {}).get("sync_strategy") or "AUTO"
            deployment = self._trigger(
                app,
                commit,
                ON_COMMAND,
                f"{ON_COMMAND}:{command['id']}",
                commander=command.get("commander", ""),
                strategy=strategy,
                summary=command_summary(strategy),
            )
            self.scheduler.handled(command, "SUCCEEDED", {"deployment_id": deployment["id"]})
        decision = on_commit(
            disabled=spec.trigger.on_commit.disabled,
            app_dir=app["path"],
            paths=list(spec.trigger.on_commit.paths) + list(spec.trigger_paths or []),
            ignores=list(spec.trigger.on_commit.ignores),
            last_triggered_commit=apps.last_triggered_commit(app),
            head=head,
            changed_files=self.repo.changed_files,
        )
        if decision.trigger:
            commit = commit or self.repo.commit_info(head)
            self._trigger(app, commit, ON_COMMIT, f"{ON_COMMIT}:{head}")
            logger.info(
                "application %s: deployment triggered at %s (%s)", app["name"], head[:7], decision.reason
            )
        out_of_sync = on_out_of_sync(
            disabled=spec.trigger.on_out_of_sync.disabled,
            min_window=spec.trigger.on_out_of_sync.min_window,
            sync_status=app.get("sync_status") or "",
            most_recent_deployment=app.get("most_recent_deployment"),
            now=_now(),
        )
        if out_of_sync.trigger and not decision.trigger:
            commit = commit or self.repo.commit_info(head)
            recent = (app.get("most_recent_deployment") or {}).get("id", "none")
            self._trigger(
                app,
                commit,
                ON_OUT_OF_SYNC,
                f"{ON_OUT_OF_SYNC}:{head}:{recent}",
                strategy="QUICK_SYNC",
                summary=OUT_OF_SYNC_SUMMARY,
            )
        # An out-of-sync application is looked at again at every fetch until minWindow has passed.
        waiting_for_window = (
            not spec.trigger.on_out_of_sync.disabled and app.get("sync_status") == "OUT_OF_SYNC"
        )
        self._evaluated[app["id"]] = None if waiting_for_window else self._key(app["id"], head)

    def _trigger(
        self,
        app: dict,
        commit,
        kind: str,
        key: str,
        *,
        commander: str = "",
        strategy: str = "AUTO",
        summary: str = "",
    ) -> dict:
        deployment, created = self.runtime.client.create_deployment(
            application_id=app["id"],
            trigger_kind=kind,
            trigger_key=key,
            commit=commit.as_api(branch=self.repo.branch),
            commander=commander,
            sync_strategy=strategy,
            strategy_summary=summary,
        )
        self.scheduler.apps.last_triggered[app["id"]] = commit.hash
        if created:
            notify.deployment_triggered(self.runtime, deployment)
        self.scheduler.apps.update(
            app["id"],
            most_recent_deployment={
                "id": deployment["id"],
                "status": deployment["status"],
                "commit_hash": commit.hash,
                "completed_at": None,
            },
        )
        self.scheduler.kick()
        return deployment

    def report_suggestions(self, head: str, registered: frozenset) -> None:
        found = []
        candidates = [f for f in self.repo.list_files(head) if f.endswith(SUGGESTION_SUFFIX)][
            :MAX_SUGGESTION_FILES
        ]
        for file in candidates:
            directory, filename = posixpath.split(file)
            directory = directory or "."
            if (directory, filename) in registered:
                continue
            try:
                loaded = load_app_text(file, self.repo.read_file(head, file))
            except SourceError:
                continue
            if loaded.kind != "ECSApp":
                continue
            spec = loaded.spec
            found.append(
                {
                    "repo_id": self.repo.repo_id,
                    "path": directory,
                    "config_filename": filename,
                    "name": spec.name
                    or posixpath.basename(directory if directory != "." else self.repo.repo_id),
                    "kind": "ECS",
                    "labels": dict(spec.labels),
                    "description": spec.description,
                }
            )
        self.runtime.client.report_unregistered_apps([self.repo.repo_id], found)


class Scheduler:
    def __init__(self, runtime):
        self.runtime = runtime
        self.client = runtime.client
        self.stop_event = threading.Event()
        self.apps = Applications(self.client)
        self.pollers = {repo.repo_id: RepoPoller(self, repo) for repo in runtime.repos}
        self._threads: list[threading.Thread] = []
        self._kick = threading.Event()
        self._sent: dict[tuple, tuple[float, str | None]] = {}
        self._handled: dict[str, float] = {}
        self._fetch_seen: dict[str, str] = {}
        self._apps_changed_at: object = None

    # --- lifecycle ---

    def start(self) -> None:
        from .livestate import Watchers

        self.refresh_apps()
        # Live state and drift detection (apps/pipedagent/livestate.py).
        self._threads.extend(Watchers(self).start())
        for poller in self.pollers.values():
            poller.start()
            self._threads.append(poller)
        for target, name in (
            (self._heartbeat_loop, "heartbeat"),
            (self._command_loop, "commands"),
            (self._dispatch_loop, "dispatcher"),
        ):
            thread = threading.Thread(target=self._guard(target), name=f"piped-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self._kick.set()
        for poller in self.pollers.values():
            poller.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.1))

    def _guard(self, loop):
        def run() -> None:
            while not self.stop_event.is_set():
                try:
                    loop()
                    return
                except Exception:
                    logger.exception("%s failed; restarting it", loop.__name__)
                    self.stop_event.wait(1.0)

        return run

    def kick(self) -> None:
        """Look at the deployments now rather than at the next tick."""
        self._kick.set()

    # --- heartbeat ---

    def _heartbeat_loop(self) -> None:
        while not self.stop_event.wait(self.runtime.config.knobs.heartbeat):
            try:
                self.client.report_stat()
            except ApiError as exc:
                logger.warning("heartbeat failed: %s", exc)

    # --- commands ---

    def refresh_apps(self) -> None:
        try:
            new = self.apps.refresh()
        except ApiError as exc:
            logger.warning("listing the applications failed: %s", exc)
            return
        for app_id in new:
            app = self.apps.get(app_id)
            poller = self.pollers.get(app["repo_id"]) if app else None
            if poller is not None:
                poller.wake()
            elif app is not None:
                logger.warning(
                    "application %s uses repository %s, which is not in the piped config",
                    app["name"],
                    app["repo_id"],
                )

    def _command_loop(self) -> None:
        knobs = self.runtime.config.knobs
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                self.poll_commands()
            except ApiError as exc:
                logger.warning("polling commands failed: %s", exc)
            if time.monotonic() - self.apps.loaded_at > knobs.app_refresh:
                self.refresh_apps()
            self.stop_event.wait(max(knobs.command_poll - (time.monotonic() - started), 0.05))

    def poll_commands(self) -> None:
        answer = self.client.poll_commands()
        for repo_id, requested_at in (answer.get("fetch_requests") or {}).items():
            if self._fetch_seen.get(repo_id) != requested_at:
                self._fetch_seen[repo_id] = requested_at
                poller = self.pollers.get(repo_id)
                if poller is not None:
                    poller.wake()
        changed_at = answer.get("apps_changed_at")
        if changed_at != self._apps_changed_at:
            self._apps_changed_at = changed_at
            self.refresh_apps()
        cutoff = time.monotonic() - 3600
        self._handled = {k: v for k, v in self._handled.items() if v > cutoff}
        for command in answer.get("commands") or []:
            if command["id"] in self._handled:
                continue
            try:
                self.handle(command)
            except ApiError as exc:
                logger.warning("handling command %s failed: %s", command["id"], exc)

    def handled(self, command: dict, status: str, result: dict) -> None:
        self._handled[command["id"]] = time.monotonic()
        try:
            self.client.report_command_handled(command["id"], status, result)
        except ApiError as exc:
            if not exc.conflict:
                logger.warning("reporting command %s failed: %s", command["id"], exc)

    def handle(self, command: dict) -> None:
        kind = command["type"]
        if kind == "SYNC_APPLICATION":
            app = self.apps.get(command.get("application_id") or "")
            if app is None:
                self.refresh_apps()
                app = self.apps.get(command.get("application_id") or "")
            poller = self.pollers.get(app["repo_id"]) if app else None
            if poller is None:
                self.handled(
                    command,
                    "FAILED",
                    {
                        "error": "The application is unknown to this piped, disabled, or in a repository it does not have."
                    },
                )
                return
            self._handled[command["id"]] = time.monotonic()
            poller.add_sync(command)
            return
        if kind in ("APPROVE_STAGE", "SKIP_STAGE", "CANCEL_DEPLOYMENT"):
            self._deployment_command(command)
            return
        self.handled(command, "FAILED", {"error": f"{kind} is not supported by this piped yet."})

    def _deployment_command(self, command: dict) -> None:
        try:
            deployment = self.client.get_deployment(command.get("deployment_id") or "")
        except ApiError as exc:
            if exc.not_found:
                self.handled(command, "FAILED", {"error": "The deployment does not belong to this piped."})
                return
            raise
        who = command.get("commander") or "someone"
        if deployment["status"] in DEPLOYMENT_TERMINAL:
            self.handled(
                command,
                "FAILED",
                {"error": f"The deployment has already completed ({deployment['status']})."},
            )
            return
        if command["type"] == "CANCEL_DEPLOYMENT":
            payload = command.get("payload") or {}
            self.client.save_deployment_metadata(
                deployment["id"],
                {
                    "cancel": {
                        "commander": who,
                        "force_rollback": bool(payload.get("force_rollback")),
                        "force_no_rollback": bool(payload.get("force_no_rollback")),
                        "at": _now().isoformat(),
                    }
                },
            )
            self.handled(command, "SUCCEEDED", {})
            advance(self.runtime, deployment["id"], dispatch=self.runtime.dispatch_now)
            return
        stage = next((s for s in deployment["stages"] if s["id"] == command.get("stage_id")), None)
        if stage is None:
            self.handled(
                command, "FAILED", {"error": f"Stage {command.get('stage_id')!r} is not in the deployment."}
            )
            return
        if stage["status"] != "RUNNING":
            self.handled(
                command, "FAILED", {"error": f"Stage {stage['id']} is {stage['status']}, not running."}
            )
            return
        if command["type"] == "SKIP_STAGE":
            if stage["name"] not in SKIPPABLE:
                self.handled(command, "FAILED", {"error": f"{stage['name']} stages cannot be skipped."})
                return
            self.client.save_stage_metadata(deployment["id"], stage["id"], {"skipped_by": who})
        else:
            if stage["name"] != "WAIT_APPROVAL":
                self.handled(
                    command, "FAILED", {"error": f"Stage {stage['id']} is {stage['name']}, not an approval."}
                )
                return
            approvers = stage.get("authorized_approvers") or []
            if approvers and who not in approvers:
                self.handled(
                    command,
                    "FAILED",
                    {"error": f"{who} is not an approver of this stage (approvers: {', '.join(approvers)})."},
                )
                return
            approved = list((stage.get("metadata") or {}).get("approved_by") or [])
            if who in approved:
                self.handled(
                    command,
                    "FAILED",
                    {"error": f"{who} has already approved this stage; the same person never counts twice."},
                )
                return
            self.client.save_stage_metadata(deployment["id"], stage["id"], {"approved_by": [*approved, who]})
        self.handled(command, "SUCCEEDED", {})
        self.runtime.dispatch_now("run", deployment, stage["id"])

    # --- dispatcher ---

    def _dispatch_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.dispatch_once()
            except ApiError as exc:
                logger.warning("looking at the deployments failed: %s", exc)
            self._kick.wait(self.runtime.config.knobs.dispatch)
            self._kick.clear()

    def dispatch_once(self) -> None:
        deployments = self.client.list_not_completed_deployments()
        busy = {d["application_id"] for d in deployments if d["status"] in ACTIVE}
        self.deploying_apps = busy  # the live state watcher follows these more closely
        planned_first: set[str] = set()
        live = {d["id"] for d in deployments}
        self._sent = {k: v for k, v in self._sent.items() if k[0] in live}
        for deployment in deployments:
            if deployment["status"] == PENDING:
                app_id = deployment["application_id"]
                if app_id in busy or app_id in planned_first:
                    # It waits for the application's running deployment: the portal shows a preview.
                    preview_pending(self.runtime, deployment)
                    continue
                planned_first.add(app_id)
            try:
                advance(self.runtime, deployment, dispatch=self._gated_dispatch)
            except ApiError as exc:
                logger.warning("deployment %s: %s", deployment["id"], exc)

    def _gated_dispatch(self, kind: str, deployment: dict, stage_id: str) -> None:
        """Enqueue unless someone holds the stage, it asked to wait, or we sent it moments ago."""
        now = _now()
        marker = None
        if kind == "run":
            stage = next((s for s in deployment["stages"] if s["id"] == stage_id), None)
            if stage is None:
                return
            expires = parse_time(stage.get("claim_expires_at"))
            if stage.get("claimed_by") and expires is not None and expires > now:
                return
            wake_at = parse_time(stage.get("next_check_at"))
            if wake_at is not None and wake_at > now:
                return
            # A rollback stage waits for the workers still holding cancelled stages: once their claims are
            # released or run out, the marker changes and the stage is sent again at once.
            held = sorted(
                s["id"]
                for s in deployment["stages"]
                if s["id"] != stage_id
                and s.get("claimed_by")
                and (parse_time(s.get("claim_expires_at")) or now) > now
            )
            marker = f"{stage.get('next_check_at')}|{stage.get('claimed_by')}|{stage.get('status')}|{held}"
        key = (deployment["id"], kind, stage_id)
        sent = self._sent.get(key)
        if sent is not None and sent[1] == marker and time.monotonic() - sent[0] < REDISPATCH_SECONDS:
            return
        self._sent[key] = (time.monotonic(), marker)
        self.runtime.dispatch_now(kind, deployment, stage_id)
