"""Read-side queries for the portal: filtered, paginated lists served from indexes, no query per row."""

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts.models import PortalSession
from apps.applications.models import Application, ApplicationLiveState
from apps.core.errors import InvalidInput
from apps.core.labels import MAX_LABEL_FILTERS, filter_labels
from apps.deployments.choices import WAIT_APPROVAL, CommandType, StageStatus
from apps.deployments.models import Command, Deployment, Stage, StageLogBlock
from apps.pipeds.models import Piped
from apps.projects.models import AuditEvent


def parse_label_filters(values: list[str]) -> dict[str, str]:
    """`key:value` strings (repeated, or comma separated in one value) into a dict."""
    labels: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, label_value = item.partition(":")
            if not sep or not key.strip():
                raise InvalidInput(f"Label filter {item!r}: expected key:value.", field="labels")
            labels[key.strip()] = label_value.strip()
    if len(labels) > MAX_LABEL_FILTERS:
        raise InvalidInput(f"At most {MAX_LABEL_FILTERS} label filters.", field="labels")
    return labels


# --- Applications ---------------------------------------------------------------------------------------


def list_applications(
    project_id: str,
    *,
    kind: str = "",
    sync_status: str = "",
    labels: dict[str, str] | None = None,
    name: str = "",
) -> QuerySet:
    """The ids of the matching applications in list order.

    Only ids: paginating them is served by the (project, deleted, name) index alone, whereas sorting the
    joined rows made MariaDB read every application of the project (0.5 s at 10,000 apps). The page's
    rows are then loaded by `applications_by_id`.
    """
    queryset = Application.objects.filter(project_id=project_id, deleted=False)
    if kind:
        queryset = queryset.filter(kind=kind)
    if sync_status:
        queryset = queryset.filter(sync_status=sync_status)
    if name:
        queryset = queryset.filter(name__icontains=name)
    queryset = filter_labels(queryset, labels or {})
    return queryset.order_by("name", "id").values_list("id", flat=True)


def applications_by_id(ids: list) -> list[Application]:
    """The rows the list shows for these ids, in the given order, in one query (three tables joined)."""
    rows = (
        Application.objects.filter(pk__in=ids)
        .select_related("piped", "most_recent_deployment", "most_recent_successful_deployment")
        .only(
            "id",
            "name",
            "kind",
            "labels",
            "platform_provider",
            "sync_status",
            "sync_short_reason",
            "disabled",
            "piped",
            "piped__name",
            "most_recent_deployment",
            "most_recent_deployment__status",
            "most_recent_deployment__status_reason",
            "most_recent_deployment__created_at",
            "most_recent_deployment__completed_at",
            "most_recent_successful_deployment",
            "most_recent_successful_deployment__versions",
            "most_recent_successful_deployment__commit_hash",
        )
    )
    by_id = {row.pk: row for row in rows}
    return [by_id[pk] for pk in ids if pk in by_id]


def recent_deployments(application: Application, limit: int = 10) -> list[Deployment]:
    return list(
        Deployment.objects.filter(application=application)
        .defer("metadata", "summary")
        .order_by("-created_at", "-id")[:limit]
    )


def application_live_state(application_id) -> ApplicationLiveState | None:
    """What the piped last reported running for the application, and its last drift check (one row)."""
    return ApplicationLiveState.objects.filter(application_id=application_id).first()


def pipeds_for_application_form(project_id: str, *, with_suggestions: bool = False) -> list[Piped]:
    fields = ["id", "name", "disabled", "repositories", "platform_providers"]
    if with_suggestions:
        fields.append("unregistered_apps")
    return list(Piped.objects.filter(project_id=project_id).only(*fields).order_by("name"))


# --- Deployments ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where a page of a newest-first list starts: after (created_at, id)."""

    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> "Cursor":
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            created, _, ident = raw.partition("|")
            created_at = datetime.fromisoformat(created)
            if timezone.is_naive(created_at):
                raise ValueError("naive time")
            return cls(created_at, str(uuid.UUID(ident)))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidInput("The page cursor is not valid; start again from the first page.") from None


@dataclass
class CursorPage:
    items: list
    next_cursor: str | None


def resolve_application_filter(project_id: str, value: str) -> list:
    """An application filter is an application ID or a name (exact, any case): the matching app ids."""
    value = value.strip()
    try:
        return [uuid.UUID(value)]
    except ValueError:
        pass
    return list(
        Application.objects.filter(project_id=project_id, name__iexact=value).values_list("id", flat=True)
    )


