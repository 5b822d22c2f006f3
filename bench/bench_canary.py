"""A full canary pipeline with zero waits, against the moto server: how long it takes and how much of that is
the piped's own work (orchestration) rather than AWS calls.

`python -m bench canary`. A control plane runs as real processes (bench_piped's stack: SQLite in a temporary
directory), and the piped talks to it through gunicorn as in production (docker/gunicorn.conf.py; Django's
development server would add ~45 ms to every keep-alive request). The piped is driven in this process,
step after step with no dispatcher tick in between, through its real HTTP client, real Git and the moto
server. The pipeline is
the seed's (canary 20 % → canary traffic 10 % → approval → primary rollout → primary 100 % → canary clean);
the approval is given at once through the public API.

AWS time is measured on the provider's boto3 clients with botocore event hooks, from building a call's
parameters to its parsed answer. Everything else — the piped API calls, Git, planning, the stages' own
logic, the approval request — counts as orchestration.
Targets: orchestration < 20 % of the total and < 0.5 s per stage.
"""

from __future__ import annotations

import os
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


def count_requests(client) -> list[int]:
    """Counts the piped API requests of `client` (the piped's own HTTP client)."""
    counter = [0]
    call = client.call

    def counted(*args, **kwargs):
        counter[0] += 1
        return call(*args, **kwargs)

    client.call = counted
    return counter


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
    env = {
        **stack.env,
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
    and the workers dispatch (plan, the next stage) runs at once, in dispatch order, as Celery would run it
    on an idle worker; no dispatcher tick, no stage tick."""

    def __init__(self, runtime, stack: Stack):
        from apps.pipedagent.scheduler import Scheduler

        self.runtime = runtime
        self.stack = stack
        self.queue: list[tuple[str, str, str]] = []
        runtime.dispatch_now = lambda kind, deployment, stage_id="": self.queue.append(
            (kind, deployment["id"], stage_id)
        )
        self.scheduler = Scheduler(runtime)
        self.scheduler.refresh_apps()

    def poll_git(self) -> None:
        self.scheduler.refresh_apps()
        self.scheduler.pollers["manifests"].poll_once()

    def deploy(self, deployment_id: str, clock: AwsClock) -> dict:
        """Run the deployment to its end; answers its status and per-stage [wall, aws] seconds."""
        from apps.pipedagent import worker

        client = self.runtime.client
        per_stage: dict[str, list[float]] = {}
        names: dict[str, str] = {}
        self.queue.clear()
        self.scheduler.dispatch_once()  # what the scheduler's tick does: here, plan the deployment
        for _ in range(100):
            if not self.queue:
                deployment = client.get_deployment(deployment_id)
                if deployment["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
                    return {
                        "status": deployment["status"],
                        "reason": deployment["status_reason"],
                        "stages": per_stage,
                    }
                waiting = [
                    s
                    for s in deployment["stages"]
                    if s["name"] == "WAIT_APPROVAL" and s["status"] == "RUNNING"
                ]
                if not waiting:
                    raise RuntimeError(f"nothing to do, yet the deployment is {deployment['status']}")
                # The approval, given at once: the public API, then the piped's command poll dispatches it.
                started, aws_before = time.perf_counter(), clock.total
                self.stack.api("POST", f"/deployments/{deployment_id}/stages/{waiting[0]['id']}/approve")
                self.scheduler.poll_commands()
                totals = per_stage.setdefault(f"{waiting[0]['id']} WAIT_APPROVAL", [0.0, 0.0])
                totals[0] += time.perf_counter() - started
                totals[1] += clock.total - aws_before
                continue
            kind, _, stage_id = self.queue.pop(0)
            started, aws_before = time.perf_counter(), clock.total
            if kind == "plan":
                worker.plan_deployment(self.runtime, deployment_id)
                key = "planning"
            else:
                worker.run_stage(self.runtime, deployment_id, stage_id)
                if stage_id not in names:
                    stages = client.get_deployment(deployment_id)["stages"]
                    names.update({s["id"]: f"{s['id']} {s['name']}" for s in stages})
                key = names[stage_id]
            totals = per_stage.setdefault(key, [0.0, 0.0])
            totals[0] += time.perf_counter() - started
            totals[1] += clock.total - aws_before
        raise RuntimeError("the deployment did not end")


def run(args) -> list[dict]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeportal.settings")
    import django

    django.setup()
    from apps.pipedagent.demo_support import render_app
    from apps.pipedagent.platforms.ecs.emulator import create_ecs_environment

    rounds = 2 if getattr(args, "quick", False) else 5
    rows: list[dict] = []
    with moto_server() as endpoint, Stack() as stack, gunicorn(stack) as api_url:
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
        requests_made = count_requests(runtime.client)
        driver = Driver(runtime, stack)
        driver.poll_git()
        first = stack.wait(lambda: stack.deployments(), 30)[0]
        result = driver.deploy(first["id"], clock)
        if result["status"] != "SUCCESS":
            raise RuntimeError(f"the first deployment failed: {result['reason']}")

        totals, aws_totals, stage_overheads, aws_calls, api_calls = [], [], defaultdict(list), [], []
        for n in range(1, rounds + 1):
            stack.repo.write(render_app(values, image_tag=f"v{n}"), under="apps/hello")
            stack.repo.commit_and_push(f"hogehoge v{n}")
            driver.poll_git()
            deployment = stack.wait(
                lambda: stack.deployments()[0] if stack.deployments()[0]["status"] == "PENDING" else None, 30
            )
            aws_before, calls_before, requests_before = clock.total, clock.count, requests_made[0]
            started = time.perf_counter()
            result = driver.deploy(deployment["id"], clock)
            total = time.perf_counter() - started
            if result["status"] != "SUCCESS":
                raise RuntimeError(f"round {n} failed: {result['reason']}")
            totals.append(total)
            aws_totals.append(clock.total - aws_before)
            aws_calls.append(clock.count - calls_before)
            api_calls.append(requests_made[0] - requests_before)
            for key, (wall, aws) in result["stages"].items():
                if key not in ("status",):
                    stage_overheads[key.split(" ", 1)[-1] if key != "planning" else "planning"].append(
                        wall - aws
                    )
            log(f"round {n}: {total:.2f} s, AWS {aws_totals[-1]:.2f} s")

    overhead = [t - a for t, a in zip(totals, aws_totals, strict=True)]
    share = [100 * o / t for o, t in zip(overhead, totals, strict=True)]
    rows.append(
        {
            "bench": "canary",
            "case": "seed canary pipeline, zero waits (total)",
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
            "note": "gunicorn, SQLite",
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
