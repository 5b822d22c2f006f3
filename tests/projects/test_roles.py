"""The role table (`apps/projects/roles.py:POLICY`) checked cell by cell against issue 2's matrix."""

import itertools

import pytest

from apps.projects.choices import APIKeyRole, Role
from apps.projects.principal import Principal
from apps.projects.roles import POLICY, Action, Resource, can

LIST, GET, CREATE, UPDATE, DELETE = "list", "get", "create", "update", "delete"
READ = {LIST, GET}
EVERYTHING = {LIST, GET, CREATE, UPDATE, DELETE}

# The matrix, written out: role -> resource -> the actions allowed.
#   applications: list/get for all; create/update(sync)/delete for Admin and Editor
#   deployments:  list/get for all; cancel/approve/skip (update) for Admin and Editor
#   pipeds:       list/get for all; register/update/rotate key/disable for Admin only
#   project settings, user groups, SSO, static admin: Admin all; Editor and Viewer get
#   API keys: Admin only; the audit log: Admin only
# API keys: READ_ONLY reads; READ_WRITE is an Editor plus registering pipeds; no key manages the project.
EXPECTED = {
    Role.ADMIN: {
        "application": EVERYTHING,
        "deployment": EVERYTHING,
        "piped": EVERYTHING,
        "project": EVERYTHING,
        "apikey": EVERYTHING,
        "audit": EVERYTHING,
    },
    Role.EDITOR: {
        "application": EVERYTHING,
        "deployment": EVERYTHING,
        "piped": READ,
        "project": READ,
        "apikey": set(),
        "audit": set(),
    },
    Role.VIEWER: {
        "application": READ,
        "deployment": READ,
        "piped": READ,
        "project": READ,
        "apikey": set(),
        "audit": set(),
    },
    APIKeyRole.READ_ONLY: {
        "application": READ,
        "deployment": READ,
        "piped": READ,
        "project": set(),
        "apikey": set(),
        "audit": set(),
    },
    APIKeyRole.READ_WRITE: {
        "application": EVERYTHING,
        "deployment": EVERYTHING,
        "piped": READ | {CREATE},
        "project": set(),
        "apikey": set(),
        "audit": set(),
    },
}
ROLES = list(EXPECTED)
CELLS = list(itertools.product(ROLES, Resource.values, Action.values))


def test_the_table_names_every_role_resource_and_action():
    assert set(POLICY) == set(ROLES)
    assert set(Resource.values) == {"application", "deployment", "piped", "project", "apikey", "audit"}
    assert set(Action.values) == EVERYTHING
    for role in ROLES:
        assert set(POLICY[role]) <= set(Resource.values)


@pytest.mark.parametrize(("role", "resource", "action"), CELLS)
def test_policy_cell(role, resource, action):
    assert can(role, resource, action) is (action in EXPECTED[role][resource])


@pytest.mark.parametrize("role", [None, "", "Owner", "admin", "READ-WRITE"])
def test_an_unknown_or_missing_role_may_do_nothing(role):
    assert not any(can(role, resource, action) for resource, action in itertools.product(Resource, Action))


def test_a_principal_asks_the_same_table():
    editor = Principal(project_id="demo", kind="user", name="erin", role=Role.EDITOR)
    assert editor.can("deployment", "update") and not editor.can("piped", "create")
    bot = Principal(project_id="demo", kind="apikey", name="ci", role=APIKeyRole.READ_WRITE)
    assert bot.can("piped", "create") and not bot.can("piped", "update")
    assert bot.identity == "apikey:ci"
