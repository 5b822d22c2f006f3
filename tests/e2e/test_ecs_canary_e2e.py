"""End to end, with the piped as a separate process: the seed's canary pipeline approved through the portal,
the live state it reports, and drift detection (a short interval) noticing a change made outside Git and
its restoration."""

import pytest
from django.urls import reverse

from apps.applications.models import Application, ApplicationLiveState
from apps.deployments.models import Deployment, Stage
from apps.pipedagent.demo_support import render_app
from apps.pipedagent.platforms.ecs.emulator import ecs_client
from tests.ecs.conftest import V1, task_sets, weights

from .conftest import add_app, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("piped-e2e")]

DRIFT_SECONDS = 1.0


def finished(commit: str):
    deployment = Deployment.objects.filter(commit_hash=commit).order_by("-created_at").first()
    return deployment if deployment and deployment.status in ("SUCCESS", "FAILURE", "CANCELLED") else None


def test_the_seed_canary_in_a_piped_process_with_the_approval_from_the_portal(
    project, piped, manifests, ecs_values, aws, start_piped, clients
):
    manifests.write(render_app(ecs_values, image_tag="v1"), under="apps/hello")
    first_commit = manifests.commit_and_push("Add hogehoge")
    app = add_app(project, piped)
    process = start_piped(
        PIPED_SYNC_INTERVAL_SECONDS="1",
        PIPED_LIVESTATE_SECONDS="1",
        PIPED_DRIFT_SECONDS=str(DRIFT_SECONDS),
    )
    first = wait_for(lambda: finished(first_commit), 60, message="the first deployment did not finish")
    assert first.status == "SUCCESS", first.status_reason
    assert task_sets(aws, ecs_values, "hogehoge") == [V1]

    manifests.write(render_app(ecs_values, image_tag="v2"), under="apps/hello")
    head = manifests.commit_and_push("hogehoge v2")

    def approval():
        return Stage.objects.filter(
            deployment__commit_hash=head, name="WAIT_APPROVAL", status="RUNNING"
        ).first()

    stage = wait_for(approval, 60, message="the pipeline did not reach its approval")
    deployment = stage.deployment
    assert task_sets(aws, ecs_values, "hogehoge") == [V1, ("ACTIVE", 20.0, "hogehoge:2", "canary-tg")]
    assert weights(aws, ecs_values) == (90, 10)

    def canary_reported():
        state = ApplicationLiveState.objects.filter(application=app).first()
        sets = (state.snapshot.get("task_sets") if state else None) or []
        return [(t["version"], t["traffic_percent"]) for t in sets] == [
            ("hogehoge:v1", 90.0),
            ("hogehoge:v2", 10.0),
        ]

    # The watcher follows a deploying application every few seconds (here every second).
    wait_for(canary_reported, 15, message="the live state of the canary was not reported")

    approve = reverse(
        "webui:stage_approve", kwargs={"deployment_id": deployment.id, "stage_id": stage.stage_id}
    )
    assert clients["viewer"].post(approve).status_code == 403
    assert clients["editor"].post(approve).status_code == 302
    done = wait_for(lambda: finished(head), 60, message="the deployment did not finish after the approval")
    assert done.status == "SUCCESS", done.status_reason
    assert task_sets(aws, ecs_values, "hogehoge") == [("PRIMARY", 100.0, "hogehoge:2", "primary-tg")]
    assert weights(aws, ecs_values) == (100, 0)
    assert Stage.objects.get(pk=stage.pk).status_reason == "Approved by erin"

    # Drift: a change outside Git shows within two detection intervals (plus the time one check takes),
    # and its restoration brings SYNCED back.
    wait_for(lambda: Application.objects.get(pk=app.pk).sync_status == "SYNCED", 15)
    ecs = ecs_client(aws.endpoint)
    ecs.update_service(cluster=ecs_values["CLUSTER_ARN"], service="hogehoge", desiredCount=5)
    wait_for(
        lambda: Application.objects.get(pk=app.pk).sync_status == "OUT_OF_SYNC",
        2 * DRIFT_SECONDS + 3,
        message="the drift was not seen within two detection intervals",
    )
    state = ApplicationLiveState.objects.get(application=app)
    assert "-  desiredCount: 5\n+  desiredCount: 2" in state.drift_diff, state.drift_diff
    ecs.update_service(cluster=ecs_values["CLUSTER_ARN"], service="hogehoge", desiredCount=2)
    wait_for(lambda: Application.objects.get(pk=app.pk).sync_status == "SYNCED", 2 * DRIFT_SECONDS + 3)
    assert process.stop() == 0
    assert "Traceback" not in process.log(), process.log()[-3000:]
