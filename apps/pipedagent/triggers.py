"""When an application gets a new deployment — PipeCD's trigger rules, as pure functions.

- onCommit: the app directory, `paths` or `ignores` decide whether the commits since the last triggered
  one touch the application (PipeCD's order: any ignored file → not touched; any `paths` match → touched;
  else any change below the app directory).
- onCommand: the portal's Sync button (unless `onCommand.disabled`).
- onOutOfSync: off by default; when on, an OUT_OF_SYNC application whose last deployment completed more
  than `minWindow` ago gets a quick sync. Drift detection (apps/pipedagent/livestate.py) decides
  OUT_OF_SYNC and wakes the repository's poller.
- onChain: disabled (deployment chains are not supported yet).
- An application that never had a deployment is deployed once at its current head (through onCommit,
  as in PipeCD, so `onCommit.disabled` turns that off too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .filematch import PatternMatcher

ON_COMMIT = "ON_COMMIT"
ON_COMMAND = "ON_COMMAND"
ON_OUT_OF_SYNC = "ON_OUT_OF_SYNC"
ON_CHAIN = "ON_CHAIN"

COMMAND_SUMMARY_QUICK = "Quick sync because piped received a command from a user via the portal or the API"
COMMAND_SUMMARY_PIPELINE = (
    "Sync with the specified pipeline because piped received a command from a user via the portal or the API"
)
COMMAND_SUMMARY_AUTO = "Sync because piped received a command from a user via the portal or the API"
OUT_OF_SYNC_SUMMARY = "Quick sync to attempt to resolve the detected configuration drift"


@dataclass(frozen=True)
class Decision:
    trigger: bool
    reason: str


def is_touched(app_dir: str, includes: list[str], excludes: list[str], changed_files: list[str]) -> bool:
    """Whether `changed_files` (repository paths) touch an application living in `app_dir`."""
    for pattern in excludes:
        if PatternMatcher([pattern]).matches_any(changed_files):
            return False
    for pattern in includes:
        if PatternMatcher([pattern]).matches_any(changed_files):
            return True
    prefix = "" if app_dir.strip("/.") == "" else app_dir.strip("/") + "/"
    return any(path.startswith(prefix) for path in changed_files)


def on_commit(
    *,
    disabled: bool,
    app_dir: str,
    paths: list[str],
    ignores: list[str],
    last_triggered_commit: str | None,
    head: str,
    changed_files: Callable[[str, str], list[str]],
) -> Decision:
    """`changed_files(old, new)` is only called when the head moved since the last triggered commit."""
    if disabled:
        return Decision(False, "onCommit is disabled")
    if not last_triggered_commit:
        return Decision(True, "no deployment was triggered yet: deploy the current head")
    if last_triggered_commit == head:
        return Decision(False, "nothing new since the last triggered commit")
    try:
        files = changed_files(last_triggered_commit, head)
    except Exception as exc:
        # The last triggered commit is gone (force push, rewritten history): deploy the head rather than
        # stop deploying this application for good.
        return Decision(True, f"cannot compare with the last triggered commit ({exc}): deploy the head")
    if is_touched(app_dir, paths, ignores, files):
        return Decision(True, f"{len(files)} changed file(s) touch the application")
    return Decision(False, "the new commits do not touch the application")


def on_out_of_sync(
    *,
    disabled: bool,
    min_window: timedelta,
    sync_status: str,
    most_recent_deployment: dict | None,
    now: datetime,
) -> Decision:
    if disabled:
        return Decision(False, "onOutOfSync is disabled")
    if sync_status != "OUT_OF_SYNC":
        return Decision(False, "the application is not out of sync")
    if most_recent_deployment is None:
        return Decision(True, "out of sync and never deployed")
    completed_at = most_recent_deployment.get("completed_at")
    if not completed_at:
        return Decision(False, "a deployment is in progress")
    if isinstance(completed_at, str):
        completed_at = datetime.fromisoformat(completed_at)
    if now - completed_at < min_window:
        return Decision(False, "the last deployment completed less than minWindow ago")
    return Decision(True, "out of sync for longer than minWindow")


def command_summary(strategy: str) -> str:
    if strategy == "QUICK_SYNC":
        return COMMAND_SUMMARY_QUICK
    if strategy == "PIPELINE":
        return COMMAND_SUMMARY_PIPELINE
    return COMMAND_SUMMARY_AUTO
