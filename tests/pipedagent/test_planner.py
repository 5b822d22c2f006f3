"""The planner: PipeCD's order of rules, its summaries, versions from the task definition, stage ids."""

import textwrap

import pytest

from apps.pipedagent.planner import (
    PlanError,
    image_change_summary,
    parse_image,
    plan,
    versions_of,
)
from apps.pipelineconfig import load_app_config

PIPELINE = """
  pipeline:
    stages:
      - name: WAIT
        with:
          duration: 10s
      - id: approve
        name: WAIT_APPROVAL
        with:
          approvers: [erin, alice]
          minApproverNum: 2
      - name: SCRIPT_RUN
        with:
          run: echo hi
          onRollback: echo undo
      - name: ECS_SYNC
"""


def spec(extra: str = "", *, pipeline: bool = True, auto_rollback: bool | None = None):
    planner = ""
    if auto_rollback is not None:
        planner = f"\n  planner:\n    autoRollback: {str(auto_rollback).lower()}"
    text = textwrap.dedent(
        """\
        apiVersion: pipecd.dev/v1beta1
        kind: ECSApp
        spec:
          input:
            serviceDefinitionFile: servicedef.yaml
            taskDefinitionFile: taskdef.yaml
        """
    )
    text += (PIPELINE if pipeline else "") + planner + extra
    return load_app_config("app.pipecd.yaml", text=text).spec


V1 = [{"name": "app", "version": "v1", "url": "registry/app:v1"}]
V2 = [{"name": "app", "version": "v2", "url": "registry/app:v2"}]


def run(app_spec, *, trigger=None, target=V2, running=V1, running_commit="c1"):
    trigger = {
        "sync_strategy": "AUTO",
        "commander": "",
        "commit": {"message": "Update app"},
        **(trigger or {}),
    }
    return plan(
        kind="ECS",
        spec=app_spec,
        trigger=trigger,
        target_versions=target,
        running_versions=running,
        running_commit=running_commit,
    )


def test_an_image_change_takes_the_pipeline_with_pipecds_summary():
    result = run(spec())
    assert result.sync_strategy == "PIPELINE"
    assert result.summary == "Sync progressively because of updating image app from v1 to v2"
    assert result.versions == V2


def test_no_image_change_is_a_quick_sync():
    result = run(spec(), target=V1, running=V1)
    assert result.sync_strategy == "QUICK_SYNC"
    assert result.summary.startswith("Quick sync")
    assert [s["name"] for s in result.stages] == ["ECS_SYNC", "ROLLBACK"]


def test_the_first_deployment_is_a_quick_sync():
    result = run(spec(), running=None, running_commit="")
    assert result.sync_strategy == "QUICK_SYNC"
    assert "first deployment" in result.summary


def test_no_pipeline_means_quick_sync_even_with_a_new_image():
    result = run(spec(pipeline=False))
    assert result.sync_strategy == "QUICK_SYNC"
    assert result.summary == (
        "Quick sync to deploy image app:v2 and configure all traffic to it (pipeline was not configured)"
    )


def test_always_use_pipeline_wins_over_first_deployment():
    app = spec("\n  planner:\n    alwaysUsePipeline: true")
    result = run(app, running=None, running_commit="")
    assert result.sync_strategy == "PIPELINE"
    assert result.summary == "Sync with the specified pipeline (alwaysUsePipeline was set)"


def test_a_forced_strategy_wins_over_everything():
    quick = run(
        spec(), trigger={"sync_strategy": "QUICK_SYNC", "commander": "erin", "strategy_summary": "Asked"}
    )
    assert quick.sync_strategy == "QUICK_SYNC" and quick.summary == "Asked"
    forced = run(spec(), trigger={"sync_strategy": "PIPELINE", "commander": "erin"}, target=V1, running=V1)
    assert forced.sync_strategy == "PIPELINE"


def test_forcing_a_pipeline_without_one_is_a_clear_error():
    with pytest.raises(PlanError, match="no pipeline"):
        run(spec(pipeline=False), trigger={"sync_strategy": "PIPELINE", "commander": "erin"})


