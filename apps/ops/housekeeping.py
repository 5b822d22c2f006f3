"""Retention: pruning stage logs, old deployments' details, handled commands and audit rows, in small batches.

Rules (settings, in days; 0 keeps forever):
- the newest PIPEPORTAL_RETENTION_KEEP_DEPLOYMENTS deployments of every application keep everything, and
  so do running deployments and the ones an application points at (most recent, most recent successful:
  rollback needs them);
- other deployments lose their stage logs PIPEPORTAL_RETENTION_STAGE_LOG_DAYS after they completed, and
  their stages and metadata PIPEPORTAL_RETENTION_DEPLOYMENT_DETAIL_DAYS after; the deployment row itself
  (trigger, commit, status, summary) stays, its metadata then only says when the details were removed;
- handled commands (SUCCEEDED, FAILED, TIMEOUT) go PIPEPORTAL_RETENTION_COMMAND_DAYS after they were made;
- audit rows go PIPEPORTAL_RETENTION_AUDIT_DAYS after they were written;
- expired sessions (Django's rows behind the cached_db sessions, and the portal's record of them) go at
  once: nothing ever reads them again, and nothing else removes them.

Every delete is a batch of at most PIPEPORTAL_RETENTION_BATCH_SIZE rows in its own short transaction,
bounded by a primary-key range (integer keys) or by a list of ids read through an index (UUID keys), so
no statement scans or locks a table for long and the portal and the pipeds keep writing meanwhile.
"""

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.applications.models import Application
from apps.deployments.choices import DEPLOYMENT_TERMINAL, CommandStatus
from apps.deployments.models import Command, Deployment, Stage, StageLogBlock
from apps.projects.models import AuditEvent

logger = logging.getLogger(__name__)

# The metadata key left on a deployment whose stages and metadata were removed.
DETAILS_PRUNED_KEY = "details_pruned_at"
HANDLED_COMMANDS = (CommandStatus.SUCCEEDED, CommandStatus.FAILED, CommandStatus.TIMEOUT)


@dataclass
class PruneSummary:
    dry_run: bool
    keep_deployments: int
    cutoffs: dict[str, str | None] = field(default_factory=dict)
    deployments_details_pruned: int = 0
    deployments_logs_pruned: int = 0
    stages: int = 0
    stage_logs: int = 0
    commands: int = 0
    audit_events: int = 0
    sessions: int = 0
    portal_sessions: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _cutoff(now: datetime, days: int) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def delete_in_pk_batches(queryset: QuerySet, batch_size: int, dry_run: bool = False) -> int:
    """Delete the rows of `queryset` (integer primary key) one primary-key range at a time.

    Each round reads the next `batch_size` matching keys through the primary key, then deletes the rows
    that match between the first and the last of them, in its own transaction. The models this is used
    on have no cascades left to follow (logs go before their stages), so each round is one DELETE.
    """
    total = 0
    after = None
    while True:
        page = queryset.order_by("pk")
        if after is not None:
            page = page.filter(pk__gt=after)
        keys = list(page.values_list("pk", flat=True)[:batch_size])
        if not keys:
            return total
        low, high = keys[0], keys[-1]
        if dry_run:
            total += len(keys)
        else:
            with transaction.atomic():
                deleted, _ = queryset.filter(pk__gte=low, pk__lte=high).delete()
            total += deleted
        after = high


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _old(cutoff: datetime) -> Q:
    """Completed before `cutoff` (created before it when the piped never set a completion time)."""
    return Q(completed_at__lt=cutoff) | Q(completed_at__isnull=True, created_at__lt=cutoff)


def _prunable_deployments(keep: int):
    """Per application, the terminal deployments beyond its newest `keep` that nothing points at."""
    applications = Application.objects.order_by("pk").values_list(
        "pk", "most_recent_deployment_id", "most_recent_successful_deployment_id"
    )
    for app_id, recent_id, successful_id in applications.iterator(chunk_size=500):
        newest = list(
            Deployment.objects.filter(application_id=app_id)
            .order_by("-created_at", "-id")
            .values_list("id", flat=True)[:keep]
        )
        if len(newest) < keep:
            continue
        protected = {*newest, recent_id, successful_id} - {None}
        yield (
            Deployment.objects.filter(application_id=app_id, status__in=DEPLOYMENT_TERMINAL)
            .exclude(id__in=protected)
            .exclude(metadata__has_key=DETAILS_PRUNED_KEY)
        )


def _prune_logs_of(deployment_ids: list, batch_size: int, dry_run: bool) -> int:
    stage_ids = list(Stage.objects.filter(deployment_id__in=deployment_ids).values_list("id", flat=True))
    total = 0
    for stage_chunk in _chunks(stage_ids, batch_size):
        total += delete_in_pk_batches(
            StageLogBlock.objects.filter(stage_id__in=stage_chunk), batch_size, dry_run
        )
    return total


