"""The piped emits its events where they happen: an in-process piped (tests/pipedagent's step-driven Agent)
over HTTP to a live control plane, real Git, and real receivers."""

import time
from datetime import timedelta

import pytest

from apps.core.times import read_time as parse_time
from apps.deployments.models import Deployment, Stage
from apps.deployments.services import approve_stage, cancel_deployment
from apps.notifications.hooks import REMINDER_SENT
from apps.notifications.models import NotificationAttempt
from apps.notifications.notifier import notifier_for
from tests.pipedagent.conftest import FAKE_VALUES, add_app, app_files

from .conftest import webhook_route

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("notifications-live")]

APPROVAL_THEN_SCRIPT = """\
pipeline:
  stages:
    - id: approve
      name: WAIT_APPROVAL
      with:
        approvers: [erin]
        timeout: {timeout}
    - name: SCRIPT_RUN
      with:
        run: echo deployed
planner:
  alwaysUsePipeline: true
  autoRollback: false
"""
SCRIPT_ONLY = """\
pipeline:
  stages:
    - name: SCRIPT_RUN
      with:
        run: {script}
planner:
  alwaysUsePipeline: true
  autoRollback: {rollback}
"""


def only_deployment() -> Deployment:
    [deployment] = Deployment.objects.all()
    return deployment


def push_app(manifests, extra: str, message: str = "Add hello") -> str:
    manifests.write(app_files(FAKE_VALUES, extra=extra), under="apps/hello")
    return manifests.commit_and_push(message)


def finish(agent, deployment_id: str) -> dict:
    return agent.run(deployment_id, lambda d: d["status"] in ("SUCCESS", "FAILURE", "CANCELLED"))


def test_a_pipeline_tells_every_step_in_order(project, piped, make_agent, manifests, receivers, editor):
    hook = receivers()
    head = push_app(manifests, APPROVAL_THEN_SCRIPT.format(timeout="1h"))
    add_app(project, piped)
    agent = make_agent(webhook_route(hook.url))
    agent.poll_git()
    deployment_id = str(only_deployment().id)
    agent.step(deployment_id)  # plan
    agent.step(deployment_id)  # the approval stage starts waiting
    approve_stage(editor, Deployment.objects.get(pk=deployment_id), "approve")
    agent.poll_commands()
    done = finish(agent, deployment_id)
    assert done["status"] == "SUCCESS"
    notifier_for(agent.runtime).flush()

    assert hook.types() == [
        "DEPLOYMENT_TRIGGERED",
        "DEPLOYMENT_PLANNED",
        "DEPLOYMENT_STARTED",
        "STAGE_STARTED",
        "DEPLOYMENT_WAIT_APPROVAL",
        "STAGE_SUCCEEDED",
        "DEPLOYMENT_APPROVED",
        "STAGE_STARTED",
        "STAGE_SUCCEEDED",
        "DEPLOYMENT_SUCCEEDED",
    ]
    bodies = {r.headers["X-PipePortal-Event"]: r.json() for r in hook.requests}
    waiting = bodies["DEPLOYMENT_WAIT_APPROVAL"]
    assert waiting["reminder"] is False
    assert waiting["stage"]["id"] == "approve"
    assert waiting["approval"]["approvers"] == ["erin"]
    assert waiting["portal_url"] == f"https://portal.example.test/deployments/{deployment_id}/"
    assert bodies["DEPLOYMENT_APPROVED"]["approval"]["approved_by"] == ["erin"]
    succeeded = bodies["DEPLOYMENT_SUCCEEDED"]
    assert succeeded["commit"]["hash"] == head
    assert succeeded["application"]["name"] == "hello"
    assert succeeded["labels"] == {"env": "dev"}
    assert [(s["id"], s["status"]) for s in succeeded["deployment"]["stages"]] == [
        ("approve", "SUCCESS"),
        ("stage-1", "SUCCESS"),
    ]
    assert succeeded["deployment"]["duration_seconds"] is not None
    attempts = NotificationAttempt.objects.filter(piped=piped)
    assert attempts.count() == 10
    assert set(attempts.values_list("outcome", flat=True)) == {"DELIVERED"}


