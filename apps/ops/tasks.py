"""Celery tasks of the operations app (queue `cp`): the periodic retention run."""

import logging

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from .housekeeping import prune

logger = logging.getLogger(__name__)

LOCK_KEY = "ops:prune:running"


@shared_task(name="cp.ops.prune", ignore_result=True)
def prune_task() -> dict | None:
    """Apply the retention rules; a run that finds another one still going leaves the work to it."""
    # The lock outlives a crashed run by at most one interval, so the next beat tick starts afresh.
    if not cache.add(LOCK_KEY, "1", timeout=settings.PIPEPORTAL_RETENTION_INTERVAL_SECONDS):
        logger.info("prune: another run is still going, skipping this one")
        return None
    try:
        return prune().as_dict()
    finally:
        cache.delete(LOCK_KEY)
