"""Control-plane rules for notifications: keep what pipeds report, raise PIPED_OFFLINE, list and prune.

- `record_event` / `record_attempts`: what a piped reports through its API (idempotent: the same event id
  or the same (event, receiver, attempt) again changes nothing). An application or deployment id that is
  not the piped's own is dropped, never trusted.
- `detect_offline_pipeds`: a piped whose heartbeat stopped (and that did not say it stops) gets one
  PIPED_OFFLINE per outage; `deliver_control_plane_event` sends it to the receivers configured by
  environment (PIPEPORTAL_NOTIFY_*), recording every attempt like a piped does.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.applications.models import Application
from apps.core.errors import Forbidden, InvalidInput
from apps.core.times import parse_time
from apps.deployments.models import Deployment
from apps.pipeds.models import Piped
from apps.pipelineconfig.constants import NOTIFICATION_EVENTS
from apps.projects.principal import Principal
from apps.projects.roles import Action, Resource

from .choices import Outcome, ReceiverKind, Source
from .models import NotificationAttempt, NotificationEvent

logger = logging.getLogger(__name__)

MAX_ATTEMPTS_PER_CALL = 500
# Pipeds silent for longer than this are not announced as newly offline (a piped retired long ago
# without a clean stop would otherwise be announced when this job first runs).
OFFLINE_LOOKBACK = timedelta(hours=24)
PAGE_SIZE = 50


def _uuid(value, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} is not a UUID.", field=what) from None


def _time(value, what: str) -> datetime:
    return parse_time(value, what)


def _own_id(model, piped: Piped, value) -> uuid.UUID | None:
    """The id if it names one of the piped's rows, else None (never another piped's row)."""
    if not value:
        return None
    try:
        pk = uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None
    return pk if model.objects.filter(pk=pk, piped=piped).exists() else None


# --- What pipeds report ---------------------------------------------------------------------------------


def _clean_event(data) -> dict:
    if not isinstance(data, dict):
        raise InvalidInput("event must be an object.", field="event")
    event_type = str(data.get("type") or "")
    if event_type not in NOTIFICATION_EVENTS:
        raise InvalidInput(f"Unknown event type {event_type!r}.", field="event.type")
    return {
        "id": _uuid(data.get("id"), "event.id"),
        "type": event_type,
        "occurred_at": _time(data.get("occurred_at"), "event.occurred_at"),
        "summary": str(data.get("summary") or "")[:500],
        "application_id": data.get("application_id"),
        "deployment_id": data.get("deployment_id"),
    }


def _store_event(piped: Piped, clean: dict) -> tuple[NotificationEvent | None, bool]:
    existing = NotificationEvent.objects.filter(pk=clean["id"]).first()
    if existing is not None:
        return (existing if existing.piped_id == piped.id else None), False
    try:
        with transaction.atomic():
            event = NotificationEvent.objects.create(
                id=clean["id"],
                project_id=piped.project_id,
                piped=piped,
                type=clean["type"],
                source=Source.PIPED,
                application_id=_own_id(Application, piped, clean["application_id"]),
                deployment_id=_own_id(Deployment, piped, clean["deployment_id"]),
                summary=clean["summary"],
                occurred_at=clean["occurred_at"],
            )
    except IntegrityError:
        # Two processes registered the same event at once: the other one won.
        existing = NotificationEvent.objects.filter(pk=clean["id"]).first()
        return (existing if existing and existing.piped_id == piped.id else None), False
    return event, True


def record_event(piped: Piped, data: dict) -> tuple[NotificationEvent | None, bool]:
    """Keep an event a piped is about to deliver. Answers (event, new); an id already known is not new
    (then the piped sends nothing: another process did or does). Another piped's event id answers
    (None, False)."""
    return _store_event(piped, _clean_event(data))


def _clean_attempt(raw, where: str) -> dict:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be an object.", field=where)
    outcome = str(raw.get("outcome") or "")
    if outcome not in Outcome.values:
        raise InvalidInput(f"{where}.outcome: unknown outcome {outcome!r}.", field=f"{where}.outcome")
    kind = str(raw.get("kind") or "")
    if kind not in ReceiverKind.values:
        raise InvalidInput(f"{where}.kind: expected slack or webhook.", field=f"{where}.kind")
    try:
        number = int(raw.get("attempt"))
        status_code = int(raw["status_code"]) if raw.get("status_code") is not None else None
        duration = max(int(raw.get("duration_ms") or 0), 0)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"{where}: attempt, status_code and duration_ms are numbers.", field=where
        ) from None
    if not 0 < number < 1000:
        raise InvalidInput(f"{where}.attempt must be between 1 and 999.", field=f"{where}.attempt")
    return {
        "receiver": str(raw.get("receiver") or "")[:100],
        "kind": kind,
        "attempt": number,
        "outcome": outcome,
        "status_code": status_code if status_code is not None and 0 <= status_code < 1000 else None,
        "error": str(raw.get("error") or "")[:500],
        "duration_ms": min(duration, 2**31 - 1),
        "attempted_at": _time(raw.get("attempted_at"), f"{where}.attempted_at"),
    }


def record_attempts(piped: Piped, attempts: list[dict]) -> int:
    """Store a batch of delivery attempts (each with its event); answers how many were received. The whole
    batch is checked first: a bad entry writes nothing."""
    if not isinstance(attempts, list):
        raise InvalidInput("attempts must be a list.", field="attempts")
    if len(attempts) > MAX_ATTEMPTS_PER_CALL:
        raise InvalidInput(f"At most {MAX_ATTEMPTS_PER_CALL} attempts per call.", field="attempts")
    cleaned = []
    for index, raw in enumerate(attempts):
        where = f"attempts[{index}]"
        fields = _clean_attempt(raw, where)
        try:
            event = _clean_event(raw.get("event"))
        except InvalidInput as exc:
            raise InvalidInput(f"{where}.{exc.message}", field=f"{where}.{exc.field}") from None
        cleaned.append((event, fields))
    with transaction.atomic():
        events: dict[uuid.UUID, NotificationEvent | None] = {}
        rows = []
        for event_data, fields in cleaned:
            if event_data["id"] not in events:
                events[event_data["id"]] = _store_event(piped, event_data)[0]
            event = events[event_data["id"]]
            if event is not None:  # another piped's event: not this piped's to record
                rows.append(NotificationAttempt(event=event, piped=piped, **fields))
        # An attempt already recorded (a batch sent again after a lost answer) is left as it is.
        NotificationAttempt.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# --- PIPED_OFFLINE --------------------------------------------------------------------------------------


def detect_offline_pipeds(now: datetime | None = None) -> list[NotificationEvent]:
    """One PIPED_OFFLINE per outage (an outage is named by the last heartbeat before it)."""
    now = now or timezone.now()
    window = timedelta(seconds=settings.PIPEPORTAL_PIPED_ONLINE_SECONDS)
    silent = Piped.objects.filter(
        disabled=False,
        last_heartbeat_at__lt=now - window,
        last_heartbeat_at__gte=now - window - OFFLINE_LOOKBACK,
    ).filter(Q(stopped_at__isnull=True) | Q(stopped_at__lt=F("last_heartbeat_at")))
    raised = []
    for piped in silent:
        last = piped.last_heartbeat_at
        key = f"PIPED_OFFLINE:{piped.id}:{last.isoformat()}"
        if NotificationEvent.objects.filter(dedup_key=key).exists():
            continue
        try:
            with transaction.atomic():
                event = NotificationEvent.objects.create(
                    project_id=piped.project_id,
                    piped=piped,
                    type="PIPED_OFFLINE",
                    source=Source.CONTROL_PLANE,
                    summary=f"Piped {piped.name} is offline",
                    dedup_key=key,
                    occurred_at=now,
                )
        except IntegrityError:
            continue  # another beat run raised it a moment ago
        logger.warning("piped %s (%s) is offline: no heartbeat since %s", piped.name, piped.id, last)
        raised.append(event)
        if control_plane_receivers():
            from .tasks import deliver_control_plane_event

            transaction.on_commit(lambda event_id=str(event.id): deliver_control_plane_event.delay(event_id))
    return raised


def control_plane_receivers() -> list:
    """Receivers of the control plane's own events, from PIPEPORTAL_NOTIFY_* (docs/notifications.md)."""
    from apps.pipelineconfig.piped import NotificationReceiver, SlackReceiver, WebhookReceiver

    receivers = []
    if settings.PIPEPORTAL_NOTIFY_WEBHOOK_URL:
        receivers.append(
            NotificationReceiver(
                name="control-plane-webhook",
                webhook=WebhookReceiver(
                    url=settings.PIPEPORTAL_NOTIFY_WEBHOOK_URL,
                    signing_secret=settings.PIPEPORTAL_NOTIFY_WEBHOOK_SIGNING_SECRET,
                ),
            )
        )
    if settings.PIPEPORTAL_NOTIFY_SLACK_HOOK_URL:
        receivers.append(
            NotificationReceiver(
                name="control-plane-slack",
                slack=SlackReceiver(hook_url=settings.PIPEPORTAL_NOTIFY_SLACK_HOOK_URL),
            )
        )
    return receivers


