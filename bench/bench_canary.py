"""A full canary pipeline with zero waits, against the moto server: how long it takes and how much of that is
the piped's own work (orchestration) rather than AWS calls.

`python -m bench canary`. A control plane runs as real processes (bench_piped's stack: SQLite in a temporary
directory, or the MariaDB database named by BENCH_DATABASE_URL — dropped and created again, so give it one
of its own), and the piped talks to it through gunicorn as in production (docker/gunicorn.conf.py; Django's
development server would add ~45 ms to every keep-alive request). The piped is driven in this process
through its real HTTP client, real Git and the moto server, calling what its Celery tasks call (planning,
then each stage, the next one started by the call that ends the previous one) with a zero-latency queue in
place of Celery's and no dispatcher tick. The pipeline is the seed's (canary 20 % → canary traffic 10 % →
approval → primary rollout → primary 100 % → canary clean); the approval is given at once through the
public API (served by the same gunicorn) and picked up by the piped's command poll.

AWS time is measured on the provider's boto3 clients with botocore event hooks, from building a call's
parameters to its parsed answer. Everything else — the piped API calls, Git, planning, the stages' own
logic, the approval request — counts as orchestration. Only the harness's own look at the deployment
(which stage waits for the approval, whether it ended) is left out, and its requests are not counted.
Targets: orchestration < 20 % of the total and < 0.5 s per stage.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.bench_piped import PROJECT, Stack, free_port, log  # noqa: E402

ESTIMATED_AWS_CALL_SECONDS = 0.05


class AwsClock:
    """Sums the time spent in AWS calls (per thread), from botocore's own events."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0
        self.calls: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()

    def attach(self, client) -> None:
        events = client.meta.events
        events.register("before-parameter-build.*.*", self._start)
        events.register("after-call.*.*", self._stop)
        events.register("after-call-error.*.*", self._stop)

    def _start(self, context=None, **kwargs) -> None:
        if context is not None:
            context["bench_started"] = time.perf_counter()

    def _stop(self, context=None, model=None, **kwargs) -> None:
        started = (context or {}).get("bench_started")
        if started is None:
            return
        elapsed = time.perf_counter() - started
        with self._lock:
            self.total += elapsed
            self.count += 1
            self.calls[getattr(model, "name", "?")].append(elapsed)


_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def endpoint(method: str, path: str) -> str:
    """`POST /deployments/{id}/stages/{stage}/report` for any deployment and stage."""
    path = _IDS.sub("{id}", path)
    return f"{method} {re.sub(r'/stages/[^/]+/', '/stages/{stage}/', path)}"