def prune(
    *, now: datetime | None = None, dry_run: bool = False, batch_size: int | None = None
) -> PruneSummary:
    """Apply every retention rule once. Safe to run concurrently with everything else, and to repeat."""
    now = now or timezone.now()
    batch_size = batch_size or settings.PIPEPORTAL_RETENTION_BATCH_SIZE
    keep = max(1, settings.PIPEPORTAL_RETENTION_KEEP_DEPLOYMENTS)
    log_cutoff = _cutoff(now, settings.PIPEPORTAL_RETENTION_STAGE_LOG_DAYS)
    detail_cutoff = _cutoff(now, settings.PIPEPORTAL_RETENTION_DEPLOYMENT_DETAIL_DAYS)
    command_cutoff = _cutoff(now, settings.PIPEPORTAL_RETENTION_COMMAND_DAYS)
    audit_cutoff = _cutoff(now, settings.PIPEPORTAL_RETENTION_AUDIT_DAYS)
    summary = PruneSummary(
        dry_run=dry_run,
        keep_deployments=keep,
        cutoffs={
            "stage_logs": log_cutoff.isoformat() if log_cutoff else None,
            "deployment_details": detail_cutoff.isoformat() if detail_cutoff else None,
            "commands": command_cutoff.isoformat() if command_cutoff else None,
            "audit_events": audit_cutoff.isoformat() if audit_cutoff else None,
        },
    )

    if log_cutoff or detail_cutoff:
        for candidates in _prunable_deployments(keep):
            if detail_cutoff:
                ids = list(
                    candidates.filter(_old(detail_cutoff)).order_by("created_at").values_list("id", flat=True)
                )
                for chunk in _chunks(ids, batch_size):
                    _prune_details(chunk, now, batch_size, dry_run, summary)
            if log_cutoff:
                logs_only = candidates.filter(_old(log_cutoff))
                if detail_cutoff:
                    logs_only = logs_only.exclude(_old(detail_cutoff))
                ids = list(logs_only.order_by("created_at").values_list("id", flat=True))
                for chunk in _chunks(ids, batch_size):
                    with_logs = (
                        StageLogBlock.objects.filter(stage__deployment_id__in=chunk)
                        .values("stage__deployment_id")
                        .distinct()
                        .count()
                    )
                    if with_logs:
                        summary.deployments_logs_pruned += with_logs
                        summary.stage_logs += _prune_logs_of(chunk, batch_size, dry_run)

    if command_cutoff:
        commands = Command.objects.filter(status__in=HANDLED_COMMANDS, created_at__lt=command_cutoff)
        if dry_run:
            summary.commands = commands.count()
        else:
            while ids := list(commands.order_by("created_at").values_list("id", flat=True)[:batch_size]):
                with transaction.atomic():
                    deleted, _ = Command.objects.filter(id__in=ids).delete()
                summary.commands += deleted

    if audit_cutoff:
        summary.audit_events = delete_in_pk_batches(
            AuditEvent.objects.filter(created_at__lt=audit_cutoff), batch_size, dry_run
        )

    summary.sessions, summary.portal_sessions = _prune_sessions(now, batch_size, dry_run)

    logger.info("prune%s: %s", " (dry run)" if dry_run else "", summary.as_dict())
    return summary


def delete_in_key_batches(queryset: QuerySet, order: str, batch_size: int, dry_run: bool = False) -> int:
    """Delete the rows of `queryset` by lists of at most `batch_size` primary keys read in `order`."""
    if dry_run:
        return queryset.count()
    total = 0
    while keys := list(queryset.order_by(order).values_list("pk", flat=True)[:batch_size]):
        with transaction.atomic():
            deleted, _ = queryset.filter(pk__in=keys).delete()
        total += deleted
        if not deleted:  # the rows left the queryset meanwhile (a session was extended): done
            break
    return total


def _prune_sessions(now: datetime, batch_size: int, dry_run: bool) -> tuple[int, int]:
    from django.contrib.sessions.models import Session

    from apps.accounts.models import PortalSession

    sessions = delete_in_key_batches(
        Session.objects.filter(expire_date__lt=now), "expire_date", batch_size, dry_run
    )
    portal = delete_in_key_batches(
        PortalSession.objects.filter(expires_at__lt=now), "expires_at", batch_size, dry_run
    )
    return sessions, portal


def _prune_details(chunk: list, now: datetime, batch_size: int, dry_run: bool, summary: PruneSummary) -> None:
    summary.stage_logs += _prune_logs_of(chunk, batch_size, dry_run)
    summary.stages += delete_in_pk_batches(Stage.objects.filter(deployment_id__in=chunk), batch_size, dry_run)
    if dry_run:
        summary.deployments_details_pruned += len(chunk)
        return
    with transaction.atomic():
        summary.deployments_details_pruned += Deployment.objects.filter(id__in=chunk).update(
            metadata={DETAILS_PRUNED_KEY: now.isoformat()}
        )