def test_a_hanging_receiver_does_not_hold_the_deployment(project, piped, make_agent, manifests, receivers):
    hook = receivers(hang=True)  # answers nothing until the test ends
    push_app(manifests, SCRIPT_ONLY.format(script="echo deployed", rollback="false"))
    add_app(project, piped)
    agent = make_agent(webhook_route(hook.url))
    agent.poll_git()
    deployment_id = str(only_deployment().id)

    done = finish(agent, deployment_id)

    # The deployment completed while every notification still waited for the receiver.
    assert done["status"] == "SUCCESS"
    assert hook.requests, "the receiver was called"
    assert not any(r.answered for r in hook.requests)
    # The sender gives up each try after its own timeout (1 s here) and retries; then the receiver recovers.
    deadline = time.monotonic() + 20
    while not NotificationAttempt.objects.filter(piped=piped, outcome="RETRYING").exists():
        assert time.monotonic() < deadline, "no attempt timed out"
        time.sleep(0.05)
    hook.release.set()
    notifier_for(agent.runtime).flush(timeout=30)
    # The receiver's own timeout ended the first tries; once it answered again, every event got through.
    first = NotificationAttempt.objects.filter(piped=piped).order_by("attempted_at", "id").first()
    assert (first.attempt, first.outcome, first.error) == (1, "RETRYING", "no answer within 1s")
    events = set(NotificationAttempt.objects.filter(piped=piped).values_list("event_id", flat=True))
    delivered = NotificationAttempt.objects.filter(piped=piped, outcome="DELIVERED")
    assert set(delivered.values_list("event_id", flat=True)) == events


def test_a_failure_says_it_rolls_back_then_that_it_failed(project, piped, make_agent, manifests, receivers):
    hook = receivers()
    push_app(manifests, SCRIPT_ONLY.format(script="exit 3", rollback="true"))
    add_app(project, piped)
    agent = make_agent(
        webhook_route(
            hook.url,
            extra="\n      events: [DEPLOYMENT_ROLLING_BACK, DEPLOYMENT_FAILED, STAGE_FAILED]",
        )
    )
    agent.poll_git()
    done = finish(agent, str(only_deployment().id))
    assert done["status"] == "FAILURE"
    notifier_for(agent.runtime).flush()
    types = hook.types()
    assert types[:2] == ["STAGE_FAILED", "DEPLOYMENT_ROLLING_BACK"]
    assert types[-1] == "DEPLOYMENT_FAILED"
    rolling_back = hook.of_type("DEPLOYMENT_ROLLING_BACK")[0].json()
    assert (
        rolling_back["reason"]
        == "Stage SCRIPT_RUN (stage-0) failed: The script exited with status 3; rolling back"
    )
    assert rolling_back["deployment"]["status"] == "ROLLING_BACK"
    failed = hook.of_type("DEPLOYMENT_FAILED")[0].json()
    assert failed["reason"] == done["status_reason"]


def test_a_cancel_names_who_cancelled(project, piped, make_agent, manifests, receivers, editor):
    hook = receivers()
    push_app(manifests, APPROVAL_THEN_SCRIPT.format(timeout="1h"))
    add_app(project, piped)
    agent = make_agent(webhook_route(hook.url, extra="\n      events: [DEPLOYMENT_CANCELLED]"))
    agent.poll_git()
    deployment_id = str(only_deployment().id)
    agent.step(deployment_id)
    agent.step(deployment_id)
    cancel_deployment(editor, Deployment.objects.get(pk=deployment_id), force_no_rollback=True)
    agent.poll_commands()
    notifier_for(agent.runtime).flush()
    [request] = hook.requests
    assert request.json()["summary"].startswith("Deployment of hello was cancelled by erin")


def test_the_approval_reminder_fires_once_at_half_the_timeout(
    project, piped, make_agent, manifests, receivers, editor
):
    hook = receivers()
    push_app(manifests, APPROVAL_THEN_SCRIPT.format(timeout="6s"))
    add_app(project, piped)
    route = webhook_route(hook.url, extra="\n      events: [DEPLOYMENT_WAIT_APPROVAL]")
    # A long tick: the stage must ask to be looked at again when the reminder is due, not at the tick.
    agent = make_agent(route, stage_tick=30)
    agent.poll_git()
    deployment_id = str(only_deployment().id)
    agent.step(deployment_id)
    agent.step(deployment_id)
    stage = Stage.objects.get(deployment_id=deployment_id, stage_id="approve")
    started = parse_time(stage.metadata["approval_started_at"])
    assert abs((stage.next_check_at - (started + timedelta(seconds=3))).total_seconds()) < 0.3

    while Stage.objects.get(pk=stage.pk).metadata.get(REMINDER_SENT) is None:
        assert time.monotonic() < started.timestamp() + 60  # guard: a broken reminder never loops forever
        agent.step(deployment_id)
        time.sleep(0.05)
    agent.step(deployment_id)  # again after the reminder: nothing more
    restarted = make_agent(route, stage_tick=30)  # a restarted piped: fresh memory, same control plane
    restarted.step(deployment_id)
    assert notifier_for(agent.runtime).flush()
    assert notifier_for(restarted.runtime).flush()

    bodies = [r.json() for r in hook.requests]
    assert [b["reminder"] for b in bodies] == [False, True]
    sent_at = parse_time(Stage.objects.get(pk=stage.pk).metadata[REMINDER_SENT])
    assert timedelta(seconds=3) <= sent_at - started < timedelta(seconds=6)
    assert bodies[1]["summary"].startswith("Reminder: deployment of hello is still waiting for approval")
    assert bodies[1]["approval"]["deadline"] == bodies[0]["approval"]["deadline"]


