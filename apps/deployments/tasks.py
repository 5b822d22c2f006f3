"""Control-plane Celery tasks of the deployments app (queue `cp`): housekeeping on commands."""

import logging

from celery import shared_task

from .services import time_out_stale_commands

logger = logging.getLogger(__name__)


@shared_task(name="cp.deployments.time_out_stale_commands", ignore_result=True)
def time_out_stale_commands_task() -> int:
    """Run by beat every few minutes; idempotent (a second run finds nothing left to time out)."""
    count = time_out_stale_commands()
    if count:
        logger.info("%d unhandled command(s) marked TIMEOUT", count)
    return count
