"""Celery tasks of the notifications app (control plane, queue `cp`)."""

from celery import shared_task

from . import services


@shared_task(name="cp.notifications.detect_offline_pipeds", ignore_result=True)
def detect_offline_pipeds() -> int:
    """Beat: raise PIPED_OFFLINE for pipeds whose heartbeat stopped (once per outage)."""
    return len(services.detect_offline_pipeds())


@shared_task(name="cp.notifications.deliver_control_plane_event", ignore_result=True)
def deliver_control_plane_event(event_id: str) -> int:
    return services.deliver_control_plane_event(event_id)


@shared_task(name="cp.notifications.prune", ignore_result=True)
def prune() -> int:
    return services.prune_notifications()