def test_commit_matcher_chooses_by_commit_message():
    app = spec('\n  commitMatcher:\n    quickSync: "^hotfix:"\n    pipeline: "^canary:"')
    hot = run(app, trigger={"commit": {"message": "hotfix: urgent"}})
    assert hot.sync_strategy == "QUICK_SYNC"
    assert hot.summary == 'Quick sync because the commit message was matching "^hotfix:"'
    canary = run(app, trigger={"commit": {"message": "canary: try"}}, target=V1, running=V1)
    assert canary.sync_strategy == "PIPELINE"
    assert canary.summary == 'Sync progressively because the commit message was matching "^canary:"'


def test_commit_matcher_is_ignored_for_a_command():
    app = spec('\n  commitMatcher:\n    quickSync: "^hotfix:"')
    result = run(app, trigger={"commander": "erin", "commit": {"message": "hotfix: x"}})
    assert result.sync_strategy == "PIPELINE"


def test_first_deployment_comes_before_the_commit_matcher():
    app = spec('\n  commitMatcher:\n    pipeline: "^canary:"')
    result = run(app, trigger={"commit": {"message": "canary: x"}}, running=None, running_commit="")
    assert result.sync_strategy == "QUICK_SYNC"


def test_unknown_running_versions_take_the_pipeline():
    result = run(spec(), running=None)
    assert result.sync_strategy == "PIPELINE"
    assert result.summary == "Sync with the specified pipeline"


def test_pipeline_stages_have_pipecds_ids_approvers_and_rollbacks():
    stages = run(spec()).stages
    assert [(s["id"], s["name"], s["index"]) for s in stages] == [
        ("stage-0", "WAIT", 0),
        ("approve", "WAIT_APPROVAL", 1),
        ("stage-2", "SCRIPT_RUN", 2),
        ("stage-3", "ECS_SYNC", 3),
        ("rollback", "ROLLBACK", 4),
        ("stage-2-rollback", "SCRIPT_RUN_ROLLBACK", 5),
    ]
    approval = stages[1]
    assert approval["authorized_approvers"] == ["erin", "alice"]
    assert approval["min_approver_num"] == 2
    assert approval["requires"] == ["stage-0"]
    rollback = stages[4]
    assert rollback["rollback"] is True and rollback["visible"] is False
    assert stages[5]["metadata"] == {"base_stage_id": "stage-2"}
    assert all(s["visible"] for s in stages[:4])


def test_auto_rollback_off_plans_no_rollback_stage():
    assert [s["name"] for s in run(spec(auto_rollback=False)).stages] == [
        "WAIT",
        "WAIT_APPROVAL",
        "SCRIPT_RUN",
        "ECS_SYNC",
    ]
    quick = run(spec(auto_rollback=False), running=None, running_commit="")
    assert [s["name"] for s in quick.stages] == ["ECS_SYNC"]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", ("nginx", "latest")),
        ("nginx:1.25", ("nginx", "1.25")),
        ("123.dkr.ecr.ap-northeast-1.amazonaws.com/team/app:v2", ("app", "v2")),
        ("registry:5000/app", ("app", "latest")),
        ("registry:5000/app:v3@sha256:abc", ("app", "v3")),
    ],
)
def test_images_are_read_like_docker_names_them(image, expected):
    assert parse_image(image) == expected


def test_versions_come_from_the_task_definition_each_image_once():
    task = {
        "containerDefinitions": [
            {"name": "app", "image": "r/app:v2"},
            {"name": "sidecar", "image": "r/envoy:1.30"},
            {"name": "app2", "image": "r/app:v2"},
        ]
    }
    assert versions_of(task) == [
        {"name": "app", "version": "v2", "url": "r/app:v2"},
        {"name": "envoy", "version": "1.30", "url": "r/envoy:1.30"},
    ]


def test_a_renamed_image_is_described_as_such():
    old = [{"name": "foo", "version": "v0.1", "url": "r/foo:v0.1"}]
    new = [{"name": "bar", "version": "v0.2", "url": "r/bar:v0.2"}]
    assert (
        image_change_summary(old, new) == "Sync progressively because of updating image foo:v0.1 to bar:v0.2"
    )
    assert image_change_summary(old, old) is None
