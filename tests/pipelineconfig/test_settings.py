"""Settings read the control-plane config (PIPEPORTAL_CONFIG_FILE / _DATA) at start-up, in a fresh process."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tests.components import require

from .conftest import SEED, SEED_CONTROL_PLANE_ENV

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeportal.settings")
import django
django.setup()
from django.conf import settings
spec = settings.PIPEPORTAL_CONTROL_PLANE_CONFIG
db = settings.DATABASES["default"]
out = {
    "engine": db["ENGINE"], "name": db["NAME"], "host": db.get("HOST"), "port": db.get("PORT"),
    "user": db.get("USER"), "password": db.get("PASSWORD"),
    "filestore": settings.PIPEPORTAL_FILESTORE,
    "spec": type(spec).__name__ if spec is not None else None,
    "sso": [c.name for c in spec.shared_sso_configs] if spec is not None else [],
}
if os.environ.get("PROBE_CONNECT"):
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        out["select"] = cursor.fetchone()[0]
print(json.dumps(out))
"""


def run_probe(tmp_path, extra_env: dict) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PIPEPORTAL_", "DATABASE_URL", "DJANGO_"))
    }
    env.update({"PIPEPORTAL_VAR_DIR": str(tmp_path / "var"), "SECRET_KEY": "x" * 50, "REDIS_URL": ""})
    env.update(extra_env)
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_without_a_config_file_nothing_changes(tmp_path):
    result = run_probe(tmp_path, {})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert (out["engine"], out["spec"], out["filestore"]) == ("django.db.backends.sqlite3", None, None)


def test_the_seed_config_given_base64_becomes_databases_and_filestore(tmp_path):
    data = base64.b64encode((SEED / "control-plane-config.yaml").read_bytes()).decode()
    result = run_probe(tmp_path, {"PIPEPORTAL_CONFIG_DATA": data, **SEED_CONTROL_PLANE_ENV})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["spec"] == "ControlPlaneSpec"
    assert out["sso"] == ["cognito-azure"]
    assert (out["engine"], out["name"], out["host"], out["port"]) == (
        "django.db.backends.mysql",
        "controlplane",
        "pipecd-mysql",
        3306,
    )
    assert (out["user"], out["password"]) == ("pipecd", "s3cr:t@pass")
    assert out["filestore"]["type"] == "S3"
    assert out["filestore"]["config"]["bucket"] == "dev-zozomo-pipecd-filestore"


def test_database_url_wins_over_the_configs_datastore(tmp_path):
    result = run_probe(
        tmp_path,
        {
            "PIPEPORTAL_CONFIG_FILE": str(SEED / "control-plane-config.yaml"),
            "DATABASE_URL": "mysql://other:pw@db.example.test:3310/portal",
            **SEED_CONTROL_PLANE_ENV,
        },
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert (out["host"], out["name"], out["spec"]) == ("db.example.test", "portal", "ControlPlaneSpec")


def test_a_broken_config_stops_the_start_listing_its_problems(tmp_path):
    broken = tmp_path / "control-plane-config.yaml"
    broken.write_text(
        "apiVersion: pipecd.dev/v1beta1\nkind: ControlPlane\nspec:\n"
        "  datastore:\n    type: MYSQL\n    config: {url: '${DB_USER}@tcp(db:3306)'}\n"
        "  sharedSSOConfigs:\n    - {name: sso, provider: OIDC}\n"
    )
    result = run_probe(tmp_path, {"PIPEPORTAL_CONFIG_FILE": str(broken)})
    assert result.returncode != 0
    assert (
        "django.core.exceptions.ImproperlyConfigured: The control-plane config cannot be used:"
        in result.stderr
    )
    assert (
        f"{broken}:6:20: spec.datastore.config.url: environment variable DB_USER is not set" in result.stderr
    )
    assert f"{broken}:8:7: spec.sharedSSOConfigs[0].oidc: provider OIDC needs a oidc: block" in result.stderr
    assert "pydantic" not in result.stderr


def test_a_datastore_piped_cannot_use_stops_the_start_when_it_is_needed(tmp_path):
    config = tmp_path / "cp.yaml"
    config.write_text(
        "apiVersion: pipecd.dev/v1beta1\nkind: ControlPlane\nspec:\n  datastore:\n    type: FIRESTORE\n"
    )
    result = run_probe(tmp_path, {"PIPEPORTAL_CONFIG_FILE": str(config)})
    assert result.returncode != 0
    assert f"{config}:5:11: spec.datastore.type: PipePortal stores its data in MySQL/MariaDB" in result.stderr
    # With DATABASE_URL set the datastore is not used, so the file is fine.
    result = run_probe(tmp_path, {"PIPEPORTAL_CONFIG_FILE": str(config), "DATABASE_URL": "sqlite:///x.db"})
    assert result.returncode == 0, result.stderr


def test_the_configs_mysql_datastore_reaches_the_real_mariadb(tmp_path):
    url = os.environ.get("DATABASE_URL", "")
    require(url.startswith("mysql://"), "MariaDB (DATABASE_URL=mysql://...)")
    parts = urlsplit(url)
    auth = parts.username or "root"
    if parts.password:
        auth += f":{parts.password}"
    config = tmp_path / "cp.yaml"
    config.write_text(
        "apiVersion: pipecd.dev/v1beta1\nkind: ControlPlane\nspec:\n  datastore:\n    type: MYSQL\n    config:\n"
        f"      url: {auth}@tcp({parts.hostname}:{parts.port or 3306})\n      database: information_schema\n"
    )
    result = run_probe(tmp_path, {"PIPEPORTAL_CONFIG_FILE": str(config), "PROBE_CONNECT": "1"})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert (out["engine"], out["name"], out["select"]) == (
        "django.db.backends.mysql",
        "information_schema",
        1,
    )
