"""The scripting commands: createproject, registerpiped, createapikey, addusergroup, timeoutcommands."""

import base64
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from apps.deployments.choices import CommandStatus, CommandType
from apps.deployments.models import Command
from apps.pipeds.services import authenticate_piped
from apps.projects.models import APIKey, AuditEvent, Project, UserGroup
from apps.projects.services import authenticate_api_key, check_static_admin_password
from tests.api.conftest import make_deployment

from .processes import manage as run_manage


def run(*args) -> tuple[dict, str]:
    """Call a command with --json; returns the JSON object on the last line and the whole output."""
    out = StringIO()
    call_command(*args, "--json", stdout=out)
    text = out.getvalue()
    return json.loads(text.strip().splitlines()[-1]), text


def test_createproject_prints_a_static_admin_that_can_log_in(db):
    result, _ = run("createproject", "shop", "--desc", "The shop", "--shared-sso", "cognito-azure")
    assert set(result) == {"project", "username", "password"}
    project = Project.objects.get(pk="shop")
    assert (project.description, project.shared_sso_config) == ("The shop", "cognito-azure")
    assert check_static_admin_password(project, result["username"], result["password"])
    assert result["password"] not in project.static_admin_password
    assert AuditEvent.objects.filter(verb="project.create", project_id="shop").exists()


def test_createproject_without_json_says_it_in_words(db):
    out = StringIO()
    call_command("createproject", "words", stdout=out)
    assert "Created project words." in out.getvalue() and "shown only now" in out.getvalue()


@pytest.mark.parametrize(
    ("project_id", "message"),
    [("Bad_ID", "lowercase letters"), ("dash-", "lowercase letters"), ("x" * 51, "1 to 50")],
)
def test_createproject_refuses_a_bad_id(db, project_id, message):
    with pytest.raises(CommandError, match=message):
        run("createproject", project_id)
    assert not Project.objects.exists()


def test_createproject_refuses_an_existing_id(project):
    with pytest.raises(CommandError, match="already exists"):
        run("createproject", project.id)
    assert Project.objects.count() == 1


def test_registerpiped_prints_a_key_that_authenticates(project):
    result, _ = run("registerpiped", "--project", project.id, "--name", "piped-a", "--desc", "VPC a")
    assert set(result) == {"piped_id", "piped_key", "piped_key_base64"}
    assert base64.b64decode(result["piped_key_base64"]).decode() == result["piped_key"]
    piped = authenticate_piped(project.id, result["piped_id"], result["piped_key"])
    assert (piped.name, piped.description) == ("piped-a", "VPC a")


def test_registerpiped_refuses_an_unknown_project_and_a_duplicate_name(project):
    with pytest.raises(CommandError, match="Project 'nope' not found"):
        run("registerpiped", "--project", "nope", "--name", "piped-a")
    run("registerpiped", "--project", project.id, "--name", "piped-a")
    with pytest.raises(CommandError, match="already exists"):
        run("registerpiped", "--project", project.id, "--name", "piped-a")
    assert project.pipeds.count() == 1


@pytest.mark.parametrize("role", ["READ_ONLY", "READ_WRITE"])
def test_createapikey_prints_a_key_that_authenticates_with_its_role(project, role):
    result, _ = run("createapikey", "--project", project.id, "--name", "ci", "--role", role)
    assert set(result) == {"api_key"}
    api_key = authenticate_api_key(result["api_key"])
    assert (api_key.project_id, api_key.name, api_key.role) == (project.id, "ci", role)
    assert result["api_key"].split(".", 1)[1] not in api_key.key_hash


def test_createapikey_refuses_bad_input(project):
    with pytest.raises(CommandError, match="invalid choice: 'ADMIN'"):
        run("createapikey", "--project", project.id, "--name", "ci", "--role", "ADMIN")
    with pytest.raises(CommandError, match="not found"):
        run("createapikey", "--project", "nope", "--name", "ci", "--role", "READ_ONLY")
    with pytest.raises(CommandError, match="must not be empty"):
        run("createapikey", "--project", project.id, "--name", " ", "--role", "READ_ONLY")
    run("createapikey", "--project", project.id, "--name", "ci", "--role", "READ_ONLY")
    with pytest.raises(CommandError, match="already exists"):
        run("createapikey", "--project", project.id, "--name", "ci", "--role", "READ_ONLY")
    assert APIKey.objects.count() == 1


def test_addusergroup_maps_a_group_to_a_role(project):
    result, _ = run(
        "addusergroup", "--project", project.id, "--sso-group", "platform-team", "--role", "Editor"
    )
    assert result == {"project": project.id, "sso_group": "platform-team", "role": "Editor"}
    assert UserGroup.objects.get(project=project, sso_group="platform-team").role == "Editor"
    with pytest.raises(CommandError, match="already mapped"):
        run("addusergroup", "--project", project.id, "--sso-group", "platform-team", "--role", "Viewer")
    with pytest.raises(CommandError, match="invalid choice: 'Owner'"):
        run("addusergroup", "--project", project.id, "--sso-group", "x", "--role", "Owner")
    assert UserGroup.objects.count() == 1


def test_timeoutcommands_times_out_only_stale_unhandled_commands(deployment_for_commands):
    deployment = deployment_for_commands

    def command(age_hours, status=CommandStatus.NOT_HANDLED_YET):
        made = Command.objects.create(
            project_id=deployment.project_id,
            piped_id=deployment.piped_id,
            deployment=deployment,
            type=CommandType.CANCEL_DEPLOYMENT,
            commander="erin",
            status=status,
        )
        Command.objects.filter(pk=made.pk).update(created_at=timezone.now() - timedelta(hours=age_hours))
        return made.pk

    stale, fresh, handled = command(25), command(23), command(30, CommandStatus.SUCCEEDED)
    result, _ = run("timeoutcommands")
    assert result == {"timed_out": 1}
    statuses = dict(Command.objects.values_list("pk", "status"))
    assert statuses == {stale: "TIMEOUT", fresh: "NOT_HANDLED_YET", handled: "SUCCEEDED"}
    assert Command.objects.get(pk=stale).handled_at is not None
    out = StringIO()
    call_command("timeoutcommands", stdout=out)
    assert out.getvalue().startswith("0 command(s)")


@pytest.fixture
def deployment_for_commands(application):
    return make_deployment(application)


def test_a_refused_command_exits_non_zero_without_a_traceback(tmp_path):
    """Run as scripts run it: a real process on its own SQLite database."""

    def manage(*args):
        return run_manage(tmp_path, *args, DEBUG="true")

    assert manage("migrate", "--noinput", "-v", "0").returncode == 0
    first = manage("createproject", "acme", "--json")
    assert first.returncode == 0, first.stderr
    assert set(json.loads(first.stdout.strip().splitlines()[-1])) == {"project", "username", "password"}
    again = manage("createproject", "acme", "--json")
    assert again.returncode == 1
    assert "CommandError: Project 'acme' already exists." in again.stderr
    assert "Traceback" not in again.stderr
    bad_role = manage("createapikey", "--project", "acme", "--name", "ci", "--role", "root")
    assert bad_role.returncode != 0 and "invalid choice: 'root'" in bad_role.stderr
    assert "Traceback" not in bad_role.stderr