def test_sync_state_changes_are_told_once(project, piped, make_agent, manifests, receivers):
    hook = receivers()
    push_app(manifests, "")
    app = add_app(project, piped)
    agent = make_agent(webhook_route(hook.url, extra="\n      groups: [APPLICATION_SYNC]"))
    client = agent.runtime.client
    diff = "--- live\n+++ git\n-  desiredCount: 3\n+  desiredCount: 2"

    client.report_sync_state(str(app.id), "OUT_OF_SYNC", "desiredCount differs", diff)
    client.report_sync_state(str(app.id), "OUT_OF_SYNC", "desiredCount differs", diff)
    client.report_sync_state(str(app.id), "SYNCED", "The live state matches Git", "")
    client.report_sync_state(str(app.id), "SYNCED", "The live state matches Git", "")
    notifier_for(agent.runtime).flush()

    assert hook.types() == ["APPLICATION_OUT_OF_SYNC", "APPLICATION_SYNCED"]
    out_of_sync = hook.requests[0].json()
    assert out_of_sync["sync_state"] == {"status": "OUT_OF_SYNC", "short_reason": "desiredCount differs"}
    assert out_of_sync["reason"] == diff
    assert out_of_sync["application"]["id"] == str(app.id)


def test_a_broken_app_config_is_a_trigger_failure_told_once(project, piped, make_agent, manifests, receivers):
    hook = receivers()
    files = app_files(FAKE_VALUES)
    files["app.pipecd.yaml"] = files["app.pipecd.yaml"].replace("  input:", "  inptu:")
    manifests.write(files, under="apps/hello")
    head = manifests.commit_and_push("Typo")
    add_app(project, piped)
    agent = make_agent(webhook_route(hook.url))
    agent.poll_git()
    agent.poll_git()
    notifier_for(agent.runtime).flush()
    [request] = hook.requests
    body = request.json()
    assert body["type"] == "DEPLOYMENT_TRIGGER_FAILED"
    assert body["commit"]["hash"] == head
    assert "inptu" in body["reason"]
    assert not Deployment.objects.exists()


def test_slack_mentions_come_from_the_app_config_at_the_deployments_commit(
    project, piped, make_agent, manifests, receivers
):
    slack_hook = receivers()
    mentions = """\
notification:
  mentions:
    - event: DEPLOYMENT_SUCCEEDED
      slackusers: [U0RELEASE]
    - event: "*"
      slack: [U0EVERYTHING]
"""
    push_app(manifests, SCRIPT_ONLY.format(script="echo deployed", rollback="false") + mentions)
    add_app(project, piped)
    agent = make_agent(
        f"""\
notifications:
  routes:
    - name: releases
      events: [DEPLOYMENT_TRIGGERED, DEPLOYMENT_SUCCEEDED]
      receiver: team
  receivers:
    - name: team
      slack:
        hookURL: {slack_hook.url}
        mentionedGroups: [S0TEAM]
"""
    )
    agent.poll_git()
    finish(agent, str(only_deployment().id))
    notifier_for(agent.runtime).flush()
    texts = {r.json()["text"].split(" <")[0]: r.json()["text"] for r in slack_hook.requests}
    assert len(texts) == 2
    triggered = next(t for k, t in texts.items() if "triggered" in k)
    succeeded = next(t for k, t in texts.items() if "succeeded" in k)
    assert triggered.endswith("<@U0EVERYTHING> <!subteam^S0TEAM>")
    assert succeeded.endswith("<@U0RELEASE> <@U0EVERYTHING> <!subteam^S0TEAM>")
