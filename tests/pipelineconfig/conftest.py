"""Fixtures for the config loader tests: where PipeCD's files and the seed's files are, and the seed's env."""

import base64
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PIPECD = FIXTURES / "pipecd"
EXAMPLES = PIPECD / "examples" / "ecs"
TESTDATA = PIPECD / "testdata" / "pkg" / "config" / "testdata"
SEED = FIXTURES / "seed"

# The values the seed's `${...}` placeholders take in these tests (made up; no real secret anywhere).
SEED_CONTROL_PLANE_ENV = {
    "DB_USER": "pipecd",
    "DB_PASS": "s3cr:t@pass",
    "ENV": "dev",
    "RESOURCE_PREFIX": "zozomo",
    "statekey": "state-key-for-tests",
    "clientId": "client-id-for-tests",
    "clientSecret": "client-secret-for-tests",
    "userPoolId": "ap-northeast-1_TESTPOOL",
    "DOMAIN": "example.test",
}


@pytest.fixture
def seed_piped_env():
    return {
        "PROJECT_ID": "your-project-dev",
        "PIPED_ID": "piped-for-tests",
        "PIPED_KEY_DATA": base64.b64encode(b"the-piped-key\n").decode(),
        "DOMAIN": "example.test",
        "SSH_KEY_DATA": base64.b64encode(b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n").decode(),
        "REPO": "manifests",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.test/services/T000/B000/XXXX",
    }


@pytest.fixture
def seed_app_dir(tmp_path):
    """A copy of the seed's manifests, to be changed by a test."""
    target = tmp_path / "hogehoge"
    target.mkdir()
    for name in ("app.pipecd.yaml", "servicedef.yaml", "taskdef.yaml"):
        shutil.copy(SEED / name, target / name)
    return target


@pytest.fixture
def write(tmp_path):
    """write("name.yaml", text) -> Path: a file under the test's temporary folder."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write