def deliver_control_plane_event(event_id, *, sleep=None) -> int:
    """Send a control-plane event (PIPED_OFFLINE) to the environment's receivers, with retries; every
    attempt is recorded. Answers how many receivers got it."""
    from . import slack, webhook
    from .builders import piped_event
    from .delivery import DeliveryOptions, Retrier
    from .events import Source as EventSource
    from .events import iso

    event = NotificationEvent.objects.select_related("piped").filter(pk=event_id).first()
    if event is None:
        return 0
    piped = event.piped
    source = EventSource(
        project_id=event.project_id,
        piped_id=str(piped.id),
        piped_name=piped.name,
        piped_version=piped.version,
        portal=settings.PIPEPORTAL_BASE_URL,
    )
    silent_for = settings.PIPEPORTAL_PIPED_ONLINE_SECONDS
    reason = (
        f"No heartbeat since {iso(piped.last_heartbeat_at) or 'ever'} (more than {silent_for}s): the piped "
        "crashed, lost its network, or was stopped without saying so."
    )
    message = piped_event(source, event.type, reason=reason, event_uuid=str(event.id), now=event.occurred_at)
    options = DeliveryOptions.from_settings()
    retrier = Retrier(options, sleep=sleep) if sleep else Retrier(options)
    delivered = 0
    for receiver in control_plane_receivers():
        kind = ReceiverKind.SLACK if receiver.slack is not None else ReceiverKind.WEBHOOK

        def once(receiver=receiver):
            if receiver.slack is not None:
                return slack.send(
                    receiver.slack, message, timeout=options.timeout, api_url=options.slack_api_url
                )
            return webhook.send(receiver.webhook, message, timeout=options.timeout)

        def keep(number, result, receiver=receiver, kind=kind):
            NotificationAttempt.objects.get_or_create(
                event=event,
                receiver=receiver.name,
                attempt=number,
                defaults={
                    "piped": piped,
                    "kind": kind,
                    "outcome": result.outcome,
                    "status_code": result.status_code,
                    "error": result.error[:500],
                    "duration_ms": result.duration_ms,
                    "attempted_at": timezone.now(),
                },
            )

        if retrier.run(once, keep).outcome == Outcome.DELIVERED:
            delivered += 1
    return delivered


