"""The piped's scheduler and workers against the real piped API (in this process), real Git and moto.

These drive the agent step by step; tests/e2e runs the same code as a separate process with Celery.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.applications.choices import SyncStatus
from apps.applications.models import Application
from apps.applications.services import sync_application
from apps.deployments.choices import CommandStatus, CommandType
from apps.deployments.models import Command, Deployment, Stage, StageLogBlock
from apps.deployments.services import approve_stage, cancel_deployment, skip_stage
from apps.pipedagent.platforms.ecs.emulator import ecs_client
from apps.pipeds.models import Piped

from .conftest import FAKE_VALUES, add_app, app_files

pytestmark = pytest.mark.django_db

APPROVAL_PIPELINE = """\
pipeline:
  stages:
    - name: WAIT
      with:
        duration: 1h
    - id: approve
      name: WAIT_APPROVAL
      with:
        approvers: [erin, alice]
        minApproverNum: 2
        timeout: 1h
    - name: SCRIPT_RUN
      with:
        run: echo "deploying $SR_APPLICATION_NAME at $SR_TRIGGERED_COMMIT_HASH rollback=$SR_IS_ROLLBACK env=$SR_LABELS_ENV $GREETING"
        env:
          GREETING: hello
planner:
  alwaysUsePipeline: true
  autoRollback: false
