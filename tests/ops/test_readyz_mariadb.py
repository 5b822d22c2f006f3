"""/readyz of a running web process follows a throwaway MariaDB going down and coming back.

The MariaDB here is our own: its own datadir, port and socket, started with mariadbd directly and
stopped by its PID. The system MariaDB is never touched.
"""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.components import free_port, require, wait_for_port

from .conftest import ENTRYPOINT, checkout_env

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ops-processes")]

MARIADBD = "/usr/sbin/mariadbd"


class ThrowawayMariaDB:
    def __init__(self) -> None:
        # A short path: the socket's path must fit in 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="pp-mdb-"))
        self.datadir = self.root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        installed = subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                f"--datadir={self.datadir}",
                *as_root,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if installed.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {installed.stderr[-2000:]}")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                MARIADBD,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.root / 'mysqld.sock'}",
                f"--pid-file={self.root / 'mysqld.pid'}",
                f"--log-error={self.root / 'error.log'}",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
                *(["--user=root"] if os.geteuid() == 0 else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=60, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # mariadbd shuts down cleanly on SIGTERM
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def execute(self, sql: str) -> None:
        import MySQLdb

        connection = MySQLdb.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=5)
        try:
            connection.cursor().execute(sql)
        finally:
            connection.close()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def mariadb():
    require(
        shutil.which("mariadb-install-db") is not None and Path(MARIADBD).exists(),
        "MariaDB server binaries (mariadb-install-db, mariadbd)",
    )
    server = ThrowawayMariaDB()
    try:
        server.start()
        server.execute("CREATE DATABASE readyz CHARACTER SET utf8mb4")
        yield server
    finally:
        server.remove()


def readyz(base: str) -> requests.Response:
    return requests.get(f"{base}/readyz", timeout=15)


def wait_until(check, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_readyz_answers_503_while_the_database_is_down_and_200_when_it_is_back(mariadb, tmp_path, start):
    port = free_port()
    env = checkout_env(
        tmp_path,
        PORT=str(port),
        HOST="127.0.0.1",
        WEB_CONCURRENCY="2",
        DATABASE_URL=f"mysql://root@127.0.0.1:{mariadb.port}/readyz",
        DATABASE_CONNECT_TIMEOUT="2",
    )
    web = start(["sh", str(ENTRYPOINT), "web"], env)
    wait_for_port(port, timeout=60, proc=web.proc)
    base = f"http://127.0.0.1:{port}"

    # Both workers answer ready while the database runs.
    for _ in range(4):
        response = readyz(base)
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == {"database": "ok", "cache": "ok"}

    mariadb.stop()
    for _ in range(4):
        response = readyz(base)
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"].startswith("fail: ")
        assert body["checks"]["cache"] == "ok"
        # Liveness does not depend on the database: the ALB keeps the task.
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200

    mariadb.start()
    assert wait_until(lambda: readyz(base).status_code == 200), web.output
    for _ in range(4):
        assert readyz(base).status_code == 200

    assert web.terminate() == 0
