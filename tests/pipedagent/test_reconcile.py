"""What a deployment needs next: stages in order, failure → rollback, cancel with and without rollback, timeout."""

from datetime import UTC, datetime, timedelta

from apps.pipedagent.reconcile import LEFT_AS_THEY_ARE, Action, next_actions

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def stage(stage_id, name, index, status="NOT_STARTED_YET", *, rollback=False, reason=""):
    return {
        "id": stage_id,
        "name": name,
        "index": index,
        "status": status,
        "rollback": rollback,
        "status_reason": reason,
    }


def deployment(status="RUNNING", stages=None, metadata=None):
    return {
        "id": "d1",
        "status": status,
        "metadata": metadata or {},
        "stages": stages
        if stages is not None
        else [
            stage("stage-0", "WAIT", 0),
            stage("stage-1", "ECS_SYNC", 1),
            stage("rollback", "ROLLBACK", 2, rollback=True),
        ],
    }


def test_pending_is_planned():
    assert next_actions(deployment("PENDING", []), NOW) == [Action("plan")]


def test_stages_run_in_order():
    d = deployment("PLANNED")
    assert next_actions(d, NOW) == [Action("run", "stage-0")]
    d["stages"][0]["status"] = "RUNNING"
    assert next_actions(d, NOW) == [Action("run", "stage-0")]
    d["stages"][0]["status"] = "SKIPPED"
    assert next_actions(d, NOW) == [Action("run", "stage-1")]


def test_all_forward_stages_done_is_success():
    d = deployment()
    d["stages"][0]["status"] = "SUCCESS"
    d["stages"][1]["status"] = "SUCCESS"
    [action] = next_actions(d, NOW)
    assert (action.kind, action.status) == ("status", "SUCCESS")


def test_a_failed_stage_rolls_back_and_keeps_the_reason():
    d = deployment()
    d["stages"][0]["status"] = "SUCCESS"
    d["stages"][1]["status"] = "FAILURE"
    d["stages"][1]["status_reason"] = "CreateTaskSet: InvalidParameterException"
    [action] = next_actions(d, NOW)
    assert action.status == "ROLLING_BACK"
    assert action.metadata == {
        "rollback_for": "FAILURE",
        "rollback_reason": "Stage ECS_SYNC (stage-1) failed: CreateTaskSet: InvalidParameterException",
    }


def test_rolling_back_runs_the_rollback_stage_then_ends_with_the_original_status():
    d = deployment("ROLLING_BACK", metadata={"rollback_for": "FAILURE", "rollback_reason": "Stage X failed"})
    assert next_actions(d, NOW) == [Action("run", "rollback")]
    d["stages"][2]["status"] = "SUCCESS"
    [action] = next_actions(d, NOW)
    assert (action.status, action.reason) == ("FAILURE", "Stage X failed; rolled back")
    d["stages"][2]["status"] = "FAILURE"
    d["stages"][2]["status_reason"] = "no previous deployment"
    [action] = next_actions(d, NOW)
    assert action.reason == "Stage X failed; the rollback failed: no previous deployment"


def test_cancel_with_rollback_cancels_the_running_stage_and_rolls_back():
    d = deployment(metadata={"cancel": {"commander": "erin"}})
    d["stages"][0]["status"] = "RUNNING"
    actions = next_actions(d, NOW)
    assert actions[0] == Action("stage_status", "stage-0", "CANCELLED", "Cancelled by erin")
    assert actions[1].status == "ROLLING_BACK"
    assert actions[1].metadata["rollback_for"] == "CANCELLED"


def test_cancel_without_rollback_says_resources_were_left_as_they_are():
    d = deployment(metadata={"cancel": {"commander": "erin", "force_no_rollback": True}})
    d["stages"][0]["status"] = "RUNNING"
    actions = next_actions(d, NOW)
    assert actions[-1].status == "CANCELLED"
    assert actions[-1].reason == f"Cancelled by erin; {LEFT_AS_THEY_ARE}"


def test_cancel_before_any_stage_ran_changes_nothing():
    d = deployment("PLANNED", metadata={"cancel": {"commander": "erin"}})
    [action] = next_actions(d, NOW)
    assert action.status == "CANCELLED"
    assert "before any stage ran" in action.reason


def test_the_deployment_timeout_fails_the_running_stage_and_rolls_back():
    d = deployment(metadata={"deadline": (NOW - timedelta(seconds=1)).isoformat(), "timeout": "6h"})
    d["stages"][0]["status"] = "RUNNING"
    actions = next_actions(d, NOW)
    assert actions[0] == Action("stage_status", "stage-0", "FAILURE", "The deployment timed out")
    assert actions[1].status == "ROLLING_BACK"
    assert actions[1].metadata["rollback_reason"] == "The deployment timed out after 6h"


def test_without_a_rollback_stage_a_failure_ends_the_deployment():
    d = deployment(stages=[stage("stage-0", "ECS_SYNC", 0, "FAILURE", reason="boom")])
    [action] = next_actions(d, NOW)
    assert action.status == "FAILURE"
    assert action.reason == "Stage ECS_SYNC (stage-0) failed: boom; no rollback (autoRollback is off)"


def test_completed_deployments_need_nothing():
    assert next_actions(deployment("SUCCESS"), NOW) == []


def test_a_pending_deployment_cancelled_is_never_planned():
    d = deployment("PENDING", [], metadata={"cancel": {"commander": "erin"}})
    [action] = next_actions(d, NOW)
    assert (action.status, action.reason) == ("CANCELLED", "Cancelled by erin before it was planned")