"""


def logs(deployment_id, stage_id) -> list[str]:
    return list(
        StageLogBlock.objects.filter(stage__deployment_id=deployment_id, stage__stage_id=stage_id)
        .order_by("retried_count", "index")
        .values_list("log", flat=True)
    )


def stage_row(deployment_id, stage_id) -> Stage:
    return Stage.objects.get(deployment_id=deployment_id, stage_id=stage_id)


def age_metadata(deployment_id, stage_id, key: str, seconds: float) -> None:
    """Pretend the stage started waiting `seconds` ago (what a restart after that long would see)."""
    stage = stage_row(deployment_id, stage_id)
    stage.metadata[key] = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()
    stage.save(update_fields=["metadata"])


def only_deployment() -> Deployment:
    [deployment] = Deployment.objects.all()
    return deployment


# --- First deployment, ECS quick sync -------------------------------------------------------------------


def test_a_new_application_is_deployed_once_by_quick_sync(
    project, piped, make_agent, manifests, aws, ecs_values
):
    manifests.write(app_files(ecs_values), under="apps/hello")
    head = manifests.commit_and_push("Add hello")
    app = add_app(project, piped)
    agent = make_agent()
    agent.poll_git()
    deployment = only_deployment()
    assert deployment.commit_hash == head
    assert deployment.trigger_kind == "ON_COMMIT"
    assert deployment.commit_message == "Add hello"
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    assert done["summary"].endswith("(pipeline was not configured)")
    assert [s["name"] for s in done["stages"]] == ["ECS_SYNC", "ROLLBACK"]
    ecs = ecs_client(aws.endpoint)
    service = ecs.describe_services(cluster=ecs_values["CLUSTER_ARN"], services=["hogehoge"])["services"][0]
    assert service["deploymentController"] == {"type": "EXTERNAL"}
    [task_set] = [t for t in service["taskSets"] if t["status"] in ("PRIMARY", "ACTIVE")]
    assert task_set["status"] == "PRIMARY"
    assert task_set["taskDefinition"].endswith("task-definition/hogehoge:1")
    tags = {
        t["key"]: t["value"]
        for t in ecs.describe_task_sets(
            cluster=ecs_values["CLUSTER_ARN"], service="hogehoge", include=["TAGS"]
        )["taskSets"][0]["tags"]
    }
    assert tags == {
        "pipecd-dev-managed-by": "piped",
        "pipecd-dev-piped": str(piped.id),
        "pipecd-dev-application": str(app.id),
        "pipecd-dev-commit-hash": head,
    }
    lines = logs(deployment.id, "stage-0")
    assert "Registered task definition hogehoge:1." in lines
    assert any(line.startswith("Created task set") for line in lines)
    assert lines[-1] == "Service hogehoge runs hogehoge:1 in one primary task set."
    app.refresh_from_db()
    assert app.sync_status == SyncStatus.SYNCED and app.name == "hello"
    # Nothing new in Git: no second deployment.
    agent.poll_git()
    assert Deployment.objects.count() == 1


def test_ecs_sync_rerun_after_a_crash_makes_no_second_revision_or_task_set(
    project, piped, make_agent, manifests, aws, ecs_values
):
    manifests.write(app_files(ecs_values), under="apps/hello")
    manifests.commit_and_push("Add hello")
    add_app(project, piped)
    agent = make_agent()
    agent.poll_git()
    deployment_id = str(only_deployment().id)
    agent.run(deployment_id, lambda d: d["status"] == "SUCCESS")
    # A piped killed after CreateTaskSet but before it recorded anything re-runs the stage from scratch.
    stage = stage_row(deployment_id, "stage-0")
    Stage.objects.filter(pk=stage.pk).update(status="RUNNING", metadata={}, completed_at=None)
    Deployment.objects.filter(pk=deployment_id).update(status="RUNNING")
    restarted = make_agent()
    restarted.run(deployment_id, lambda d: d["status"] == "SUCCESS")
    ecs = ecs_client(aws.endpoint)
    revisions = ecs.list_task_definitions(familyPrefix="hogehoge")["taskDefinitionArns"]
    assert len(revisions) == 1
    live = [
        t for t in ecs.describe_task_sets(cluster=ecs_values["CLUSTER_ARN"], service="hogehoge")["taskSets"]
    ]
    assert [t["status"] for t in live] == ["PRIMARY"]
    assert "Using task definition hogehoge:1, registered for commit" in " ".join(
        logs(deployment_id, "stage-0")
    )


def test_a_new_image_replaces_the_primary_task_set(project, piped, make_agent, manifests, aws, ecs_values):
    manifests.write(app_files(ecs_values), under="apps/hello")
    manifests.commit_and_push("Add hello")
    add_app(project, piped)
    agent = make_agent()
    agent.poll_git()
    agent.run(str(only_deployment().id), lambda d: d["status"] == "SUCCESS")
    manifests.write(app_files(ecs_values, image_tag="v2"), under="apps/hello")
    manifests.commit_and_push("Bump to v2")
    agent.poll_git()
    second = Deployment.objects.order_by("-created_at").first()
    done = agent.run(str(second.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    # No pipeline in this app config: quick sync.
    assert done["summary"].startswith("Quick sync to deploy image hogehoge:v2")
    assert done["running_commit_hash"] == Deployment.objects.order_by("created_at").first().commit_hash
    ecs = ecs_client(aws.endpoint)
    live = ecs.describe_task_sets(cluster=ecs_values["CLUSTER_ARN"], service="hogehoge")["taskSets"]
    assert [(t["status"], t["taskDefinition"].rsplit("/", 1)[-1]) for t in live] == [
        ("PRIMARY", "hogehoge:2")
    ]
    assert any(line.startswith("Deleted the previous task set") for line in logs(second.id, "stage-0"))


# --- Approvals, waits, skips, cancels (generic stages, no AWS needed) -------------------------------------


@pytest.fixture
def approval_deployment(project, piped, make_agent, manifests):
    return start_pipeline(project, piped, make_agent, manifests, APPROVAL_PIPELINE)


def start_pipeline(project, piped, make_agent, manifests, pipeline: str):
    """The app with `pipeline`, its first deployment planned and its first stage (a WAIT) started."""
    manifests.write(app_files(FAKE_VALUES, extra=pipeline), under="apps/hello")
    manifests.commit_and_push("Add hello")
    add_app(project, piped)
    agent = make_agent()
    agent.poll_git()
    deployment_id = str(only_deployment().id)
    agent.step(deployment_id)  # plan
    agent.step(deployment_id)  # WAIT starts
    return agent, deployment_id


def test_wait_keeps_its_start_time_across_a_restart(approval_deployment, make_agent):
    _, deployment_id = approval_deployment
    wait = stage_row(deployment_id, "stage-0")
    assert wait.status == "RUNNING"
    assert "wait_started_at" in wait.metadata
    assert wait.next_check_at is not None and wait.claimed_by == ""
    # An hour-long wait, 20 minutes in, survives a restart with 40 minutes left...
    age_metadata(deployment_id, "stage-0", "wait_started_at", 20 * 60)
    restarted = make_agent()
    restarted.step(deployment_id)
    assert stage_row(deployment_id, "stage-0").status == "RUNNING"
    # ...and ends once the hour is over.
    age_metadata(deployment_id, "stage-0", "wait_started_at", 3600 + 1)
    restarted.step(deployment_id)
    assert stage_row(deployment_id, "stage-0").status == "SUCCESS"
    assert logs(deployment_id, "stage-0")[-1] == "Waited for 1h00m00s."


def test_skip_ends_a_wait_at_once(approval_deployment, editor):
    agent, deployment_id = approval_deployment
    skip_stage(editor, Deployment.objects.get(pk=deployment_id), "stage-0")
    agent.poll_commands()
    assert ("run", deployment_id, "stage-0") in agent.dispatched
    agent.step(deployment_id)
    assert stage_row(deployment_id, "stage-0").status == "SKIPPED"
    assert stage_row(deployment_id, "stage-0").status_reason == "Skipped by erin"
    assert Command.objects.get(type=CommandType.SKIP_STAGE).status == CommandStatus.SUCCEEDED


def _reach_approval(agent, deployment_id):
    age_metadata(deployment_id, "stage-0", "wait_started_at", 3601)
    agent.step(deployment_id)
    agent.step(deployment_id)
    approval = stage_row(deployment_id, "approve")
    assert approval.status == "RUNNING"
    return approval


def test_approval_needs_two_distinct_listed_people(project, approval_deployment, editor, admin):
    agent, deployment_id = approval_deployment
    approval = _reach_approval(agent, deployment_id)
    assert approval.authorized_approvers == ["erin", "alice"] and approval.min_approver_num == 2
    deployment = Deployment.objects.get(pk=deployment_id)
    approve_stage(editor, deployment, "approve")
    # Two commands the portal would refuse, as if they slipped through: the piped refuses them too.
    stranger = Command.objects.create(
        project=project,
        piped_id=deployment.piped_id,
        deployment=deployment,
        stage_id="approve",
        type=CommandType.APPROVE_STAGE,
        commander="mallory",
    )
    twice = Command.objects.create(
        project=project,
        piped_id=deployment.piped_id,
        deployment=deployment,
        stage_id="approve",
        type=CommandType.APPROVE_STAGE,
        commander="erin",
    )
    agent.poll_commands()
    stranger.refresh_from_db()
    twice.refresh_from_db()
    assert stranger.status == CommandStatus.FAILED
    assert "mallory is not an approver of this stage" in stranger.result["error"]
    assert twice.status == CommandStatus.FAILED
    assert "already approved" in twice.result["error"]
    assert stage_row(deployment_id, "approve").metadata["approved_by"] == ["erin"]
    agent.step(deployment_id)
    assert stage_row(deployment_id, "approve").status == "RUNNING"
    approve_stage(admin, deployment, "approve")
    agent.poll_commands()
    agent.step(deployment_id)
    approval = stage_row(deployment_id, "approve")
    assert approval.status == "SUCCESS"
    assert approval.status_reason == "Approved by erin, alice"
    assert approval.metadata["approved_by"] == ["erin", "alice"]
    assert "Got approval from erin." in logs(deployment_id, "approve")
    # The next stage starts right away, and SCRIPT_RUN sees PipeCD's SR_* variables.
    assert ("run", deployment_id, "stage-2") in agent.dispatched
    done = agent.run(deployment_id, lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    head = Deployment.objects.get(pk=deployment_id).commit_hash
    assert f"deploying hello at {head} rollback=false env=dev hello" in logs(deployment_id, "stage-2")


def test_approval_times_out_when_left_alone(approval_deployment):
    agent, deployment_id = approval_deployment
    _reach_approval(agent, deployment_id)
    age_metadata(deployment_id, "approve", "approval_started_at", 3601)
    agent.step(deployment_id)
    approval = stage_row(deployment_id, "approve")
    assert approval.status == "FAILURE"
    assert approval.status_reason.startswith(
        "Timed out after 1h00m00s waiting for approval (0 of 2 approvals"
    )
    done = agent.run(deployment_id, lambda d: d["status"] == "FAILURE")
    assert done["status_reason"].startswith("Stage WAIT_APPROVAL (approve) failed: Timed out")
    assert stage_row(deployment_id, "stage-2").status == "NOT_STARTED_YET"


def test_cancel_without_rollback_leaves_resources_as_they_are(approval_deployment, editor):
    agent, deployment_id = approval_deployment
    cancel_deployment(editor, Deployment.objects.get(pk=deployment_id), force_no_rollback=True)
    agent.poll_commands()
    deployment = Deployment.objects.get(pk=deployment_id)
    assert deployment.status == "CANCELLED"
    assert (
        deployment.status_reason
        == "Cancelled by erin; no rollback was done, so the resources were left as they are"
    )
    assert stage_row(deployment_id, "stage-0").status == "CANCELLED"
    application = Application.objects.get()
    assert application.deploying is False


def test_cancel_with_rollback_runs_the_rollback_stage(project, piped, make_agent, manifests, editor):
    pipeline = APPROVAL_PIPELINE.replace("autoRollback: false", "autoRollback: true")
    manifests.write(app_files(FAKE_VALUES, extra=pipeline), under="apps/hello")
    manifests.commit_and_push("Add hello")
    add_app(project, piped)
    agent = make_agent()
    agent.poll_git()
    deployment_id = str(only_deployment().id)
    agent.step(deployment_id)
    agent.step(deployment_id)
    cancel_deployment(editor, Deployment.objects.get(pk=deployment_id))
    agent.poll_commands()
    assert Deployment.objects.get(pk=deployment_id).status == "ROLLING_BACK"
    done = agent.run(deployment_id, lambda d: d["status"] in ("CANCELLED", "FAILURE"))
    # A first deployment has nothing to roll back to: the rollback says so, the deployment stays CANCELLED.
    assert done["status"] == "CANCELLED"
    assert done["status_reason"].startswith("Cancelled by erin; the rollback failed: Unable to roll back")


def test_a_second_deployment_waits_for_the_first(project, piped, make_agent, manifests):
    manifests.write(app_files(FAKE_VALUES, extra=APPROVAL_PIPELINE), under="apps/hello")
    manifests.commit_and_push("Add hello")
    add_app(project, piped)
    agent = make_agent()
    agent.poll_git()
    first = str(only_deployment().id)
    agent.step(first)
    manifests.write({"README.md": "touch"}, under="apps/hello")
    manifests.commit_and_push("Touch")
    agent.poll_git()
    second = str(Deployment.objects.exclude(pk=first).get().id)
    agent.dispatched.clear()
    agent.scheduler.dispatch_once()
    assert not any(d[1] == second for d in agent.dispatched)


# --- Git: configs, triggers, commands, repositories ------------------------------------------------------


def test_a_broken_app_config_marks_the_app_invalid_and_triggers_nothing(
    project, piped, make_agent, manifests
):
    files = app_files(FAKE_VALUES)
    files["app.pipecd.yaml"] = files["app.pipecd.yaml"].replace("  input:", "  inptu:")
    manifests.write(files, under="apps/hello")
    manifests.commit_and_push("Typo")
    app = add_app(project, piped)
    agent = make_agent()
    agent.poll_git()
    app.refresh_from_db()
    assert app.sync_status == SyncStatus.INVALID_CONFIG
    assert "apps/hello/app.pipecd.yaml" in app.sync_reason
    assert "inptu" in app.sync_reason
    assert not Deployment.objects.exists()
    manifests.write(app_files(FAKE_VALUES), under="apps/hello")
    manifests.commit_and_push("Fix the typo")
    agent.poll_git()
    app.refresh_from_db()
    assert app.sync_status == SyncStatus.UNKNOWN
    assert Deployment.objects.count() == 1


def test_a_missing_app_config_is_invalid_too(project, piped, make_agent, manifests):
    manifests.write({"README.md": "nothing here"})
    manifests.commit_and_push("Empty")
    app = add_app(project, piped, path="apps/nowhere")
    make_agent().poll_git()
    app.refresh_from_db()
    assert app.sync_status == SyncStatus.INVALID_CONFIG
    assert (
        app.sync_reason == "apps/nowhere/app.pipecd.yaml: the application config file was not found in Git."
    )


def test_name_labels_and_description_follow_git(project, piped, make_agent, manifests):
    manifests.write(app_files(FAKE_VALUES, name="renamed"), under="apps/hello")
    manifests.commit_and_push("Add")
    app = add_app(project, piped)
    make_agent().poll_git()
    app.refresh_from_db()
    assert app.name == "renamed"
    assert app.labels == {"env": "dev"}


def test_on_commit_paths_and_ignores_follow_pipecd(project, piped, make_agent, manifests):
    extra = "trigger:\n  onCommit:\n    paths: [shared/**]\n    ignores: [apps/hello/docs/**]\n"
    manifests.write(app_files(FAKE_VALUES, extra=extra), under="apps/hello")
    manifests.commit_and_push("Add")
    add_app(project, piped)
    agent = make_agent()
    agent.poll_git()
    assert Deployment.objects.count() == 1
    manifests.write({"notes.md": "x"}, under="apps/other")
    manifests.commit_and_push("Other app")
    agent.poll_git()
    assert Deployment.objects.count() == 1
    manifests.write({"env.yaml": "x: 1"}, under="shared")
    manifests.commit_and_push("Shared change")
    agent.poll_git()
    assert Deployment.objects.count() == 2
    manifests.write(
        {"taskdef.yaml": app_files(FAKE_VALUES, image_tag="v2")["taskdef.yaml"]}, under="apps/hello"
    )
    manifests.write({"guide.md": "x"}, under="apps/hello/docs")
    manifests.commit_and_push("Image and docs together")
    agent.poll_git()
    assert Deployment.objects.count() == 2


def test_sync_command_deploys_the_head_with_the_asked_strategy(project, piped, make_agent, manifests, editor):
    manifests.write(
        app_files(FAKE_VALUES, extra="trigger:\n  onCommit:\n    disabled: true\n"), under="apps/hello"
    )
    manifests.commit_and_push("Add")
    app = add_app(project, piped)
    agent = make_agent()
    agent.poll_git()
    assert not Deployment.objects.exists()
    command = sync_application(editor, app, "QUICK_SYNC")
    agent.poll_commands()
    agent.poll_git()
    deployment = only_deployment()
    assert deployment.trigger_kind == "ON_COMMAND"
    assert deployment.commander == "erin"
    assert deployment.sync_strategy == "QUICK_SYNC"
    command.refresh_from_db()
    assert command.status == CommandStatus.SUCCEEDED
    assert command.result == {"deployment_id": str(deployment.id)}


def test_unregistered_app_configs_become_suggestions(project, piped, make_agent, manifests):
    manifests.write(app_files(FAKE_VALUES), under="apps/hello")
    manifests.write(
        {"web.pipecd.yaml": app_files(FAKE_VALUES, name="web")["app.pipecd.yaml"]}, under="apps/web"
    )
    manifests.write({"app.pipecd.yaml": "kind: ECSApp\nspec: [broken"}, under="apps/broken")
    manifests.commit_and_push("Three configs")
    add_app(project, piped)
    make_agent().poll_git()
    piped.refresh_from_db()
    assert [(s["path"], s["config_filename"], s["name"]) for s in piped.unregistered_apps] == [
        ("apps/web", "web.pipecd.yaml", "web")
    ]


def test_an_unreachable_remote_is_reported_and_retried_with_backoff(
    project, piped, make_agent, manifests, editor
):
    app = add_app(project, piped)
    manifests.bare_path.rename(manifests.bare_path.with_name("gone.git"))
    agent = make_agent()
    delays = [agent.poll_git() for _ in range(4)]
    assert delays == [0.5, 1.0, 2.0, 4.0]
    piped.refresh_from_db()
    status = piped.repository_status["manifests"]
    assert status["failures"] == 4
    assert "fetching file://" in status["error"] and "failed" in status["error"]
    # A Sync pressed meanwhile fails with the reason instead of hanging.
    command = sync_application(editor, app)
    agent.poll_commands()
    agent.poll_git()
    command.refresh_from_db()
    assert command.status == CommandStatus.FAILED
    assert "Could not fetch repository manifests" in command.result["error"]
    manifests.bare_path.with_name("gone.git").rename(manifests.bare_path)
    manifests.write(app_files(FAKE_VALUES), under="apps/hello")
    manifests.commit_and_push("Back")
    assert agent.poll_git() == 60.0
    piped.refresh_from_db()
    assert piped.repository_status["manifests"]["error"] == ""
    assert piped.repository_status["manifests"]["head"] == manifests.head()


def test_the_webhook_fetch_request_wakes_the_repository(project, piped, make_agent, manifests):
    agent = make_agent()
    poller = agent.scheduler.pollers["manifests"]
    assert not poller._wake.is_set()
    Piped.objects.filter(pk=piped.pk).update(fetch_requests={"manifests": "2026-01-01T00:00:00+00:00"})
    agent.poll_commands()
    assert poller._wake.is_set()


def test_desired_count_unset_leaves_the_running_count_alone_and_tags_are_synced(
    project, piped, make_agent, manifests, aws, ecs_values
):
    manifests.write(app_files(ecs_values), under="apps/hello")
    manifests.commit_and_push("Add hello")
    app = add_app(project, piped)
    agent = make_agent()
    agent.poll_git()
    agent.run(str(only_deployment().id), lambda d: d["status"] == "SUCCESS")
    ecs = ecs_client(aws.endpoint)
    cluster = ecs_values["CLUSTER_ARN"]
    # Autoscaling moved the service to 5 tasks; someone tagged it by hand.
    service_arn = ecs.update_service(cluster=cluster, service="hogehoge", desiredCount=5)["service"][
        "serviceArn"
    ]
    ecs.tag_resource(resourceArn=service_arn, tags=[{"key": "stray", "value": "x"}])
    files = app_files(ecs_values, image_tag="v2")
    files["servicedef.yaml"] = files["servicedef.yaml"].replace("  desiredCount: 2\n", "")
    manifests.write(files, under="apps/hello")
    manifests.commit_and_push("v2, desiredCount left to autoscaling")
    agent.poll_git()
    second = Deployment.objects.order_by("-created_at").first()
    done = agent.run(str(second.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    service = ecs.describe_services(cluster=cluster, services=["hogehoge"], include=["TAGS"])["services"][0]
    assert service["desiredCount"] == 5
    tags = {t["key"]: t["value"] for t in service["tags"]}
    assert "stray" not in tags
    assert tags["pipecd-dev-application"] == str(app.id)
    assert tags["pipecd-dev-commit-hash"] == second.commit_hash
    lines = logs(second.id, "stage-0")
    assert "desiredCount is 0 or unset: leaving the running count (and autoscaling) as they are." in lines


def test_a_task_definition_without_a_service_runs_as_a_standalone_task(
    project, piped, make_agent, manifests, aws, ecs_values
):
    files = app_files(ecs_values)
    del files["servicedef.yaml"]
    files["app.pipecd.yaml"] = files["app.pipecd.yaml"].replace(
        "    serviceDefinitionFile: servicedef.yaml\n",
        f"    clusterArn: {ecs_values['CLUSTER_ARN']}\n"
        f"    awsvpcConfiguration:\n      subnets: [{ecs_values['SUBNET_A']}]\n"
        f"      securityGroups: [{ecs_values['SECURITY_GROUP']}]\n",
    )
    manifests.write(files, under="apps/hello")
    manifests.commit_and_push("A standalone task")
    add_app(project, piped)
    agent = make_agent()
    agent.poll_git()
    deployment = only_deployment()
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]
    assert stage_row(deployment.id, "stage-0").status_reason == "Started 1 standalone task(s)"
    tasks = ecs_client(aws.endpoint).list_tasks(cluster=ecs_values["CLUSTER_ARN"])["taskArns"]
    assert len(tasks) == 1


def test_a_stability_wait_gives_up_with_the_reason(project, piped, make_agent, manifests, aws, ecs_values):
    # moto here runs 2 tasks per service (MOTO_ECS_SERVICE_RUNNING): asking for 3 leaves one pending for ever.
    files = app_files(ecs_values)
    files["servicedef.yaml"] = files["servicedef.yaml"].replace("desiredCount: 2", "desiredCount: 3")
    manifests.write(files, under="apps/hello")
    manifests.commit_and_push("Three tasks")
    add_app(project, piped)
    agent = make_agent(ecs_stable_timeout=30)
    agent.poll_git()
    deployment_id = str(only_deployment().id)
    agent.step(deployment_id)
    agent.step(deployment_id)
    stage = stage_row(deployment_id, "stage-0")
    assert stage.status == "RUNNING" and stage.next_check_at is not None
    assert parse_datetime(stage.metadata["stable_deadline"]) > timezone.now()
    # The wait runs out (moved back rather than slept through, so a slow machine cannot run out of it early).
    stage.metadata["stable_deadline"] = (timezone.now() - timedelta(seconds=1)).isoformat()
    stage.save(update_fields=["metadata"])
    agent.step(deployment_id)
    stage = stage_row(deployment_id, "stage-0")
    assert stage.status == "FAILURE"
    assert "did not become steady within 30s" in stage.status_reason
    assert "1 pending task(s)" in stage.status_reason


def test_out_of_sync_triggers_a_quick_sync_after_min_window(project, piped, make_agent, manifests):
    extra = (
        "trigger:\n  onCommit:\n    disabled: true\n  onOutOfSync:\n    disabled: false\n    minWindow: 1m\n"
    )
    manifests.write(app_files(FAKE_VALUES, extra=extra), under="apps/hello")
    manifests.commit_and_push("Add")
    app = add_app(project, piped)
    agent = make_agent()
    agent.poll_git()
    assert not Deployment.objects.exists()
    # What drift detection will report:
    agent.client.report_sync_state(str(app.id), "OUT_OF_SYNC", "Drift", "desiredCount differs")
    agent.poll_git()
    first = only_deployment()
    assert (first.trigger_kind, first.sync_strategy) == ("ON_OUT_OF_SYNC", "QUICK_SYNC")
    assert first.strategy_summary == "Quick sync to attempt to resolve the detected configuration drift"
    Deployment.objects.filter(pk=first.pk).update(status="SUCCESS", completed_at=datetime.now(UTC))
    agent.client.report_sync_state(str(app.id), "OUT_OF_SYNC", "Drift again", "")
    agent.poll_git()
    assert Deployment.objects.count() == 1, "not before minWindow"
    Deployment.objects.filter(pk=first.pk).update(completed_at=datetime.now(UTC) - timedelta(minutes=2))
    agent.poll_git()
    assert Deployment.objects.filter(trigger_kind="ON_OUT_OF_SYNC").count() == 2


ODD_IDS_PIPELINE = """\
pipeline:
  stages:
    - id: wait 5m?
      name: WAIT
      with:
        duration: 1h
    - id: canary/approve#1
      name: WAIT_APPROVAL
