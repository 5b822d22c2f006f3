"""Starting the piped: apiAddress rules, --config-data, and the clear refusals of `manage.py piped`."""

import base64

import pytest
from django.core.management import CommandError, call_command

from apps.pipedagent.config import PipedConfigError, api_base_url, load_runtime_config

from .conftest import piped_config_text


@pytest.mark.parametrize(
    ("address", "insecure", "expected"),
    [
        ("pipecd.example.com:443", False, "https://pipecd.example.com:443/api/piped/v1"),
        ("pipecd.example.com", False, "https://pipecd.example.com/api/piped/v1"),
        ("https://pipecd.example.com/", False, "https://pipecd.example.com/api/piped/v1"),
        ("https://example.com/pipeportal", False, "https://example.com/pipeportal/api/piped/v1"),
        ("http://127.0.0.1:8000", True, "http://127.0.0.1:8000/api/piped/v1"),
    ],
)
def test_api_address_becomes_the_piped_api_url(address, insecure, expected):
    assert api_base_url(address, insecure=insecure) == expected


def test_plain_http_needs_insecure():
    with pytest.raises(PipedConfigError, match="--insecure"):
        api_base_url("http://pipecd.example.com", insecure=False)


@pytest.mark.parametrize("address", ["", "ftp://host", "https://"])
def test_nonsense_addresses_are_refused(address):
    with pytest.raises(PipedConfigError):
        api_base_url(address, insecure=True)


def config_text(api="https://pipecd.example.com:443") -> str:
    return piped_config_text(
        "demo", "8d7609e0-9ff6-4dc7-a5ac-39660768606a", "the-key", "file:///srv/git/m.git", api=api
    )


def test_config_data_is_read_like_a_file(tmp_path):
    data = base64.b64encode(config_text().encode()).decode()
    loaded = load_runtime_config(config_data=data, work_dir=str(tmp_path))
    assert loaded.key == "the-key"
    assert loaded.api_url == "https://pipecd.example.com:443/api/piped/v1"
    assert loaded.queue == "piped-8d7609e0-9ff6-4dc7-a5ac-39660768606a"
    assert loaded.work_dir == tmp_path / "8d7609e0-9ff6-4dc7-a5ac-39660768606a"
    assert "the-key" not in loaded.masked_config()
    assert loaded.repositories() == [
        {"repo_id": "manifests", "remote": "file:///srv/git/m.git", "branch": "main"}
    ]


def test_config_data_that_is_not_base64_is_refused(tmp_path):
    with pytest.raises(PipedConfigError, match="not base64"):
        load_runtime_config(config_data="not base64 !!", work_dir=str(tmp_path))


def test_an_invalid_config_names_the_problem(tmp_path):
    path = tmp_path / "piped-config.yaml"
    path.write_text(config_text().replace("  projectID: demo\n", ""))
    with pytest.raises(PipedConfigError) as caught:
        load_runtime_config(config_file=str(path), work_dir=str(tmp_path))
    assert "projectID" in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_a_misspelled_key_is_a_warning_with_its_line(tmp_path):
    path = tmp_path / "piped-config.yaml"
    path.write_text(config_text().replace("  syncInterval:", "  syncIntervl:"))
    loaded = load_runtime_config(config_file=str(path), work_dir=str(tmp_path))
    assert any("syncIntervl" in w and "piped-config.yaml:8:3" in w for w in loaded.warnings), loaded.warnings


def test_the_command_refuses_plain_http_without_insecure(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPED_WORK_DIR", str(tmp_path))
    path = tmp_path / "piped-config.yaml"
    path.write_text(config_text(api="http://pipecd.example.com"))
    with pytest.raises(CommandError, match="plain HTTP"):
        call_command("piped", "--config-file", str(path))


def test_the_command_refuses_a_missing_file_and_a_role_without_broker(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("piped", "--config-file", str(tmp_path / "nope.yaml"))
    with pytest.raises(CommandError, match="--role needs --broker"):
        call_command("piped", "--config-file", str(tmp_path / "nope.yaml"), "--role", "worker")
    with pytest.raises(CommandError, match="only Redis brokers"):
        call_command("piped", "--config-file", str(tmp_path / "nope.yaml"), "--broker", "amqp://x")
