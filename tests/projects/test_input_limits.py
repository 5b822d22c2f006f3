"""Text longer than its column, and names that differ only in case: a clear refusal on SQLite and MariaDB."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.core.errors import Conflict, InvalidInput
from apps.projects.choices import APIKeyRole, Role
from apps.projects.models import APIKey, Project, UserGroup
from apps.projects.principal import system_principal
from apps.projects.services import (
    add_user_group,
    create_api_key,
    create_project,
    set_static_admin,
    update_project,
)


def test_a_too_long_api_key_name_is_refused_and_nothing_is_written(project):
    with pytest.raises(InvalidInput, match="longer than 100") as caught:
        create_api_key(system_principal(project.id), project, name="k" * 101, role=APIKeyRole.READ_ONLY)
    assert caught.value.field == "name"
    assert not APIKey.objects.exists()


def test_createapikey_refuses_a_too_long_name_without_a_traceback(project):
    with pytest.raises(CommandError, match="longer than 100"):
        call_command("createapikey", "--project", project.id, "--name", "k" * 101, "--role", "READ_ONLY")


def test_a_too_long_sso_group_is_refused(project):
    with pytest.raises(InvalidInput, match="longer than 200"):
        add_user_group(system_principal(project.id), project, sso_group="g" * 201, role=Role.EDITOR)
    with pytest.raises(CommandError, match="longer than 200"):
        call_command("addusergroup", "--project", project.id, "--sso-group", "g" * 201, "--role", "Editor")
    assert not UserGroup.objects.exists()


def test_a_too_long_shared_sso_name_is_refused(db, project):
    with pytest.raises(CommandError, match="longer than 100"):
        call_command("createproject", "toolong", "--shared-sso", "s" * 101)
    assert not Project.objects.filter(pk="toolong").exists()
    with pytest.raises(InvalidInput, match="longer than 100"):
        update_project(system_principal(project.id), project, shared_sso_config="s" * 101)


def test_a_too_long_static_admin_username_is_refused(project):
    with pytest.raises(InvalidInput, match="longer than 100"):
        set_static_admin(system_principal(project.id), project, username="u" * 101, password="p" * 16)


def test_names_at_the_limit_are_fine(db):
    out = StringIO()
    call_command("createproject", "limits", "--shared-sso", "s" * 100, "--json", stdout=out)
    assert json.loads(out.getvalue().splitlines()[-1])["project"] == "limits"
    project = Project.objects.get(pk="limits")
    create_api_key(system_principal(project.id), project, name="k" * 100, role=APIKeyRole.READ_ONLY)
    add_user_group(system_principal(project.id), project, sso_group="g" * 200, role=Role.VIEWER)


def test_a_group_differing_only_in_case_is_the_same_group_on_every_database(project):
    add_user_group(system_principal(project.id), project, sso_group="Deployers", role=Role.EDITOR)
    with pytest.raises(Conflict, match="without regard to case"):
        add_user_group(system_principal(project.id), project, sso_group="deployers", role=Role.ADMIN)
    assert list(UserGroup.objects.values_list("sso_group", "role")) == [("Deployers", Role.EDITOR)]


def test_an_existing_project_id_is_a_conflict(project):
    with pytest.raises(Conflict, match="already exists"):
        create_project(system_principal(), project.id)
