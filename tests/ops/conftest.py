"""Seeding deployments, stages and logs with chosen times, and starting processes from a checkout."""

import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.deployments.choices import DEPLOYMENT_TERMINAL, STAGE_TERMINAL, StageStatus
from apps.deployments.models import Deployment, Stage, StageLogBlock

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
VENV_BIN = Path(sys.executable).parent


def seed_deployment(
    application,
    *,
    status: str = "SUCCESS",
    age: timedelta = timedelta(0),
    stages: list[tuple[str, str, float]] = (("ECS_SYNC", StageStatus.SUCCESS, 30.0),),
    logs_per_stage: int = 2,
    now: datetime | None = None,
    commit: str = "",
) -> Deployment:
    """A deployment created `age` ago whose stages (name, status, seconds) ran back to back."""
    now = now or timezone.now()
    created = now - age
    deployment = Deployment.objects.create(
        project_id=application.project_id,
        application=application,
        piped_id=application.piped_id,
        application_name=application.name,
        kind="ECS",
        commit_hash=commit or os.urandom(20).hex(),
        status=status,
        metadata={"note": "seeded"},
    )
    started = created
    for index, (name, stage_status, seconds) in enumerate(stages):
        done = stage_status in STAGE_TERMINAL
        stage = Stage.objects.create(
            deployment=deployment,
            stage_id=f"stage-{index}",
            name=name,
            index=index,
            status=stage_status,
        )
        Stage.objects.filter(pk=stage.pk).update(
            started_at=started if stage_status != StageStatus.NOT_STARTED_YET else None,
            completed_at=started + timedelta(seconds=seconds) if done else None,
        )
        StageLogBlock.objects.bulk_create(
            StageLogBlock(stage=stage, index=i, log=f"line {i} of {name}", created_at=started)
            for i in range(logs_per_stage)
        )
        started += timedelta(seconds=seconds)
    completed = started if status in DEPLOYMENT_TERMINAL else None
    Deployment.objects.filter(pk=deployment.pk).update(created_at=created, completed_at=completed)
    deployment.refresh_from_db()
    return deployment


@pytest.fixture
def stop_later():
    """Processes a test starts; each is stopped (SIGTERM, then SIGKILL) when the test ends."""
    procs: list[subprocess.Popen] = []
    yield procs.append
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


class Started:
    """A process started from the checkout whose combined output is collected line by line."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        """The first output line matching `pattern`; fails with the output if none comes in time."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if regex.search(line):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} (exit code {self.proc.poll()}):\n{self.output}")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code; a process that ignores it is killed and the test fails."""
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"did not stop within {timeout}s of SIGTERM:\n{self.output}") from None
        self._reader.join(5)
        return code


@pytest.fixture
def start(stop_later):
    """start(argv, env) -> Started; whatever is still running at the end of the test is stopped."""

    def _start(argv: list[str], env: dict[str, str]) -> Started:
        started = Started(argv, env)
        stop_later(started.proc)
        return started

    return _start


def checkout_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of a role started from the checkout: its own SQLite file and folders, no debug."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_", "CELERY_", "PIPEPORTAL_", "PYTEST_", "DJANGO_"))
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        DEBUG="false",
        SECRET_KEY="test-" + os.urandom(24).hex(),
        PIPEPORTAL_KEY_HASH_SECRET="test-" + os.urandom(24).hex(),
        PIPEPORTAL_VAR_DIR=str(tmp_path / "var"),
        SQLITE_PATH=str(tmp_path / "portal.sqlite3"),
        STATIC_ROOT=str(tmp_path / "static"),
        TMPDIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env
