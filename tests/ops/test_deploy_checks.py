"""`manage.py check --deploy` with production-like settings: what is left is a deliberate choice (HSTS)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def deploy_check(tmp_path, **extra) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPEPORTAL_", "DJANGO_", "SECURE_"))}
    env.update(
        {
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "PIPEPORTAL_KEY_HASH_SECRET": secrets.token_urlsafe(40),
            "PIPEPORTAL_BASE_URL": "https://portal.example.com",
            "PIPEPORTAL_VAR_DIR": str(tmp_path / "var"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}",
            "REDIS_URL": "",
            **extra,
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout + result.stderr


def test_an_https_portal_redirects_plain_http(tmp_path):
    output = deploy_check(tmp_path)
    assert "security.W008" not in output
    # Left to the operator on purpose: a browser that saw HSTS refuses http to the host for its lifetime.
    assert "security.W004" in output
    assert "identified 1 issue" in output


def test_the_redirect_and_hsts_are_settings(tmp_path):
    output = deploy_check(tmp_path, SECURE_SSL_REDIRECT="false", SECURE_HSTS_SECONDS="3600")
    assert "security.W008" in output
    assert "security.W004" not in output


def test_an_http_portal_does_not_redirect(tmp_path):
    output = deploy_check(tmp_path, PIPEPORTAL_BASE_URL="http://portal.internal:8000")
    assert "security.W008" in output