def list_deployments(
    project_id: str,
    *,
    application_ids: list | None = None,
    status: str = "",
    labels: dict[str, str] | None = None,
    cursor: Cursor | None = None,
    limit: int = 50,
) -> CursorPage:
    """Newest first, keyset-paginated on (created_at, id): the indexes dep_project_recent /
    dep_project_status / dep_app_recent serve every filter combination without counting rows."""
    queryset = Deployment.objects.filter(project_id=project_id)
    if application_ids is not None:
        queryset = queryset.filter(application_id__in=application_ids)
    if status:
        queryset = queryset.filter(status=status)
    queryset = filter_labels(queryset, labels or {})
    if cursor is not None:
        # `created_at <= c` first keeps an index range usable; the OR then settles ties on the id.
        queryset = queryset.filter(
            Q(created_at__lte=cursor.created_at)
            & (Q(created_at__lt=cursor.created_at) | Q(created_at=cursor.created_at, id__lt=cursor.id))
        )
    # Two steps: the page's keys from the index alone, then the rows by primary key. Asked for whole rows
    # at once, MariaDB walks the index from the newest entry down to a deep cursor (see the API's list).
    keys = list(queryset.order_by("-created_at", "-id").values_list("created_at", "id")[: limit + 1])
    next_cursor = None
    if len(keys) > limit:
        keys = keys[:limit]
        next_cursor = Cursor(keys[-1][0], str(keys[-1][1])).encode()
    by_id = (
        Deployment.objects.only(
            "id",
            "application_id",
            "application_name",
            "labels",
            "commit_hash",
            "commit_message",
            "commit_author",
            "commander",
            "sync_strategy",
            "versions",
            "status",
            "status_reason",
            "created_at",
            "completed_at",
        ).in_bulk([pk for _, pk in keys])
        if keys
        else {}
    )
    rows = [by_id[pk] for _, pk in keys if pk in by_id]  # a row deleted in between is simply gone
    return CursorPage(rows, next_cursor)


def waiting_for_approval(deployment_ids) -> set:
    """Which of these deployments wait for a person right now: one query for a whole page of rows."""
    ids = [i for i in deployment_ids if i]
    if not ids:
        return set()
    return set(
        Stage.objects.filter(deployment_id__in=ids, name=WAIT_APPROVAL, status=StageStatus.RUNNING)
        .order_by()  # Stage's default ordering would join the deployments table for nothing
        .values_list("deployment_id", flat=True)
        .distinct()
    )


def deployment_stages(deployment: Deployment) -> list[Stage]:
    return list(deployment.stages.order_by("index", "id"))


def deployment_commands(deployment: Deployment) -> list[Command]:
    """Commands about this deployment (approvals, skips, cancels), oldest first: who asked what, when."""
    return list(
        Command.objects.filter(deployment=deployment)
        .only("id", "type", "status", "stage_id", "commander", "payload", "created_at", "handled_at")
        .order_by("created_at", "id")
    )


def approvals_by_stage(commands: list[Command]) -> dict[str, list[Command]]:
    approvals: dict[str, list[Command]] = {}
    for command in commands:
        if command.type == CommandType.APPROVE_STAGE:
            approvals.setdefault(command.stage_id, []).append(command)
    return approvals


MAX_LOG_BLOCKS = 2000


def stage_log_blocks(stage: Stage, limit: int = MAX_LOG_BLOCKS) -> tuple[list[StageLogBlock], bool]:
    """The stage's log, every run of it, in (retried_count, index) order: the last `limit` blocks and
    whether older ones were left out. One query on the (stage, retried_count, index) unique index."""
    rows = list(StageLogBlock.objects.filter(stage=stage).order_by("-retried_count", "-index")[: limit + 1])
    truncated = len(rows) > limit
    return list(reversed(rows[:limit])), truncated


def stage_log_tail(
    stage: Stage, after: tuple[int, int] | None, limit: int = MAX_LOG_BLOCKS
) -> tuple[list[StageLogBlock], bool]:
    """The blocks after position `after` = (retried_count, index), oldest first, at most `limit`, and
    whether more are waiting. One query on the same index, however long the log already is."""
    queryset = StageLogBlock.objects.filter(stage=stage)
    if after is not None:
        run, index = after
        queryset = queryset.filter(Q(retried_count__gt=run) | Q(retried_count=run, index__gt=index))
    rows = list(queryset.order_by("retried_count", "index")[: limit + 1])
    return rows[:limit], len(rows) > limit


# --- Settings -------------------------------------------------------------------------------------------


def list_pipeds(project_id: str) -> list[Piped]:
    return list(
        Piped.objects.filter(project_id=project_id)
        .only(
            "id",
            "name",
            "description",
            "disabled",
            "version",
            "last_heartbeat_at",
            "started_at",
            "stopped_at",
            # The list's repository health summary.
            "repositories",
            "repository_status",
        )
        .order_by("name")
    )


def list_audit_events(
    project_id: str, *, verb: str = "", actor: str = "", before_id: int | None = None, limit: int = 50
) -> tuple[list[AuditEvent], int | None]:
    """Newest first on the (project, -id) index; returns the page and the id to continue before."""
    queryset = AuditEvent.objects.filter(project_id=project_id)
    if verb:
        queryset = queryset.filter(verb__startswith=verb)
    if actor:
        queryset = queryset.filter(actor=actor)
    if before_id is not None:
        queryset = queryset.filter(id__lt=before_id)
    rows = list(queryset.order_by("-id")[: limit + 1])
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


def list_sessions(project_id: str) -> list[PortalSession]:
    return list(
        PortalSession.objects.filter(project_id=project_id, expires_at__gt=timezone.now()).order_by(
            "username", "-created_at"
        )
    )
