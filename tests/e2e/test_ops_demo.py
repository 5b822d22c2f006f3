"""docker-compose's `demo-setup` (`manage.py demo --setup-only`), from a checkout as the container runs it:
a migrated SQLite database, the test moto server as the compose file's `moto`, then the stack's own
control plane (the image's web role) and piped started on what it prepared, up to the first deployment."""

import sqlite3
import subprocess
import sys
import time

import boto3
import pytest
import yaml

from apps.pipedagent.config import decode_config_data
from tests.components import free_port, wait_for_port
from tests.ops.conftest import ENTRYPOINT, ROOT, Started, checkout_env

# The moto server is the e2e one: told that services run the tasks they ask for, as compose's `moto` is.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("piped-e2e")]


@pytest.fixture
def launch():
    """launch(argv, env) -> Started; whatever still runs at the end of the test is stopped."""
    started: list[Started] = []

    def _launch(argv: list[str], env: dict[str, str]) -> Started:
        started.append(Started(argv, env))
        return started[-1]

    yield _launch
    for process in started:
        if process.proc.poll() is None:
            process.proc.terminate()
            try:
                process.proc.wait(15)
            except subprocess.TimeoutExpired:
                process.proc.kill()
                process.proc.wait(5)


def manage(env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def rows(database, query: str) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query).fetchall()


def test_setup_only_prepares_what_the_compose_stack_runs_and_a_piped_deploys_it(
    tmp_path, moto_server, launch
):
    moto_server.reset()
    workdir = tmp_path / "pipeportal-demo"
    env = checkout_env(
        tmp_path,
        AWS_ENDPOINT_URL=moto_server.endpoint,
        AWS_ACCESS_KEY_ID="demo",
        AWS_SECRET_ACCESS_KEY="demo",
        AWS_DEFAULT_REGION="us-east-1",
        PIPEPORTAL_BASE_URL="http://localhost:8000",
    )
    database = env["SQLITE_PATH"]
    port = free_port()
    setup_args = (
        "demo",
        "--setup-only",
        "--workdir",
        str(workdir),
        "--api-address",
        f"http://127.0.0.1:{port}",
    )

    # Not migrated yet: a clear message, nothing created.
    refused = manage(env, *setup_args)
    assert refused.returncode == 1
    assert "run `manage.py migrate` first" in refused.stderr
    assert not (workdir / "piped-config.yaml").exists()

    assert manage(env, "migrate", "--noinput").returncode == 0
    first = manage(env, *setup_args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    assert "Portal:                  http://localhost:8000/login/demo/" in first.stdout
    password = next(line for line in first.stdout.splitlines() if "Static admin password:" in line).split()[
        -1
    ]
    assert len(password) >= 12

    # The records: the project, its piped and the application, in the database the stack uses.
    assert rows(database, "SELECT id FROM projects_project") == [("demo",)]
    ((piped_id,),) = rows(database, "SELECT id FROM pipeds_piped WHERE name = 'demo-piped'")
    assert rows(database, "SELECT name, path, repo_id FROM applications_application") == [
        ("hogehoge", "apps/hello", "manifests")
    ]

    # The piped's config points at the given control plane, the repository in the work dir and the piped.
    config_file = workdir / "piped-config.yaml"
    assert config_file.stat().st_mode & 0o777 == 0o600
    spec = yaml.safe_load(config_file.read_text())["spec"]
    assert spec["apiAddress"] == f"http://127.0.0.1:{port}"
    assert spec["pipedID"].replace("-", "") == str(piped_id).replace("-", "")
    assert decode_config_data(spec["pipedKeyData"])
    assert spec["repositories"] == [
        {"repoId": "manifests", "remote": f"file://{workdir / 'manifests.git'}", "branch": "main"}
    ]
    pushed = subprocess.run(
        ["git", "--git-dir", str(workdir / "manifests.git"), "show", "main:apps/hello/app.pipecd.yaml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "kind: ECSApp" in pushed

    # The AWS resources the app names exist in the emulator.
    ecs = boto3.client("ecs", region_name="us-east-1", endpoint_url=moto_server.endpoint)
    elbv2 = boto3.client("elbv2", region_name="us-east-1", endpoint_url=moto_server.endpoint)
    assert [c.rsplit("/", 1)[-1] for c in ecs.list_clusters()["clusterArns"]] == ["demo-cluster"]
    groups = {
        g["TargetGroupName"]: g["TargetGroupArn"] for g in elbv2.describe_target_groups()["TargetGroups"]
    }
    assert set(groups) == {"demo-primary", "demo-canary"}
    assert groups["demo-primary"] in pushed

    # compose runs demo-setup at every `up`: again, with the emulator still holding the first run's resources.
    again = manage(env, *setup_args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"Static admin password:   {password}" in again.stdout
    assert rows(database, "SELECT id FROM pipeds_piped") == [(piped_id,)]
    assert len(rows(database, "SELECT id FROM applications_application WHERE deleted = 0")) == 1
    assert len(elbv2.describe_load_balancers()["LoadBalancers"]) == 1

    # The stack: the web role on the prepared database, the piped on the prepared config (as compose does).
    web = launch(["sh", str(ENTRYPOINT), "web"], {**env, "PORT": str(port), "HOST": "127.0.0.1"})
    wait_for_port(port, timeout=60, proc=web.proc)
    piped_env = {
        **{k: v for k, v in env.items() if k not in ("SECRET_KEY", "PIPEPORTAL_KEY_HASH_SECRET")},
        "DATABASE_URL": "mysql://nobody:nothing@127.0.0.1:9/nowhere",
        "PIPED_WORK_DIR": str(workdir / "piped-work"),
        "PIPED_AWS_MAX_ATTEMPTS": "1",
        "PIPED_ECS_POLL_SECONDS": "0.2",
        "PIPED_DISPATCH_SECONDS": "0.3",
        "PIPED_COMMAND_POLL_SECONDS": "0.3",
    }
    piped = launch(
        ["sh", str(ENTRYPOINT), "piped", "--config-file", str(config_file), "--insecure"], piped_env
    )
    deadline = time.monotonic() + 60
    statuses: list[tuple] = []
    while time.monotonic() < deadline:
        statuses = rows(database, "SELECT status, status_reason FROM deployments_deployment")
        if statuses and statuses[0][0] in ("SUCCESS", "FAILURE", "CANCELLED"):
            break
        time.sleep(0.3)
    assert statuses and statuses[0][0] == "SUCCESS", (statuses, piped.output[-3000:])
    services = ecs.describe_services(cluster="demo-cluster", services=["hogehoge"])["services"]
    assert [s["status"] for s in services] == ["ACTIVE"]
    assert piped.terminate() == 0
    assert web.terminate() == 0


def test_setup_only_needs_the_emulators_address(tmp_path):
    env = checkout_env(tmp_path)
    env.pop("AWS_ENDPOINT_URL", None)
    result = manage(env, "demo", "--setup-only", "--workdir", str(tmp_path / "demo"))
    assert result.returncode == 1
    assert "set AWS_ENDPOINT_URL to a moto server" in result.stderr
    assert "Traceback" not in result.stderr
