"""gunicorn settings for the `web` role: the bind address, workers and logging come from the environment."""

import os
import shutil
from pathlib import Path

chdir = str(Path(__file__).resolve().parent.parent)
bind = [f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"]  # noqa: S104 - in a container
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 20
keepalive = 75  # longer than the ALB's 60 s idle timeout, so the ALB closes idle connections first
# The ALB terminates TLS and sets X-Forwarded-*; it is the only peer that reaches this port.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
# /dev/shm keeps the worker heartbeat files off a slow or read-only overlay filesystem (gunicorn creates
# them with mkstemp, so a shared folder is safe).
SHM = Path("/dev/shm")  # noqa: S108
worker_tmp_dir = str(SHM) if SHM.is_dir() else None
# One process per container: the runtime's control interface is not needed.
control_socket_disable = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None

if os.environ.get("LOG_FORMAT", "").lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "apps.ops.logging.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }


def on_starting(server):
    """Start every boot with an empty metrics folder: files of a previous run would add stale samples."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        Path(folder).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
