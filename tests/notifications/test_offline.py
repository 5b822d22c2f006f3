"""PIPED_OFFLINE: the control plane's beat job notices a silent piped once per outage and tells the receivers
configured by environment, recording every attempt; plus the retention of notification records."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.notifications import tasks
from apps.notifications.models import NotificationAttempt, NotificationEvent
from apps.pipeds.models import Piped
from apps.pipeds.services import register_piped
from apps.projects.principal import system_principal
from pipeportal.celery import app as celery_app

from .test_webhook import verification_snippet

pytestmark = pytest.mark.django_db
SECRET = "control-plane-signing-secret-for-this-test"


@pytest.fixture
def tasks_run_here():
    """Run the control plane's Celery tasks in this process, as it does without a broker."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.fixture
def control_plane_webhook(receivers, settings, fast_delivery):
    def make(answers=None):
        hook = receivers(answers)
        settings.PIPEPORTAL_NOTIFY_WEBHOOK_URL = f"{hook.url}/offline"
        settings.PIPEPORTAL_NOTIFY_WEBHOOK_SIGNING_SECRET = SECRET
        return hook

    return make


def silent_for(piped: Piped, seconds: float, *, stopped: bool = False) -> None:
    last = timezone.now() - timedelta(seconds=seconds)
    Piped.objects.filter(pk=piped.pk).update(last_heartbeat_at=last, stopped_at=last if stopped else None)


def detect(django_capture_on_commit_callbacks) -> int:
    with django_capture_on_commit_callbacks(execute=True):
        return tasks.detect_offline_pipeds()


def test_the_beat_job_is_scheduled_on_the_control_planes_queue(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["notifications.detect-offline-pipeds"]
    assert entry["task"] == "cp.notifications.detect_offline_pipeds"
    assert entry["options"] == {"queue": "cp"}
    assert entry["schedule"] == settings.PIPEPORTAL_NOTIFY_OFFLINE_CHECK_SECONDS
    celery_app.loader.import_default_modules()
    assert {"cp.notifications.detect_offline_pipeds", "cp.notifications.deliver_control_plane_event"} <= set(
        celery_app.tasks
    )


def test_a_silent_piped_is_announced_once_per_outage_signed(
    piped, control_plane_webhook, tasks_run_here, django_capture_on_commit_callbacks
):
    hook = control_plane_webhook()
    silent_for(piped, 600)

    assert detect(django_capture_on_commit_callbacks) == 1
    assert detect(django_capture_on_commit_callbacks) == 0  # the same outage again: nothing new

    [request] = hook.requests
    body = verification_snippet()(SECRET.encode(), request.body, request.headers["X-PipePortal-Signature"])
    assert body["type"] == "PIPED_OFFLINE"
    assert body["piped"]["id"] == str(piped.id)
    assert body["piped"]["name"] == piped.name
    assert body["reason"].startswith("No heartbeat since ")
    assert body["portal_url"].endswith(f"/settings/pipeds/{piped.id}/")
    [event] = NotificationEvent.objects.filter(piped=piped)
    assert (event.type, event.source) == ("PIPED_OFFLINE", "CONTROL_PLANE")
    [attempt] = NotificationAttempt.objects.filter(event=event)
    assert (attempt.receiver, attempt.outcome, attempt.status_code) == (
        "control-plane-webhook",
        "DELIVERED",
        200,
    )


def test_a_piped_that_comes_back_and_falls_silent_again_is_a_new_outage(
    piped, control_plane_webhook, tasks_run_here, django_capture_on_commit_callbacks
):
    hook = control_plane_webhook()
    silent_for(piped, 600)
    detect(django_capture_on_commit_callbacks)
    silent_for(piped, 300)  # it heartbeated in between, then went quiet again
    detect(django_capture_on_commit_callbacks)
    assert len(hook.requests) == 2
    assert NotificationEvent.objects.filter(piped=piped, type="PIPED_OFFLINE").count() == 2


def test_the_control_planes_delivery_is_retried_and_recorded(
    piped, control_plane_webhook, tasks_run_here, django_capture_on_commit_callbacks
):
    hook = control_plane_webhook([502])
    silent_for(piped, 600)
    detect(django_capture_on_commit_callbacks)
    assert len(hook.requests) == 2
    attempts = NotificationAttempt.objects.filter(piped=piped).order_by("attempt")
    assert [(a.attempt, a.outcome, a.status_code) for a in attempts] == [
        (1, "RETRYING", 502),
        (2, "DELIVERED", 200),
    ]


@pytest.mark.parametrize(
    "case",
    ["online", "stopped cleanly", "disabled", "never started", "silent for days"],
)
def test_pipeds_that_are_not_newly_offline_are_left_alone(
    piped, case, control_plane_webhook, tasks_run_here, django_capture_on_commit_callbacks
):
    hook = control_plane_webhook()
    if case == "online":
        silent_for(piped, 5)
    elif case == "stopped cleanly":
        silent_for(piped, 600, stopped=True)
    elif case == "disabled":
        silent_for(piped, 600)
        Piped.objects.filter(pk=piped.pk).update(disabled=True)
    elif case == "silent for days":
        silent_for(piped, 3 * 24 * 3600)
    assert detect(django_capture_on_commit_callbacks) == 0
    assert not hook.requests
    assert not NotificationEvent.objects.exists()


def test_without_control_plane_receivers_the_outage_is_only_recorded(
    project, piped, settings, django_capture_on_commit_callbacks
):
    settings.PIPEPORTAL_NOTIFY_WEBHOOK_URL = ""
    settings.PIPEPORTAL_NOTIFY_SLACK_HOOK_URL = ""
    other, _ = register_piped(system_principal(project.id), project, name="piped-quiet")
    silent_for(piped, 600)
    silent_for(other, 900)
    assert detect(django_capture_on_commit_callbacks) == 2
    assert NotificationEvent.objects.filter(type="PIPED_OFFLINE").count() == 2
    assert not NotificationAttempt.objects.exists()


def test_old_notification_records_are_pruned(piped, settings):
    settings.PIPEPORTAL_NOTIFY_RETENTION_DAYS = 30
    now = timezone.now()
    old = NotificationEvent.objects.create(
        project_id=piped.project_id, piped=piped, type="PIPED_STARTED", occurred_at=now - timedelta(days=31)
    )
    recent = NotificationEvent.objects.create(
        project_id=piped.project_id, piped=piped, type="PIPED_STARTED", occurred_at=now - timedelta(days=29)
    )
    NotificationAttempt.objects.create(
        event=old,
        piped=piped,
        receiver="ci",
        kind="webhook",
        attempt=1,
        outcome="DELIVERED",
        attempted_at=now,
    )
    assert tasks.prune() == 1
    assert list(NotificationEvent.objects.values_list("id", flat=True)) == [recent.id]
    assert not NotificationAttempt.objects.exists()
