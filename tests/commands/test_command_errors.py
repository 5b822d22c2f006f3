"""Bad input or a bad environment: every command exits non-zero with a message, never a traceback, and
leaves nothing half-written."""

import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError

from apps.pipedagent.management.commands.demo import Command as DemoCommand
from apps.pipeds.models import Piped, PipedKey
from apps.pipeds.services import register_piped
from apps.projects.management.output import database_name, database_problem
from apps.projects.models import APIKey, AuditEvent
from apps.projects.principal import system_principal

from .processes import manage


def refused(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip() == "", result.stdout  # no JSON object that a script could take for success


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A migrated SQLite database with a project, made outside DEBUG (no secrets but the hash secret)."""
    tmp = tmp_path_factory.mktemp("migrated")
    assert manage(tmp, "migrate", "--noinput", "-v", "0").returncode == 0
    made = manage(tmp, "createproject", "acme", "--json")
    assert made.returncode == 0, made.stderr
    return tmp


def row_counts(tmp: Path) -> list[int]:
    with closing(sqlite3.connect(tmp / "db.sqlite3")) as database:
        return [
            database.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("pipeds_piped", "pipeds_pipedkey", "projects_apikey", "projects_auditevent")
        ]


# --- the key hash secret ----------------------------------------------------------------------------------

SECRET_MISSING = "PIPEPORTAL_KEY_HASH_SECRET is required outside debug"


@pytest.mark.parametrize(
    "args",
    [
        ("registerpiped", "--project", "acme", "--name", "p", "--json"),
        ("createapikey", "--project", "acme", "--name", "ci", "--role", "READ_ONLY", "--json"),
    ],
)
def test_a_key_command_without_the_hash_secret_says_so_and_writes_nothing(migrated, args):
    before = row_counts(migrated)
    refused(manage(migrated, *args), SECRET_MISSING)
    assert row_counts(migrated) == before
    # With the secret the same command works: nothing was left behind to collide with.
    done = manage(migrated, *args, PIPEPORTAL_KEY_HASH_SECRET="s" * 40)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])


def test_registerpiped_checks_the_secret_before_writing(project, settings):
    settings.PIPEPORTAL_KEY_HASH_SECRET = ""
    with pytest.raises(CommandError, match=SECRET_MISSING):
        call_command("registerpiped", "--project", project.id, "--name", "p", "--json")
    with pytest.raises(CommandError, match=SECRET_MISSING):
        call_command("createapikey", "--project", project.id, "--name", "ci", "--role", "READ_WRITE")
    assert not Piped.objects.exists() and not PipedKey.objects.exists() and not APIKey.objects.exists()
    assert not AuditEvent.objects.exclude(verb="project.create").exists()


def test_register_piped_writes_the_piped_and_its_key_together(project, settings):
    """A caller that skips the check still leaves no piped without a key."""
    settings.PIPEPORTAL_KEY_HASH_SECRET = ""
    with pytest.raises(ImproperlyConfigured):
        register_piped(system_principal(project.id), project, name="p")
    assert not Piped.objects.exists()


# --- the database -----------------------------------------------------------------------------------------

DB_COMMANDS = [
    ("createproject", "acme", "--json"),
    ("registerpiped", "--project", "acme", "--name", "p", "--json"),
    ("createapikey", "--project", "acme", "--name", "ci", "--role", "READ_ONLY", "--json"),
    ("addusergroup", "--project", "acme", "--sso-group", "g", "--role", "Admin", "--json"),
    ("timeoutcommands", "--json"),
    ("prune", "--json"),
]


@pytest.mark.parametrize("args", DB_COMMANDS, ids=lambda args: args[0])
def test_a_database_not_migrated_is_named_with_the_fix(tmp_path, args):
    (tmp_path / "db.sqlite3").touch()
    result = manage(tmp_path, *args, PIPEPORTAL_KEY_HASH_SECRET="s" * 40)
    refused(result, f"The SQLite file {tmp_path / 'db.sqlite3'} lacks")
    assert "run `manage.py migrate` first" in result.stderr


@pytest.mark.parametrize("args", DB_COMMANDS[:1] + DB_COMMANDS[-2:], ids=lambda args: args[0])
def test_a_database_that_cannot_be_opened_is_named(tmp_path, args):
    result = manage(tmp_path, *args, SQLITE_PATH=str(tmp_path / "missing" / "db.sqlite3"))
    refused(result, f"Cannot use the SQLite file {tmp_path / 'missing' / 'db.sqlite3'}")


def test_a_database_error_on_a_migrated_database_is_reported_as_it_is(db):
    # Whichever database the suite runs on (SQLite on a laptop, MariaDB in CI): named, then the error as it is.
    message = database_problem(OperationalError("database is locked"))
    assert message == f"The {database_name()} refused the request: database is locked"
    assert database_name().startswith(("SQLite file ", "MySQL database "))


# --- settings and the other commands ----------------------------------------------------------------------


def test_a_bad_setting_is_one_line_and_traceback_still_shows_where(tmp_path):
    refused(manage(tmp_path, "timeoutcommands", LOG_FORMAT="xml"), "LOG_FORMAT='xml': expected plain or json")
    missing = tmp_path / "nope"
    refused(
        manage(tmp_path, "createproject", "x", PIPEPORTAL_KEY_HASH_SECRET_FILE=str(missing)),
        f"PIPEPORTAL_KEY_HASH_SECRET_FILE={missing}: cannot read the file",
    )
    loud = manage(tmp_path, "timeoutcommands", "--traceback", LOG_FORMAT="xml")
    assert loud.returncode != 0 and "Traceback" in loud.stderr


@pytest.mark.parametrize("address", ["https://[::1", "pipecd.example.com:99999", "pipecd.example.com:http"])
def test_piped_refuses_an_api_address_it_cannot_parse(tmp_path, monkeypatch, address):
    monkeypatch.setenv("PIPED_WORK_DIR", str(tmp_path))
    path = tmp_path / "piped-config.yaml"
    path.write_text(
        "apiVersion: pipecd.dev/v1beta1\nkind: Piped\nspec:\n  projectID: demo\n"
        "  pipedID: 11111111-1111-1111-1111-111111111111\n  pipedKeyData: a2V5\n"
        f"  apiAddress: '{address}'\n"
    )
    with pytest.raises(CommandError, match="is neither host:port nor an http"):
        call_command("piped", "--config-file", str(path))


def test_demo_setup_checks_the_hash_secret_before_touching_the_emulator(db, settings, monkeypatch):
    settings.PIPEPORTAL_KEY_HASH_SECRET = ""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # never contacted
    with pytest.raises(CommandError, match=SECRET_MISSING):
        call_command("demo", "--setup-only")


@pytest.mark.parametrize(("text", "message"), [("{not json", "cannot read"), ("[]", "not a JSON object")])
def test_demo_names_saved_credentials_it_cannot_read(tmp_path, text, message):
    path = tmp_path / "demo-credentials.json"
    path.write_text(text)
    with pytest.raises(CommandError, match=message) as caught:
        DemoCommand.saved_credentials(path)
    assert str(path) in str(caught.value) and "delete the file" in str(caught.value)
    assert DemoCommand.saved_credentials(tmp_path / "absent.json") == {}