# --- Reading and pruning --------------------------------------------------------------------------------


def get_piped_for_notifications(principal: Principal, piped_id) -> Piped:
    """The piped whose delivery attempts an Admin may see: 404 outside the project, 403 below Admin
    (seeing where notifications go is part of managing the piped)."""
    from apps.pipeds.services import get_piped

    piped = get_piped(principal, piped_id, Action.GET)
    if not can_see_attempts(principal):
        raise Forbidden(
            f"Your role ({principal.role}) may not see the notification deliveries of pipeds: Admins only."
        )
    return piped


def list_attempts(
    piped: Piped, *, outcome: str = "", before: tuple[datetime, int] | None = None, limit: int = PAGE_SIZE
) -> tuple[list[NotificationAttempt], tuple[datetime, int] | None]:
    """Newest first on the (piped, -attempted_at, -id) index; answers the page and the key to continue."""
    queryset = NotificationAttempt.objects.filter(piped=piped).select_related("event")
    if outcome:
        queryset = queryset.filter(outcome=outcome)
    if before is not None:
        at, pk = before
        queryset = queryset.filter(Q(attempted_at__lt=at) | Q(attempted_at=at, id__lt=pk))
    rows = list(queryset.order_by("-attempted_at", "-id")[: limit + 1])
    if len(rows) > limit:
        last = rows[limit - 1]
        return rows[:limit], (last.attempted_at, last.id)
    return rows, None


def prune_notifications(now: datetime | None = None, batch: int = 1000) -> int:
    """Delete events (and their attempts) older than PIPEPORTAL_NOTIFY_RETENTION_DAYS (0 keeps all)."""
    days = settings.PIPEPORTAL_NOTIFY_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(
            NotificationEvent.objects.filter(occurred_at__lt=cutoff).values_list("id", flat=True)[:batch]
        )
        if not ids:
            return deleted
        NotificationEvent.objects.filter(id__in=ids).delete()
        deleted += len(ids)


def can_see_attempts(principal: Principal) -> bool:
    return principal.can(Resource.PIPED, Action.UPDATE)