planner:
  alwaysUsePipeline: true
  autoRollback: false
"""


def test_stage_ids_with_url_characters_work_everywhere(
    project, piped, make_agent, manifests, clients, editor
):
    # A stage id is the config's own text: slashes, spaces, `?` and `#` reach the piped API, the portal
    # and the public API intact.
    from django.urls import reverse

    from apps.projects.choices import APIKeyRole
    from apps.projects.principal import system_principal
    from apps.projects.services import create_api_key

    # The WAIT starts, logs and saves its start time under its odd id.
    agent, deployment_id = start_pipeline(project, piped, make_agent, manifests, ODD_IDS_PIPELINE)
    wait = stage_row(deployment_id, "wait 5m?")
    assert wait.status == "RUNNING" and "wait_started_at" in wait.metadata
    assert logs(deployment_id, "wait 5m?")
    age_metadata(deployment_id, "wait 5m?", "wait_started_at", 3601)
    agent.step(deployment_id)
    agent.step(deployment_id)
    assert stage_row(deployment_id, "canary/approve#1").status == "RUNNING"

    page = clients["editor"].get(reverse("webui:deployment", args=[deployment_id]))
    assert page.status_code == 200
    approve_url = reverse("webui:stage_approve", args=[deployment_id, "canary/approve#1"])
    assert approve_url in page.content.decode()
    assert clients["viewer"].post(approve_url).status_code == 403
    assert clients["editor"].post(approve_url).status_code in (200, 302)
    agent.poll_commands()
    agent.step(deployment_id)
    approval = stage_row(deployment_id, "canary/approve#1")
    assert approval.status == "SUCCESS" and approval.metadata["approved_by"] == ["erin"]

    key = create_api_key(system_principal(project.id), project, name="ci", role=APIKeyRole.READ_ONLY)[1]
    quoted = (
        reverse("webui:stage_logs", args=[deployment_id, "wait 5m?"]).split("/stages/")[1].rsplit("/", 2)[0]
    )
    response = clients["anonymous"].get(
        f"/api/v1/deployments/{deployment_id}/stages/{quoted}/logs",
        headers={"Authorization": f"API-KEY {key}"},
    )
    assert response.status_code == 200
    assert [i["log"] for i in response.json()["items"]] == logs(deployment_id, "wait 5m?")
    portal_logs = clients["viewer"].get(reverse("webui:stage_logs", args=[deployment_id, "canary/approve#1"]))
    assert portal_logs.status_code == 200