class RequestCounter:
    """Counts the piped API requests of `client` (the piped's own HTTP client), per endpoint."""

    def __init__(self, client) -> None:
        self.by_endpoint: dict[str, int] = defaultdict(int)
        self.seconds = 0.0
        self.seconds_by_endpoint: dict[str, float] = defaultdict(float)
        call = client.call

        def counted(method, path, *args, **kwargs):
            self.by_endpoint[endpoint(method, path)] += 1
            began = time.perf_counter()
            try:
                return call(method, path, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began
                self.seconds_by_endpoint[endpoint(method, path)] += time.perf_counter() - began

        client.call = counted

    @property
    def total(self) -> int:
        return sum(self.by_endpoint.values())

    def snapshot(self) -> dict[str, int]:
        return dict(self.by_endpoint)


@contextmanager
def moto_server():
    port = free_port()
    env = {**os.environ, "MOTO_ECS_SERVICE_RUNNING": "2"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    import requests

    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{endpoint}/moto-api/", timeout=1)
            break
        except requests.RequestException:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the moto server did not start") from None
            time.sleep(0.1)
    try:
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def gunicorn(stack: Stack):
    """The control plane as production serves it, on the bench stack's database."""
    import requests

    port = free_port()
    var = Path(stack.env["PIPEPORTAL_VAR_DIR"])
    env = {
        **stack.env,
        # As production runs it: no debug (which records every SQL query), the secrets given; the same
        # ones the stack's debug-mode commands generated, so the registered piped's key still matches.
        "DEBUG": "false",
        "SECRET_KEY": stack.env.get("SECRET_KEY") or (var / "secret_key").read_text().strip(),
        "PIPEPORTAL_KEY_HASH_SECRET": (
            stack.env.get("PIPEPORTAL_KEY_HASH_SECRET") or (var / "key_hash_secret").read_text().strip()
        ),
        "ALLOWED_HOSTS": "127.0.0.1",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "pipeportal.wsgi:application",
            "--config",
            "docker/gunicorn.conf.py",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{url}/healthz", timeout=1)
            break
        except requests.RequestException:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("gunicorn did not start") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(20)


def make_runtime(stack: Stack, api_url: str, work_dir: Path):
    from apps.pipedagent.config import Knobs, PipedRuntimeConfig
    from apps.pipedagent.runtime import Runtime
    from apps.pipelineconfig import load_piped_config

    text = (
        "apiVersion: pipecd.dev/v1beta1\nkind: Piped\nspec:\n"
        f"  projectID: {PROJECT}\n  pipedID: {stack.piped_id}\n  pipedKeyData: {stack.piped_key}\n"
        f"  apiAddress: {api_url}\n  syncInterval: 1m\n"
        f"  repositories:\n    - repoId: manifests\n      remote: {stack.repo.remote}\n      branch: main\n"
        "  platformProviders:\n    - name: ECS\n      type: ECS\n      config:\n        region: us-east-1\n"
    )
    spec = load_piped_config("piped-config.yaml", text=text).spec
    config = PipedRuntimeConfig(
        spec=spec,
        api_url=f"{api_url}/api/piped/v1",
        key=spec.piped_key(),
        work_dir=work_dir,
        knobs=Knobs(
            aws_max_attempts=1, ecs_poll=0.05, claim_lease=30, livestate_interval=0, drift_interval=0
        ),
        insecure=True,
    )
    return Runtime(config)


class Driver:
    """The piped's scheduler and workers for one deployment with a zero-latency queue: what the scheduler
    and the workers dispatch (planning, a stage) runs at once, in dispatch order, as the piped's Celery tasks
    run it on an idle worker (`chain=True`: a stage that ends starts the next one in the same task); no
    dispatcher tick, no stage tick."""

    def __init__(self, runtime, stack: Stack):
        from apps.pipedagent.client import PipedApiClient
        from apps.pipedagent.scheduler import Scheduler

        self.runtime = runtime
        self.stack = stack
        self.queue: list[tuple[str, str, str]] = []
        runtime.dispatch_now = lambda kind, deployment, stage_id="": self.queue.append(
            (kind, deployment["id"], stage_id)
        )
        self.scheduler = Scheduler(runtime)
        self.scheduler.refresh_apps()
        # The harness's own look at the deployment, not counted as the piped's requests.
        config = runtime.config
        self.look = PipedApiClient(config.api_url, config.project_id, config.piped_id, config.key)

    def poll_git(self) -> None:
        self.scheduler.refresh_apps()
        self.scheduler.pollers["manifests"].poll_once()

    def deploy(self, deployment_id: str, clock: AwsClock) -> dict:
        """Run the deployment to its end; answers its status, per-stage [wall, aws] seconds, the time the
        harness spent looking (to leave out) and the approval request's time."""
        from apps.pipedagent import worker

        per_stage: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        looking = approving = 0.0
        step = worker._step

        def timed_step(runtime, deployment_id, started, *args, **kwargs):
            began, aws_before = time.perf_counter(), clock.total
            try:
                return step(runtime, deployment_id, started, *args, **kwargs)
            finally:
                totals = per_stage[started["stage_id"]]
                totals[0] += time.perf_counter() - began
                totals[1] += clock.total - aws_before

        def unit(key: str, call) -> None:
            """A task's time outside its stages' steps (planning; a step task's first start call)."""
            began, aws_before = time.perf_counter(), clock.total
            inner = {k: list(v) for k, v in per_stage.items()}
            call()
            inside = sum(v[0] - inner.get(k, [0.0, 0.0])[0] for k, v in per_stage.items())
            inside_aws = sum(v[1] - inner.get(k, [0.0, 0.0])[1] for k, v in per_stage.items())
            totals = per_stage[key]
            totals[0] += time.perf_counter() - began - inside
            totals[1] += clock.total - aws_before - inside_aws

        worker._step = timed_step
        try:
            self.queue.clear()
            # What the scheduler's tick does: here, dispatch the planning.
            unit("planning", self.scheduler.dispatch_once)
            for _ in range(100):
                if not self.queue:
                    began = time.perf_counter()
                    deployment = self.look.get_deployment(deployment_id)
                    looking += time.perf_counter() - began
                    if deployment["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
                        names = {s["id"]: f"{s['id']} {s['name']}" for s in deployment["stages"]}
                        stages = {names.get(k, k): v for k, v in per_stage.items()}
                        return {
                            "status": deployment["status"],
                            "reason": deployment["status_reason"],
                            "stages": stages,
                            "looking": looking,
                            "approving": approving,
                        }
                    waiting = [
                        s
                        for s in deployment["stages"]
                        if s["name"] == "WAIT_APPROVAL" and s["status"] == "RUNNING"
                    ]
                    if not waiting:
                        raise RuntimeError(f"nothing to do, yet the deployment is {deployment['status']}")
                    # The approval, given at once: the public API, then the piped's command poll dispatches it.
                    began = time.perf_counter()
                    self.stack.api("POST", f"/deployments/{deployment_id}/stages/{waiting[0]['id']}/approve")
                    approving += time.perf_counter() - began
                    unit(waiting[0]["id"], self.scheduler.poll_commands)
                    continue
                kind, _, stage_id = self.queue.pop(0)
                if kind == "plan":
                    unit("planning", lambda: worker.plan_deployment(self.runtime, deployment_id, chain=True))
                else:
                    unit(
                        stage_id,
                        lambda stage_id=stage_id: worker.run_stage(
                            self.runtime, deployment_id, stage_id, chain=True
                        ),
                    )
        finally:
            worker._step = step
        raise RuntimeError("the deployment did not end")


def fresh_mysql_database(url: str) -> None:
    """Drop and create the benchmark's own MariaDB database (BENCH_DATABASE_URL)."""
    import dj_database_url
    import MySQLdb

    config = dj_database_url.parse(url)
    connection = MySQLdb.connect(
        host=config["HOST"] or "127.0.0.1",
        port=int(config["PORT"] or 3306),
        user=config["USER"],
        password=config["PASSWORD"] or "",
    )
    try:
        cursor = connection.cursor()
        cursor.execute(f"DROP DATABASE IF EXISTS `{config['NAME']}`")
        cursor.execute(f"CREATE DATABASE `{config['NAME']}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        connection.close()


def run(args) -> list[dict]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeportal.settings")
    import django

    django.setup()
    from apps.pipedagent.demo_support import render_app
    from apps.pipedagent.platforms.ecs.emulator import create_ecs_environment

    rounds = 2 if getattr(args, "quick", False) else 5
    rows: list[dict] = []
    database_url = os.environ.get("BENCH_DATABASE_URL", "")
    if database_url:
        fresh_mysql_database(database_url)
    database = "MariaDB" if database_url else "SQLite"
    with moto_server() as endpoint, Stack(database_url) as stack, gunicorn(stack) as api_url:
        stack.url = api_url  # the public API (application, approval) from the same gunicorn
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        )
        values = create_ecs_environment(endpoint)
        stack.repo.write(render_app(values, image_tag="v0"), under="apps/hello")
        stack.repo.commit_and_push("Add hogehoge")
        app = stack.api(
            "POST",
            "/applications",
            {
                "name": "hogehoge",
                "piped_id": stack.piped_id,
                "kind": "ECS",
                "platform_provider": "ECS",
                "git_path": {
                    "repo": {"id": "manifests"},
                    "path": "apps/hello",
                    "config_filename": "app.pipecd.yaml",
                },
            },
        )
        stack.app_id = app["application_id"]
        runtime = make_runtime(stack, api_url, stack.dir / "piped-work")
        clock = AwsClock()
        provider = runtime.platform_provider("ECS", "ECS")
        clock.attach(provider.ecs)
        clock.attach(provider.elbv2)
        requests_made = RequestCounter(runtime.client)
        driver = Driver(runtime, stack)
        driver.poll_git()
        first = stack.wait(lambda: stack.deployments(), 30)[0]
        result = driver.deploy(first["id"], clock)
        if result["status"] != "SUCCESS":
            raise RuntimeError(f"the first deployment failed: {result['reason']}")

        totals, aws_totals, stage_overheads, aws_calls, api_calls = [], [], defaultdict(list), [], []
        api_seconds: list[float] = []
        approvals, per_endpoint = [], defaultdict(list)
        for n in range(1, rounds + 1):
            stack.repo.write(render_app(values, image_tag=f"v{n}"), under="apps/hello")
            stack.repo.commit_and_push(f"hogehoge v{n}")
            driver.poll_git()
            deployment = stack.wait(
                lambda: stack.deployments()[0] if stack.deployments()[0]["status"] == "PENDING" else None, 30
            )
            aws_before, calls_before = clock.total, clock.count
            requests_before, api_seconds_before = requests_made.snapshot(), requests_made.seconds
            started = time.perf_counter()
            result = driver.deploy(deployment["id"], clock)
            total = time.perf_counter() - started - result["looking"]
            if result["status"] != "SUCCESS":
                raise RuntimeError(f"round {n} failed: {result['reason']}")
            totals.append(total)
            aws_totals.append(clock.total - aws_before)
            aws_calls.append(clock.count - calls_before)
            approvals.append(result["approving"])
            requests_after = requests_made.snapshot()
            api_calls.append(sum(requests_after.values()) - sum(requests_before.values()))
            api_seconds.append(requests_made.seconds - api_seconds_before)
            for name, count in requests_after.items():
                per_endpoint[name].append(count - requests_before.get(name, 0))
            for key, (wall, aws) in result["stages"].items():
                stage_overheads[key.split(" ", 1)[-1] if key != "planning" else "planning"].append(wall - aws)
            log(f"round {n}: {total:.2f} s, AWS {aws_totals[-1]:.2f} s")

    overhead = [t - a for t, a in zip(totals, aws_totals, strict=True)]
    share = [100 * o / t for o, t in zip(overhead, totals, strict=True)]
    rows.append(
        {
            "bench": "canary",
            "case": f"seed canary pipeline, zero waits (total; {database})",
            "n": rounds,
            "p50_ms": statistics.median(totals) * 1000,
            "p95_ms": max(totals) * 1000,
        }
    )
    rows.append(
        {
            "bench": "canary",
            "case": "  of which AWS calls (moto)",
            "n": rounds,
            "p50_ms": statistics.median(aws_totals) * 1000,
            "p95_ms": max(aws_totals) * 1000,
        }
    )
    rows.append(
        {
            "bench": "canary",
            "case": "  orchestration share of the total",
            "value": statistics.median(share),
            "unit": "%",
            "target": "< 20 %",
            "note": f"worst round {max(share):.1f} %",
        }
    )
    per_call = statistics.median(aws_totals) / max(statistics.median(aws_calls), 1)
    rows.append(
        {
            "bench": "canary",
            "case": "  AWS calls per run",
            "value": statistics.median(aws_calls),
            "unit": "calls",
            "note": f"{per_call * 1000:.1f} ms each on moto",
        }
    )
    rows.append(
        {
            "bench": "canary",
            "case": "  piped API requests per run",
            "value": statistics.median(api_calls),
            "unit": "requests",
            "note": f"gunicorn, {database}",
        }
    )
    rows.append(
        {
            "bench": "canary",
            "case": "  of which waiting on piped API requests",
            "n": rounds,
            "p50_ms": statistics.median(api_seconds) * 1000,
            "p95_ms": max(api_seconds) * 1000,
        }
    )
    for name, counts in sorted(per_endpoint.items(), key=lambda item: (-statistics.mean(item[1]), item[0])):
        if any(counts):
            seconds = requests_made.seconds_by_endpoint[name] / max(requests_made.by_endpoint[name], 1)
            rows.append(
                {
                    "bench": "canary",
                    "case": f"    {name}",
                    "value": statistics.mean(counts),
                    "unit": "requests",
                    "note": f"{seconds * 1000:.1f} ms each",
                }
            )
    rows.append(
        {
            "bench": "canary",
            "case": "  the approval request (public API), in the total",
            "n": rounds,
            "p50_ms": statistics.median(approvals) * 1000,
            "p95_ms": max(approvals) * 1000,
        }
    )
    # moto answers in a few milliseconds; AWS's ECS and ELB APIs take tens. What the share would be at
    # ESTIMATED_AWS_CALL_SECONDS per call, with the same orchestration: an estimate, not a measurement.
    estimate = [
        100 * o / (o + calls * ESTIMATED_AWS_CALL_SECONDS)
        for o, calls in zip(overhead, aws_calls, strict=True)
    ]
    rows.append(
        {
            "bench": "canary",
            "case": f"  orchestration share if AWS took {ESTIMATED_AWS_CALL_SECONDS * 1000:.0f} ms a call",
            "value": statistics.median(estimate),
            "unit": "%",
            "target": "< 20 %",
            "note": "estimate, not measured",
        }
    )
    for key, samples in stage_overheads.items():
        rows.append(
            {
                "bench": "canary",
                "case": f"  orchestration of {key}",
                "n": len(samples),
                "p50_ms": statistics.median(samples) * 1000,
                "p95_ms": max(samples) * 1000,
                "target": "< 500 ms",
            }
        )
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    from bench.__main__ import print_table

    print_table(run(parser.parse_args()))
