"""The piped, as people feel it: git push → deployment PENDING (webhook; polling), approval → next stage
RUNNING, and the idle piped's memory.

`python -m bench piped`. Everything runs as real processes with the product's default timings: a control
plane (`manage.py runserver`, SQLite in a temporary directory — DATABASE_URL is never touched), a piped
(`manage.py piped`, one process, in-process Celery), a local bare Git repository. The application's
pipeline is WAIT_APPROVAL then WAIT 1s, so no AWS is involved. Observations go through the public API,
polled every 20 ms (that resolution is included in the numbers).
Targets: push → PENDING with the webhook ≤ 1 s; approval → next stage RUNNING ≤ 2 s.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import requests

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

PROJECT = "bench"
POLL = 0.02
APP_CONFIG = """\
apiVersion: pipecd.dev/v1beta1
kind: ECSApp
spec:
  name: bench
  input:
    serviceDefinitionFile: servicedef.yaml
    taskDefinitionFile: taskdef.yaml
  planner:
    alwaysUsePipeline: true
    autoRollback: false
  pipeline:
    stages:
      - id: approval
        name: WAIT_APPROVAL
      - id: pause
        name: WAIT
        with:
          duration: 1s
"""
TASKDEF = (
    "family: bench\ncontainerDefinitions:\n  - name: app\n    image: registry/bench:{n}\n    memory: 128\n"
)
SERVICEDEF = "cluster: bench\nserviceName: bench\ndesiredCount: 1\ndeploymentController:\n  type: EXTERNAL\n"


WEBHOOK_SECRET_QUERY = (
    f"from apps.projects.models import Project; print(Project.objects.get(id={PROJECT!r}).git_webhook_secret)"
)


def log(message: str) -> None:
    print(f"# piped: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def row(case: str, samples: list[float], target: str = "", note: str = "") -> dict:
    ms = [s * 1000 for s in samples]
    return {
        "bench": "piped",
        "case": case,
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p95_ms": percentile(ms, 0.95),
        "target": target,
        "note": note,
    }


class Stack:
    """Control plane, piped and Git repository in a temporary directory; stopped whatever happens."""

    def __init__(self, database_url: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-piped-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL") and not k.startswith("PIPED_")
        }
        self.env.update(
            {
                "DEBUG": "true",
                "PIPEPORTAL_VAR_DIR": str(self.dir / "var"),
                "SQLITE_PATH": str(self.dir / "db.sqlite3"),
                "PYTHONUNBUFFERED": "1",
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
            }
        )
        if database_url:
            # A MariaDB database of the benchmark's own (bench_canary's BENCH_DATABASE_URL), already empty.
            self.env["DATABASE_URL"] = database_url
        self.processes: list[subprocess.Popen] = []
        self.piped: subprocess.Popen | None = None

    def manage(self, *args: str) -> dict:
        out = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        lines = out.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}

    def spawn(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        handle = open(self.dir / f"{name}.log", "a")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(args, cwd=BASE_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def __enter__(self) -> Stack:
        from apps.pipedagent.demo_support import ManifestsRepo

        log(f"setting up in {self.dir}")
        self.manage("migrate", "-v0")
        self.manage("createproject", PROJECT, "--json")
        piped = self.manage("registerpiped", "--project", PROJECT, "--name", "bench-piped", "--json")
        self.piped_id, self.piped_key = piped["piped_id"], piped["piped_key_base64"]
        self.api_key = self.manage(
            "createapikey", "--project", PROJECT, "--name", "bench", "--role", "READ_WRITE", "--json"
        )["api_key"]
        if "DATABASE_URL" in self.env:
            self.webhook_secret = subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", WEBHOOK_SECRET_QUERY],
                cwd=BASE_DIR,
                env=self.env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        else:
            with closing(sqlite3.connect(self.dir / "db.sqlite3")) as db:
                self.webhook_secret = db.execute(
                    "SELECT git_webhook_secret FROM projects_project WHERE id = ?", (PROJECT,)
                ).fetchone()[0]
        self.repo = ManifestsRepo(self.dir / "git").create()
        self.commit(0)
        server = self.spawn(
            "control-plane",
            [
                sys.executable,
                "manage.py",
                "runserver",
                f"127.0.0.1:{self.port}",
                "--noreload",
                "--skip-checks",
            ],
            self.env,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{self.url}/api/v1/openapi.json", timeout=1)
                break
            except requests.RequestException:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the control plane did not start (see {self.dir}/control-plane.log)"
                    ) from None
                time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_piped()
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- the piped ---

    def start_piped(self, **env: str) -> None:
        config = self.dir / "piped-config.yaml"
        config.write_text(
            "apiVersion: pipecd.dev/v1beta1\nkind: Piped\nspec:\n"
            f"  projectID: {PROJECT}\n  pipedID: {self.piped_id}\n  pipedKeyData: {self.piped_key}\n"
            f"  apiAddress: {self.url}\n  syncInterval: 1m\n"
            f"  repositories:\n    - repoId: manifests\n      remote: {self.repo.remote}\n      branch: main\n"
            "  platformProviders:\n    - name: ECS\n      type: ECS\n      config:\n        region: us-east-1\n"
        )
        piped_env = {k: v for k, v in self.env.items() if k not in ("DEBUG", "SQLITE_PATH")}
        piped_env.update(
            {"DATABASE_URL": "mysql://nobody@127.0.0.1:9/nowhere", "PIPED_WORK_DIR": str(self.dir / "work")}
        )
        piped_env.update(env)
        self.piped = self.spawn(
            "piped",
            [sys.executable, "manage.py", "piped", "--config-file", str(config), "--insecure"],
            piped_env,
        )

    def stop_piped(self) -> None:
        if self.piped is not None and self.piped.poll() is None:
            self.piped.send_signal(signal.SIGTERM)
            self.piped.wait(20)
        self.piped = None

    # --- Git and the APIs ---

    def commit(self, n: int) -> str:
        self.repo.write(
            {
                "app.pipecd.yaml": APP_CONFIG,
                "taskdef.yaml": TASKDEF.format(n=n),
                "servicedef.yaml": SERVICEDEF,
            },
            under="apps/bench",
        )
        return self.repo.commit_and_push(f"Bench commit {n}")

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(
            method,
            f"{self.url}/api/v1{path}",
            json=body,
            headers={"Authorization": f"API-KEY {self.api_key}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def webhook(self) -> None:
        body = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": self.repo.remote}}).encode()
        signature = "sha256=" + hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        response = requests.post(
            f"{self.url}/webhooks/git?project={PROJECT}",
            data=body,
            headers={
                "X-Hub-Signature-256": signature,
                "X-GitHub-Event": "push",
                "Content-Type": "application/json",
            },
            timeout=10,
        )
        response.raise_for_status()

    def deployments(self) -> list[dict]:
        return self.api("GET", f"/deployments?application_id={self.app_id}&limit=100")["items"]

    def wait(self, predicate, timeout: float) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(POLL)
        raise TimeoutError("the piped did not get there in time")

    def deployment_of(self, commit: str) -> dict | None:
        return next((d for d in self.deployments() if d["trigger"]["commit"]["hash"] == commit), None)


def push_to_pending(stack: Stack, n: int, *, webhook: bool, start: int) -> list[float]:
    samples = []
    for i in range(n):
        head = stack.commit(start + i)
        pushed = time.monotonic()
        if webhook:
            stack.webhook()
        stack.wait(lambda head=head: stack.deployment_of(head), 120)
        samples.append(time.monotonic() - pushed)
        time.sleep(0.3)
    return samples


def approval_to_running(stack: Stack, n: int) -> list[float]:
    samples = []
    for _ in range(n):

        def waiting():
            for deployment in stack.deployments():
                stages = {s["id"]: s for s in deployment["stages"]}
                if stages.get("approval", {}).get("status") == "RUNNING":
                    return deployment
            return None

        deployment = stack.wait(waiting, 60)
        time.sleep(0.2)
        approved = time.monotonic()
        stack.api("POST", f"/deployments/{deployment['id']}/stages/approval/approve")

        def next_running(deployment_id=deployment["id"]):
            stages = {s["id"]: s for s in stack.api("GET", f"/deployments/{deployment_id}")["stages"]}
            return stages["pause"]["status"] != "NOT_STARTED_YET"

        stack.wait(next_running, 30)
        samples.append(time.monotonic() - approved)
    return samples


def idle_footprint(pid: int, seconds: float) -> tuple[float, float]:
    """(RSS in MiB, CPU % of one core) of an idle piped over `seconds`."""

    def cpu_ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    before = cpu_ticks()
    time.sleep(seconds)
    used = (cpu_ticks() - before) / os.sysconf("SC_CLK_TCK")
    rss_kib = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return rss_kib / 1024, 100 * used / seconds


def run(args) -> list[dict]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeportal.settings")
    quick = getattr(args, "quick", False)
    n_webhook, n_polling, n_approval = (3, 2, 3) if quick else (10, 4, 10)
    rows = []
    with Stack() as stack:
        stack.start_piped()
        app = stack.api(
            "POST",
            "/applications",
            {
                "name": "bench",
                "piped_id": stack.piped_id,
                "kind": "ECS",
                "platform_provider": "ECS",
                "git_path": {
                    "repo": {"id": "manifests"},
                    "path": "apps/bench",
                    "config_filename": "app.pipecd.yaml",
                },
            },
        )
        stack.app_id = app["application_id"]
        stack.wait(lambda: stack.deployments(), 60)
        log("idle footprint")
        time.sleep(3)
        rss, cpu = idle_footprint(stack.piped.pid, 10)
        rows.append({"bench": "piped", "case": "idle piped RSS (one process)", "value": rss, "unit": "MiB"})
        rows.append({"bench": "piped", "case": "idle piped CPU", "value": cpu, "unit": "% of a core"})
        log(f"push → PENDING with the webhook (n={n_webhook})")
        samples = push_to_pending(stack, n_webhook, webhook=True, start=1)
        rows.append(row("git push → PENDING (webhook)", samples, "≤ 1 s", "command poll every 1 s"))
        log(f"approval → next stage RUNNING (n={n_approval})")
        samples = approval_to_running(stack, n_approval)
        rows.append(row("approval → next stage RUNNING", samples, "≤ 2 s"))
        stack.stop_piped()
        log(f"push → PENDING by polling (n={n_polling}) (syncInterval 5 s)")
        stack.start_piped(PIPED_SYNC_INTERVAL_SECONDS="5")
        time.sleep(3)
        samples = push_to_pending(stack, n_polling, webhook=False, start=100)
        rows.append(
            row(
                "git push → PENDING (polling, syncInterval 5 s)", samples, "", "≈ syncInterval / 2 on average"
            )
        )
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    from bench.__main__ import print_table

    print_table(run(parser.parse_args()))
