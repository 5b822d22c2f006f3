"""Slack: the message of every event type against the fields a person must read (fixtures/slack/*.json),
and its delivery through an incoming webhook and through chat.postMessage."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from apps.notifications import builders, events, slack
from apps.notifications.delivery import DELIVERED, FAILED, RETRYING
from apps.pipelineconfig.piped import SlackReceiver

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "slack"
NOW = datetime(2026, 1, 1, 0, 4, 10, tzinfo=UTC)
COMMIT = "4f1c2d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"
SOURCE = events.Source(
    project_id="demo",
    piped_id="5d1c0e6a-2f4b-4c1e-9a0d-3b2a1c0d9e8f",
    piped_name="dev-piped",
    piped_version="0.1.0",
    portal="https://pipecd.example.com",
    remotes={"manifests": "git@github.com:hoge/manifests.git"},
)
APP = {
    "id": "7e0a4b1c-9d2e-4f3a-8b5c-6d7e8f9a0b1c",
    "name": "test-app",
    "kind": "ECS",
    "repo_id": "manifests",
    "labels": {"app": "test-app", "env": "dev"},
}


def sample_deployment(status: str = "RUNNING", **trigger) -> dict:
    """A deployment as the piped API answers it: a canary pipeline waiting for its second approval."""
    return {
        "id": "c2a4e0f1-3b5d-4c6e-8f0a-1b2c3d4e5f60",
        "application_id": APP["id"],
        "application_name": "test-app",
        "kind": "ECS",
        "labels": dict(APP["labels"]),
        "git_path": {"repo_id": "manifests", "path": "apps/test-app", "config_filename": "app.pipecd.yaml"},
        "trigger": {
            "kind": "ON_COMMIT",
            "commit": {
                "hash": COMMIT,
                "message": "Update image to v2\n\nRefs #12",
                "author": "dev",
                "branch": "main",
                "url": "",
            },
            "commander": "",
            "sync_strategy": "PIPELINE",
            **trigger,
        },
        "summary": "Sync progressively because of updating image app from v1 to v2",
        "status": status,
        "status_reason": "",
        "metadata": {"cancel": {"commander": "erin"}} if status == "CANCELLED" else {},
        "created_at": "2026-01-01T00:00:00Z",
        "completed_at": None,
        "stages": [
            {"id": "stage-0", "name": "ECS_CANARY_ROLLOUT", "index": 0, "status": "SUCCESS"},
            {
                "id": "approve",
                "name": "WAIT_APPROVAL",
                "index": 1,
                "status": "RUNNING",
                "authorized_approvers": ["erin", "alice"],
                "min_approver_num": 2,
                "metadata": {"approved_by": ["erin"]},
            },
            {"id": "stage-2", "name": "ECS_PRIMARY_ROLLOUT", "index": 2, "status": "NOT_STARTED_YET"},
            {"id": "rollback", "name": "ROLLBACK", "index": 3, "status": "NOT_STARTED_YET", "rollback": True},
        ],
    }


def stage(deployment: dict, stage_id: str) -> dict:
    return next(s for s in deployment["stages"] if s["id"] == stage_id)


def sample_events() -> dict[str, events.Event]:
    """One event of every type the piped (or the control plane) sends, built as the hooks build them."""
    d = sample_deployment
    approve = stage(d(), "approve")
    approved = {**approve, "metadata": {"approved_by": ["erin", "alice"]}}
    deadline = NOW + timedelta(hours=2)
    return {
        "DEPLOYMENT_TRIGGERED": builders.triggered_event(SOURCE, d("PENDING"), now=NOW),
        "DEPLOYMENT_PLANNED": builders.planned_event(SOURCE, d("PLANNED"), now=NOW),
        "DEPLOYMENT_STARTED": builders.status_event(SOURCE, d("PLANNED"), "RUNNING", "", now=NOW),
        "DEPLOYMENT_WAIT_APPROVAL": builders.waiting_event(SOURCE, d(), approve, deadline=deadline, now=NOW),
        "DEPLOYMENT_WAIT_APPROVAL-reminder": builders.waiting_event(
            SOURCE, d(), approve, deadline=deadline, reminder=True, now=NOW
        ),
        "DEPLOYMENT_APPROVED": builders.approved_event(
            SOURCE, d(), approved, "Approved by erin, alice", now=NOW
        ),
        "DEPLOYMENT_ROLLING_BACK": builders.status_event(
            SOURCE,
            d(),
            "ROLLING_BACK",
            "Stage ECS_PRIMARY_ROLLOUT (stage-2) failed: the task set did not become steady; rolling back",
            now=NOW,
        ),
        "DEPLOYMENT_SUCCEEDED": builders.status_event(
            SOURCE, d(), "SUCCESS", "The deployment completed successfully", now=NOW
        ),
        "DEPLOYMENT_FAILED": builders.status_event(
            SOURCE,
            d(),
            "FAILURE",
            "Stage ECS_PRIMARY_ROLLOUT (stage-2) failed: the task set did not become steady; rolled back",
            now=NOW,
        ),
        "DEPLOYMENT_CANCELLED": builders.status_event(
            SOURCE, d("CANCELLED"), "CANCELLED", "Cancelled by erin; rolled back", now=NOW
        ),
        "DEPLOYMENT_TRIGGER_FAILED": builders.trigger_failed_event(
            SOURCE,
            APP,
            COMMIT,
            "apps/test-app/app.pipecd.yaml:7:5: spec.inptu: unknown key (did you mean 'input'?)",
            now=NOW,
        ),
        "APPLICATION_SYNCED": builders.sync_state_event(
            SOURCE, APP, "SYNCED", "The live state matches Git at 4f1c2d9", "", now=NOW
        ),
        "APPLICATION_OUT_OF_SYNC": builders.sync_state_event(
            SOURCE,
            APP,
            "OUT_OF_SYNC",
            "desiredCount differs: 2 in Git, 3 live",
            "--- live\n+++ git\n-  desiredCount: 3\n+  desiredCount: 2",
            now=NOW,
        ),
        "STAGE_STARTED": builders.stage_event(SOURCE, d(), stage(d(), "stage-2"), "RUNNING", now=NOW),
        "STAGE_SUCCEEDED": builders.stage_event(
            SOURCE, d(), stage(d(), "stage-0"), "SUCCESS", "Canary task set is steady", now=NOW
        ),
        "STAGE_FAILED": builders.stage_event(
            SOURCE, d(), stage(d(), "stage-2"), "FAILURE", "the task set did not become steady", now=NOW
        ),
        "STAGE_CANCELLED": builders.stage_event(
            SOURCE, d(), approve, "CANCELLED", "Cancelled by erin", now=NOW
        ),
        "STAGE_SKIPPED": builders.stage_event(
            SOURCE, d(), stage(d(), "rollback"), "SKIPPED", "Nothing to roll back", now=NOW
        ),
        "PIPED_STARTED": builders.piped_event(SOURCE, "PIPED_STARTED", now=NOW),
        "PIPED_STOPPED": builders.piped_event(SOURCE, "PIPED_STOPPED", now=NOW),
        "PIPED_OFFLINE": builders.piped_event(
            SOURCE,
            "PIPED_OFFLINE",
            reason="No heartbeat since 2026-01-01T00:01:00Z (more than 120s)",
            now=NOW,
        ),
    }


MENTIONS = {
    "DEPLOYMENT_WAIT_APPROVAL": (["U0APPROVER"], ["S0RELEASE"]),
    "DEPLOYMENT_WAIT_APPROVAL-reminder": (["U0APPROVER"], ["S0RELEASE"]),
    "DEPLOYMENT_FAILED": (["@U0ONCALL"], ["<!subteam^S0SRE>"]),
}


def readable(payload: dict) -> dict:
    """What a person reads in the message, taken apart by the structure Slack renders."""
    [title_block] = payload["blocks"]
    [attachment] = payload["attachments"]
    out = {
        "text": payload["text"],
        "title": title_block["text"]["text"],
        "color": attachment["color"],
        "fields": {},
        "reason": None,
        "context": None,
        "buttons": [],
    }
    for block in attachment["blocks"]:
        if block["type"] == "section" and "fields" in block:
            for field in block["fields"]:
                label, _, value = field["text"].partition("\n")
                out["fields"][label.strip("*")] = value
        elif block["type"] == "section":
            out["reason"] = block["text"]["text"]
        elif block["type"] == "context":
            out["context"] = block["elements"][0]["text"]
        elif block["type"] == "actions":
            out["buttons"] = [
                {"text": b["text"]["text"], "url": b["url"], "style": b.get("style")}
                for b in block["elements"]
            ]
    return out


EVENTS = sample_events()


def test_every_event_type_the_piped_sends_has_a_fixture():
    sent = {
        name
        for name in events.NOTIFICATION_EVENT_GROUPS
        if name not in ("APPLICATION_HEALTHY", "APPLICATION_UNHEALTHY")
    }
    assert {name.split("-")[0] for name in EVENTS} == sent
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(EVENTS)


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_the_slack_message_shows_what_a_person_needs(name):
    users, groups = MENTIONS.get(name, ([], []))
    message = slack.payload(EVENTS[name], users=users, groups=groups)
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert readable(message) == expected
    assert len(json.dumps(message)) < 40_000  # Slack refuses larger messages


# --- Delivery -------------------------------------------------------------------------------------------


def test_an_incoming_webhook_gets_the_message_with_the_receivers_mentions(receivers):
    hook = receivers()
    receiver = SlackReceiver(hook_url=f"{hook.url}/services/T0/B0/X", mentioned_accounts=["U0LEAD"])
    event = EVENTS["DEPLOYMENT_FAILED"]

    result = slack.send(receiver, event, timeout=2, api_url="", users=["U0ONCALL"], groups=["S0SRE"])

    assert result.outcome == DELIVERED
    [request] = hook.requests
    assert request.path == "/services/T0/B0/X"
    assert request.json() == slack.payload(event, users=["U0ONCALL", "U0LEAD"], groups=["S0SRE"])
    assert request.json()["text"].endswith("<@U0ONCALL> <@U0LEAD> <!subteam^S0SRE>")


def test_chat_post_message_carries_the_channel_and_the_token(receivers):
    api = receivers([(200, {"ok": True, "channel": "C0DEPLOYS", "ts": "1.2"})])
    receiver = SlackReceiver(channel_id="C0DEPLOYS", oauth_token="xoxb-made-up-for-this-test")
    result = slack.send(receiver, EVENTS["DEPLOYMENT_SUCCEEDED"], timeout=2, api_url=api.url)
    assert result.outcome == DELIVERED
    [request] = api.requests
    assert request.path == "/chat.postMessage"
    assert request.headers["Authorization"] == "Bearer xoxb-made-up-for-this-test"
    assert request.json()["channel"] == "C0DEPLOYS"
    assert request.json()["text"] == "Deployment of test-app succeeded in 4m10s"


def test_the_slack_apis_own_errors_are_final_except_rate_limits(receivers):
    api = receivers(
        [
            (200, {"ok": False, "error": "channel_not_found"}),
            (200, {"ok": False, "error": "ratelimited"}),
            (200, b"<html>not json</html>"),
        ]
    )
    receiver = SlackReceiver(channel_id="C0GONE", oauth_token="xoxb-made-up-for-this-test")
    event = EVENTS["DEPLOYMENT_SUCCEEDED"]
    gone = slack.send(receiver, event, timeout=2, api_url=api.url)
    limited = slack.send(receiver, event, timeout=2, api_url=api.url)
    garbled = slack.send(receiver, event, timeout=2, api_url=api.url)
    assert (gone.outcome, gone.error) == (FAILED, "Slack API: channel_not_found")
    assert (limited.outcome, limited.error) == (RETRYING, "Slack API: ratelimited")
    assert garbled.outcome == FAILED
