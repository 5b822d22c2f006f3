"""The image's roles started from a checkout through docker/entrypoint.sh, as the container would."""

import base64
import json
import os
import subprocess
import uuid

import pytest
import requests
from celery import Celery

from tests.components import free_port, redis_available, require, wait_for_port

from .conftest import ENTRYPOINT, checkout_env

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ops-processes")]


def run_role(role: str, env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), role, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_the_web_role_serves_the_portal_probes_static_files_and_metrics(tmp_path, start):
    port = free_port()
    env = checkout_env(tmp_path, PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="2", LOG_FORMAT="json")

    migrated = run_role("migrate", env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    # What the Dockerfile runs at build time.
    collected = subprocess.run(
        ["python", "manage.py", "collectstatic", "--noinput"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert collected.returncode == 0, collected.stderr

    web = start(["sh", str(ENTRYPOINT), "web"], env)
    wait_for_port(port, timeout=60, proc=web.proc)
    base = f"http://127.0.0.1:{port}"

    # The ALB's view: Host is the task's address, which is not in ALLOWED_HOSTS.
    health = requests.get(f"{base}/healthz", headers={"Host": "10.0.3.7:8080"}, timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = requests.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text

    login = requests.get(f"{base}/login/", timeout=10)
    assert login.status_code == 200
    css = requests.get(f"{base}/static/css/portal.css", timeout=10)
    assert css.status_code == 200
    assert "text/css" in css.headers["Content-Type"]

    # Two workers answer in turn; multiprocess mode adds their API histograms up in one scrape.
    for _ in range(6):
        assert requests.get(f"{base}/api/v1/openapi.json", timeout=10).status_code == 200
    metrics = requests.get(f"{base}/metrics", timeout=10).text
    count_line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("pipeportal_api_request_duration_seconds_count") and "openapi" in line
    )
    assert float(count_line.rsplit(" ", 1)[1]) == 6
    assert "pipeportal_metrics_database_up 1.0" in metrics

    assert web.terminate() == 0
    logged = json_lines(web.output)
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"] for line in logged)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in logged)


def test_the_migrate_role_fails_loudly_on_a_database_it_cannot_reach(tmp_path):
    env = checkout_env(tmp_path, DATABASE_URL=f"mysql://root@127.0.0.1:{free_port()}/nothing")
    result = run_role("migrate", env)
    assert result.returncode != 0
    assert "Can't connect" in result.stderr or "OperationalError" in result.stderr


def test_other_commands_run_as_given(tmp_path):
    result = run_role("python", checkout_env(tmp_path), "-c", "import sys; print('ran', sys.argv[1:])", "x")
    assert result.returncode == 0
    assert result.stdout.strip() == "ran ['x']"


def test_it_creates_missing_secret_files_only_when_asked(tmp_path):
    secret = tmp_path / "secrets" / "secret_key"
    env = checkout_env(tmp_path, SECRET_KEY_FILE=str(secret))
    env.pop("SECRET_KEY")
    assert run_role("true", env).returncode == 0
    assert not secret.exists()

    env["PIPEPORTAL_INIT_SECRETS"] = "true"
    assert run_role("true", env).returncode == 0
    first = secret.read_text().strip()
    assert len(first) >= 50
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    assert run_role("true", env).returncode == 0
    assert secret.read_text().strip() == first  # never replaced once it exists


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL")
    require(redis_available(url), "Redis (REDIS_URL)")
    return url


def test_the_worker_role_runs_a_task_and_stops_cleanly_on_sigterm(tmp_path, start, redis_url):
    env = checkout_env(tmp_path, REDIS_URL=redis_url, LOG_FORMAT="json")
    assert run_role("migrate", env).returncode == 0
    # A queue of its own, so that no other test's task reaches this worker (and none of ours leaks).
    queue = f"ops-test-{uuid.uuid4().hex[:8]}"
    worker = start(
        ["sh", str(ENTRYPOINT), "worker", "-Q", queue, "--concurrency", "1", "-n", f"{queue}@%h"], env
    )
    worker.wait_for(r"ready\.")

    sender = Celery("ops-test", broker=redis_url)
    try:
        sender.send_task("cp.ops.prune", queue=queue)
    finally:
        sender.close()
    worker.wait_for(r"Task cp\.ops\.prune\[[0-9a-f-]+\] succeeded")

    assert worker.terminate() == 0
    assert "Warm shutdown" in worker.output
    assert any(line["logger"] == "celery.apps.worker" for line in json_lines(worker.output))


def test_the_beat_role_starts_and_stops_cleanly_on_sigterm(tmp_path, start, redis_url):
    env = checkout_env(tmp_path, REDIS_URL=redis_url)
    beat = start(["sh", str(ENTRYPOINT), "beat"], env)
    beat.wait_for(r"beat: Starting")
    assert beat.proc.poll() is None
    assert beat.terminate() == 0
    # The schedule file lives in TMPDIR, never in the (read-only) code folder.
    assert any(path.name.startswith("pipeportal-celerybeat-schedule") for path in tmp_path.iterdir())


def test_the_piped_role_takes_its_config_from_the_environment_as_ecs_passes_it(tmp_path):
    # A config with a mistake: the piped must say what is wrong in it, which shows it got the config.
    config = b"apiVersion: pipecd.dev/v1beta1\nkind: Piped\nspec:\n  projectID: demo\n  apiAddress: x:443\n"
    # The piped never opens a database: one that cannot be reached changes nothing.
    env = checkout_env(tmp_path, DATABASE_URL=f"mysql://root@127.0.0.1:{free_port()}/none")

    env["PIPED_CONFIG_DATA"] = base64.b64encode(config).decode()
    from_data = run_role("piped", env, timeout=120)
    assert from_data.returncode == 1
    assert "--config-data" in from_data.stderr and "pipedID" in from_data.stderr

    env["PIPED_CONFIG_FILE"] = str(tmp_path / "missing-piped-config.yaml")
    from_file = run_role("piped", env, timeout=120)
    assert from_file.returncode == 1
    assert "missing-piped-config.yaml" in from_file.stderr

    # An explicit argument wins over the environment.
    given = tmp_path / "given.yaml"
    given.write_bytes(config)
    explicit = run_role("piped", env, "--config-file", str(given), timeout=120)
    assert explicit.returncode == 1
    assert "given.yaml" in explicit.stderr and "pipedID" in explicit.stderr
