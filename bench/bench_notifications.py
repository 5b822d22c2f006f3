"""Notifications: what an event costs the code that emits it (a stage step, the scheduler), with a healthy
receiver and with one that never answers, and how fast the sender threads deliver to a local receiver.

The control plane is a small local HTTP server answering the two notification calls of the piped API
(`{"new": true}`, `{"received": n}`), so that the numbers are the piped's and the receiver's.
"""

from __future__ import annotations

import base64
import logging
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Receiver:
    """A webhook receiver (`hang`: never answers until stopped), or the control plane's two calls."""

    def __init__(self, hang: bool = False, control_plane: bool = False):
        self.count = 0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are two writes: without this, Nagle and delayed ACKs add 40 ms to each answer.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if hang:
                    receiver.release.wait(60)
                receiver.count += 1
                body = b'{"new": true, "received": 1}' if control_plane else b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _runtime(url: str, control_plane: str, work_dir: Path):
    from apps.pipedagent.config import Knobs, PipedRuntimeConfig
    from apps.pipedagent.runtime import Runtime
    from apps.pipelineconfig import load_piped_config

    text = f"""\
apiVersion: pipecd.dev/v1beta1
kind: Piped
spec:
  projectID: bench
  pipedID: bench-piped
  pipedKeyData: {base64.b64encode(b"key").decode()}
  apiAddress: http://127.0.0.1:1
  notifications:
    routes:
      - name: all
        receiver: hook
    receivers:
      - name: hook
        webhook:
          url: {url}
          signingSecret: bench-secret
"""
    spec = load_piped_config("piped-config.yaml", text=text).spec
    config = PipedRuntimeConfig(
        spec=spec,
        api_url=f"{control_plane}/api/piped/v1",
        key="key",
        work_dir=work_dir,
        knobs=Knobs(),
        insecure=True,
    )
    return Runtime(config)


def _deployment(n: int) -> dict:
    return {
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "application_id": "11111111-1111-1111-1111-111111111111",
        "application_name": "bench-app",
        "kind": "ECS",
        "labels": {"env": "dev"},
        "git_path": {"repo_id": "manifests", "path": "apps/bench", "config_filename": "app.pipecd.yaml"},
        "trigger": {"kind": "ON_COMMIT", "commit": {"hash": f"{n:040x}", "message": "m", "author": "a"}},
        "status": "RUNNING",
        "created_at": "2026-01-01T00:00:00Z",
        "stages": [{"id": "stage-0", "name": "SCRIPT_RUN", "index": 0, "status": "SUCCESS"}],
    }


def _emit_costs(runtime, n: int) -> list[float]:
    from apps.notifications import hooks

    costs = []
    for i in range(n):
        started = time.perf_counter()
        hooks.deployment_status(runtime, _deployment(i), "SUCCESS", "done")
        costs.append((time.perf_counter() - started) * 1000)
    return costs


def _row(case: str, costs: list[float], note: str) -> dict:
    ordered = sorted(costs)
    return {
        "bench": "notifications",
        "case": case,
        "n": len(costs),
        "p50_ms": statistics.median(ordered),
        "p95_ms": ordered[int(len(ordered) * 0.95) - 1],
        "note": note,
    }


def run(args) -> list[dict]:
    import django

    django.setup()
    from django.conf import settings

    logging.getLogger("apps.notifications").setLevel(logging.ERROR)
    settings.PIPED_NOTIFY_TIMEOUT_SECONDS = 1.0
    settings.PIPED_NOTIFY_MAX_ATTEMPTS = 1
    settings.PIPED_NOTIFY_QUEUE_SIZE = 100_000
    n = 200 if args.quick else 2000
    rows = []
    control_plane = _Receiver(control_plane=True)
    cp_url = control_plane.url.removesuffix("/hook")
    with tempfile.TemporaryDirectory() as tmp:
        healthy = _Receiver()
        runtime = _runtime(healthy.url, cp_url, Path(tmp) / "a")
        started = time.monotonic()
        costs = _emit_costs(runtime, n)
        rows.append(_row("emit, healthy receiver", costs, "cost to the caller (route match, event, queue)"))
        while healthy.count < n and time.monotonic() - started < 120:
            time.sleep(0.01)
        took = time.monotonic() - started
        rows.append(
            {
                "bench": "notifications",
                "case": "deliveries to a local webhook",
                "n": healthy.count,
                "total_s": took,
                "value": healthy.count / took,
                "unit": "deliveries/s",
                "note": f"{settings.PIPED_NOTIFY_WORKERS} sender threads, signed bodies",
            }
        )
        runtime._notifier.close(timeout=1)
        healthy.stop()

        hanging = _Receiver(hang=True)
        runtime = _runtime(hanging.url, cp_url, Path(tmp) / "b")
        costs = _emit_costs(runtime, n)
        rows.append(_row("emit, receiver never answers", costs, "the same: waiting is the sender's"))
        hanging.stop()
        runtime._notifier.close(timeout=0.5)
    control_plane.stop()
    return rows
