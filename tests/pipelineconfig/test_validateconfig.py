"""`manage.py validateconfig`: what a manifests repository's CI runs on every pull request."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from .conftest import EXAMPLES, SEED

ROOT = Path(__file__).resolve().parents[2]


def validateconfig(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the command as CI would: its own process, a database URL that points nowhere."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PIPEPORTAL_CONFIG")}
    environ["DATABASE_URL"] = "mysql://nobody:nothing@127.0.0.1:9/nowhere"
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "manage.py", "validateconfig", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_finds_the_seeds_container_mistake_and_exits_1():
    result = validateconfig(str(SEED))
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        f"{SEED}/app.pipecd.yaml:21:24: error: spec.input.targetGroups.primary.containerName: container "
        "'hogehoge' is not defined in taskdef.yaml (its containers: app); AWS would refuse to create the task set",
        f"{SEED}/app.pipecd.yaml:25:24: error: spec.input.targetGroups.canary.containerName: container "
        "'hogehoge' is not defined in taskdef.yaml (its containers: app); AWS would refuse to create the task set",
        f"{SEED}/servicedef.yaml:1:1: warning: servicedef.yaml is wrapped as {{version, spec}}; its spec: mapping "
        "is read as the definition (write the definition at the top level, as AWS and PipeCD expect)",
        "1 file checked: 2 error(s), 1 warning(s)",
    ]


def test_json_output_lists_every_problem_with_its_place():
    result = validateconfig(str(SEED / "app.pipecd.yaml"), "--json")
    assert result.returncode == 1
    problems = json.loads(result.stdout.splitlines()[-1])
    assert [set(p) for p in problems] == [{"file", "line", "col", "path", "severity", "message"}] * 3
    assert [(p["severity"], p["line"], p["path"]) for p in problems] == [
        ("error", 21, "spec.input.targetGroups.primary.containerName"),
        ("error", 25, "spec.input.targetGroups.canary.containerName"),
        ("warning", 1, ""),
    ]


def test_a_clean_folder_exits_0_and_strict_makes_warnings_count(tmp_path):
    repo = tmp_path / "manifests"
    shutil.copytree(EXAMPLES / "canary", repo / "canary")
    shutil.copytree(EXAMPLES / "attachment", repo / "attachment")
    shutil.copytree(EXAMPLES / "canary", repo / ".git" / "ignored")  # hidden folders are not searched
    (repo / ".git" / "ignored" / "taskdef.yaml").write_text("broken: [")
    result = validateconfig(str(repo))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "2 files checked: 0 error(s), 1 warning(s)"
    strict = validateconfig(str(repo), "--strict", "--json")
    assert strict.returncode == 1
    [problem] = json.loads(strict.stdout)
    assert problem["severity"] == "error"
    assert problem["path"] == "containerDefinitions[0].command"


def test_usage_problems_exit_2(tmp_path):
    missing = validateconfig(str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "no such file or folder" in missing.stderr
    empty = validateconfig(str(tmp_path))
    assert empty.returncode == 2
    assert "no *.pipecd.yaml file below this folder" in empty.stderr
    assert validateconfig().returncode == 2  # no PATH at all


def test_it_checks_piped_and_control_plane_configs_given_by_name(
    tmp_path, capsys, seed_piped_env, monkeypatch
):
    for name, value in seed_piped_env.items():
        monkeypatch.setenv(name, value)
    call_command("validateconfig", str(SEED / "piped-config.yaml"))
    assert capsys.readouterr().out.splitlines()[-1] == "1 file checked: 0 error(s), 0 warning(s)"
    monkeypatch.delenv("SLACK_WEBHOOK_URL")
    with pytest.raises(SystemExit) as exited:
        call_command(
            "validateconfig", str(SEED / "piped-config.yaml"), str(SEED / "control-plane-config.yaml")
        )
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert (
        f"{SEED}/piped-config.yaml:31:20: error: spec.notifications.receivers[0].slack.hookURL: environment variable SLACK_WEBHOOK_URL is not set"
        in out
    )
    assert (
        f"{SEED}/control-plane-config.yaml:7:12: error: spec.datastore.config.url: environment variable DB_USER is not set"
        in out
    )


def test_a_folder_it_cannot_read_is_an_error_not_a_silent_pass(tmp_path):
    repo = tmp_path / "manifests"
    shutil.copytree(EXAMPLES / "canary", repo / "apps" / "canary")
    locked = repo / "apps" / "locked"
    locked.mkdir()
    locked.chmod(0)
    # Root reads any folder; without its DAC capabilities, it meets the permissions as anyone would.
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv (util-linux) is needed to drop root's DAC capabilities")
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PIPEPORTAL_CONFIG")}
    environ["DATABASE_URL"] = "mysql://nobody:nothing@127.0.0.1:9/nowhere"
    try:
        result = subprocess.run(
            [*prefix, sys.executable, "manage.py", "validateconfig", str(repo)],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert f"{locked}: error: cannot read this folder (Permission denied)" in result.stdout.splitlines()
    assert result.stdout.splitlines()[-1] == "1 file checked: 1 error(s), 0 warning(s)"
