"""Running `manage.py` as an operator or a script does: a real process with the environment the test chooses."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Whatever the machine or CI sets: these tests choose the database, the debug mode and the secrets.
CLEARED = (
    "DATABASE_URL",
    "REDIS_URL",
    "PYTEST_CURRENT_TEST",
    "DEBUG",
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "PIPEPORTAL_KEY_HASH_SECRET",
    "PIPEPORTAL_KEY_HASH_SECRET_FILE",
    "LOG_FORMAT",
)


def manage(tmp: Path, *args, **env) -> subprocess.CompletedProcess:
    """`manage.py ARGS` as an operator runs it: a real process, outside DEBUG unless told."""
    environment = {k: v for k, v in os.environ.items() if k not in CLEARED}
    environment.update(SQLITE_PATH=str(tmp / "db.sqlite3"), PIPEPORTAL_VAR_DIR=str(tmp / "var"))
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
