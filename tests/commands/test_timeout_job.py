"""The control plane's beat job that turns stale unhandled commands into TIMEOUT."""

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from apps.deployments.choices import CommandStatus, CommandType
from apps.deployments.models import Command
from apps.deployments.tasks import time_out_stale_commands_task
from pipeportal.celery import app as celery_app
from tests.api.conftest import make_deployment
from tests.components import redis_available, require

TASK = "cp.deployments.time_out_stale_commands"


def stale_command(application, hours: float) -> Command:
    deployment = make_deployment(application)
    command = Command.objects.create(
        project_id=application.project_id,
        piped_id=application.piped_id,
        deployment=deployment,
        type=CommandType.APPROVE_STAGE,
        stage_id="approval",
        commander="erin",
    )
    Command.objects.filter(pk=command.pk).update(created_at=timezone.now() - timedelta(hours=hours))
    return command


def test_beat_runs_the_timeout_every_few_minutes_on_the_cp_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["deployments.time-out-stale-commands"]
    assert entry["task"] == TASK
    assert entry["options"]["queue"] == "cp"
    assert 60 <= entry["schedule"] <= 15 * 60
    celery_app.loader.import_default_modules()
    assert TASK in celery_app.tasks


def test_the_task_times_out_stale_commands_and_is_idempotent(application):
    old = stale_command(application, 24.5)
    young = stale_command(application, 1)
    assert time_out_stale_commands_task.apply().get() == 1
    old.refresh_from_db()
    young.refresh_from_db()
    assert (old.status, young.status) == (CommandStatus.TIMEOUT, CommandStatus.NOT_HANDLED_YET)
    handled_at = old.handled_at
    assert time_out_stale_commands_task.apply().get() == 0
    old.refresh_from_db()
    assert old.handled_at == handled_at


@pytest.mark.django_db(transaction=True)
def test_a_worker_on_the_broker_runs_the_task(project, piped, application):
    """Through Redis and a real worker consuming `cp`, as `celery -A pipeportal worker -Q cp` does."""
    require(
        redis_available(settings.REDIS_URL) and settings.CELERY_BROKER_URL.startswith("redis"), "Redis broker"
    )
    from celery.contrib.testing.worker import start_worker

    old = stale_command(application, 48)
    celery_app.loader.import_default_modules()
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=["cp"], shutdown_timeout=10):
        celery_app.send_task(TASK, queue="cp")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            old.refresh_from_db()
            if old.status == CommandStatus.TIMEOUT:
                break
            time.sleep(0.1)
    assert old.status == CommandStatus.TIMEOUT
