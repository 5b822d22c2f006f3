"""What the portal makes of a piped's reports: repository health, its state in words, and its suggestions."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils import timezone

from apps.applications.choices import DEFAULT_CONFIG_FILENAME
from apps.applications.models import Application
from apps.pipeds.choices import PipedStatus
from apps.pipeds.models import Piped

# A remote that failed this many fetches in a row is shown red; fewer, amber (it may be a blip).
FAILING_AFTER = 3


def parse_time(value) -> datetime | None:
    """An ISO 8601 time as the piped reports it; None for anything else."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return timezone.make_aware(parsed, UTC) if timezone.is_naive(parsed) else parsed


def _int(value) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


@dataclass
class RepositoryHealth:
    """One reported repository and what its last fetch said."""

    repo_id: str
    remote: str
    branch: str
    last_fetch_at: datetime | None = None
    head: str = ""
    error: str = ""
    failures: int = 0
    next_attempt_at: datetime | None = None
    last_error_at: datetime | None = None

    @property
    def state(self) -> str:
        """ok, retrying (amber), failing (red) or waiting (not fetched yet)."""
        if self.error:
            return "failing" if self.failures >= FAILING_AFTER else "retrying"
        return "ok" if self.last_fetch_at else "waiting"

    @property
    def tone(self) -> str:
        return {"ok": "success", "retrying": "waiting", "failing": "failure"}.get(self.state, "pending")

    @property
    def short_head(self) -> str:
        return self.head[:7]


def repository_health(piped: Piped) -> list[RepositoryHealth]:
    statuses = piped.repository_status if isinstance(piped.repository_status, dict) else {}
    rows = []
    for repo in piped.repositories or []:
        if not isinstance(repo, dict):
            continue
        repo_id = str(repo.get("repo_id") or "")
        status = statuses.get(repo_id)
        status = status if isinstance(status, dict) else {}
        rows.append(
            RepositoryHealth(
                repo_id=repo_id,
                remote=str(repo.get("remote") or ""),
                branch=str(repo.get("branch") or ""),
                last_fetch_at=parse_time(status.get("last_fetch_at")),
                head=str(status.get("head") or ""),
                error=str(status.get("error") or ""),
                failures=_int(status.get("failures")),
                next_attempt_at=parse_time(status.get("next_attempt_at")),
                last_error_at=parse_time(status.get("last_error_at")),
            )
        )
    return rows


@dataclass
class HealthSummary:
    """The list page's one-line view of a piped's repositories."""

    total: int = 0
    ok: int = 0
    waiting: int = 0
    broken: list[RepositoryHealth] = field(default_factory=list)

    @property
    def tone(self) -> str:
        if any(r.state == "failing" for r in self.broken):
            return "failure"
        if self.broken:
            return "waiting"
        return "success" if self.ok else "pending"

    @property
    def broken_names(self) -> str:
        return ", ".join(r.repo_id for r in self.broken)


def health_summary(piped: Piped) -> HealthSummary:
    summary = HealthSummary()
    for row in repository_health(piped):
        summary.total += 1
        if row.error:
            summary.broken.append(row)
        elif row.last_fetch_at:
            summary.ok += 1
        else:
            summary.waiting += 1
    return summary


@dataclass
class PipedState:
    """The badge and the sentence under it: online, stopped cleanly, gone quiet, or never connected."""

    status: str
    sentence: str
    at: datetime | None = None


def piped_state(piped: Piped) -> PipedState:
    status = piped.status
    if status == PipedStatus.ONLINE:
        return PipedState(status, "Heartbeat", piped.last_heartbeat_at)
    if piped.last_heartbeat_at is None:
        return PipedState(status, "Never connected: start it with its piped-config.yaml.")
    if piped.stopped_at is not None and piped.stopped_at >= piped.last_heartbeat_at:
        return PipedState(status, "Stopped cleanly", piped.stopped_at)
    return PipedState(status, "No heartbeat since", piped.last_heartbeat_at)


# --- Suggestions: app configs the piped found in Git that no application is registered for ------------


@dataclass(frozen=True)
class Suggestion:
    piped_id: str
    piped_name: str
    repo_id: str
    path: str
    config_filename: str
    name: str
    kind: str
    labels: dict
    description: str

    @property
    def config_path(self) -> str:
        return self.config_filename if self.path == "." else f"{self.path}/{self.config_filename}"

    @property
    def key(self) -> str:
        """Names the suggestion in a form or a link: which piped, which repository, which file."""
        return f"{self.piped_id}:{self.repo_id}:{self.config_path}"

    @property
    def label(self) -> str:
        return f"{self.name} — {self.repo_id}/{self.config_path}"


def _clean_path(path: str) -> str:
    parts = [p for p in str(path or "").strip().split("/") if p not in ("", ".")]
    return "/".join(parts) or "."


def suggestions_of(pipeds: list[Piped]) -> list[Suggestion]:
    """The suggestions the (enabled) pipeds reported that no application matches yet.

    A piped drops a suggestion at its next scan after the application is added; until then the portal
    hides it itself, with one query for all the pipeds given, whatever the number of suggestions.
    """
    found = []
    for piped in pipeds:
        if piped.disabled:
            continue
        for item in piped.unregistered_apps or []:
            if not isinstance(item, dict) or not item.get("repo_id"):
                continue
            labels = item.get("labels")
            found.append(
                Suggestion(
                    piped_id=str(piped.id),
                    piped_name=piped.name,
                    repo_id=str(item["repo_id"]),
                    path=_clean_path(item.get("path")),
                    config_filename=str(item.get("config_filename") or DEFAULT_CONFIG_FILENAME),
                    name=str(item.get("name") or "")[:100],
                    kind=str(item.get("kind") or "ECS"),
                    labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
                    description=str(item.get("description") or ""),
                )
            )
    if not found:
        return []
    registered = set(
        Application.objects.filter(
            piped_id__in={s.piped_id for s in found},
            deleted=False,
            path__in={s.path for s in found},
        )
        .order_by()
        .values_list("piped_id", "repo_id", "path", "config_filename")
    )
    return [
        s for s in found if (uuid.UUID(s.piped_id), s.repo_id, s.path, s.config_filename) not in registered
    ]
