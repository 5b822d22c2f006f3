"""Writers of a deployment's stages lock the deployment's row first, then the stage's, as the piped API's step
calls do: an approval given while a step starts waits its turn instead of deadlocking (MariaDB row locks)."""

import threading
import time

import pytest
from django.db import OperationalError, connection, transaction

from apps.deployments.choices import CommandType
from apps.deployments.models import Command, Deployment, Stage
from apps.deployments.services import approve_stage
from tests.components import require
from tests.webui.factories import make_deployment


@pytest.mark.django_db(transaction=True)
def test_an_approval_waits_for_the_deployment_before_it_locks_the_stage(application, editor):
    require(connection.vendor == "mysql", "MariaDB (row locks)")
    deployment = make_deployment(application, running_index=2)
    stage = Stage.objects.get(deployment=deployment, stage_id="approve")
    locked, release, approved = threading.Event(), threading.Event(), []

    def step_holding_the_deployment() -> None:
        # What the piped API's start/report do first: lock the deployment's row.
        try:
            with transaction.atomic():
                Deployment.objects.select_for_update().get(pk=deployment.pk)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    def approval() -> None:
        try:
            approved.append(approve_stage(editor, deployment, "approve"))
        finally:
            connection.close()

    holder = threading.Thread(target=step_holding_the_deployment)
    approver = threading.Thread(target=approval)
    holder.start()
    try:
        assert locked.wait(10)
        approver.start()
        time.sleep(0.5)  # room for the approval to run up to the first lock it must wait for
        # The step's next lock, its stages: free, because the approval waits on the deployment's row.
        try:
            with transaction.atomic():
                Stage.objects.select_for_update(nowait=True).get(pk=stage.pk)
        except OperationalError as exc:
            pytest.fail(f"the approval locked the stage before the deployment: {exc}")
        assert approved == []  # still waiting for the deployment's row
    finally:
        release.set()
        holder.join(30)
        approver.join(30)
    assert [c.type for c in approved] == [CommandType.APPROVE_STAGE]
    assert Command.objects.filter(deployment=deployment, type=CommandType.APPROVE_STAGE).count() == 1
