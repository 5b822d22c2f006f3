"""The role matrix over HTTP: every portal page and action, for an Admin, an Editor, a Viewer, an outsider
(Admin of another project) and an anonymous caller.

Each row names the URL, what is sent, and the status each persona must get. An action that is refused
writes nothing to project `demo` (its rows and its audit log are compared before and after); an allowed
action by a member of `demo` writes (at least its audit row). The outsider acts in its own project
`other`: on `demo`'s objects it gets 404, and on pages without an object it only ever sees `other`.
"""

from dataclasses import dataclass, field

import pytest
from django.urls import reverse

from apps.accounts.models import PortalSession
from apps.applications.models import Application
from apps.deployments.models import Command
from apps.pipeds.models import Piped, PipedKey
from apps.projects.models import APIKey, AuditEvent, Project, UserGroup

PERSONAS = ("admin", "editor", "viewer", "outsider", "anonymous")


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    url: object  # world -> path
    expect: dict  # persona -> status (anonymous is always a redirect to the login page)
    data: object = field(default=None)  # world -> POST data

    def path(self, world) -> str:
        return self.url(world)


def allowed(admin, editor, viewer, outsider):
    return {"admin": admin, "editor": editor, "viewer": viewer, "outsider": outsider}


def page(name, *args):
    return lambda w: reverse(f"webui:{name}", args=[a(w) if callable(a) else a for a in args])


APP = lambda w: w.app.id  # noqa: E731
WAITING = lambda w: w.waiting.id  # noqa: E731
SLEEPING = lambda w: w.sleeping.id  # noqa: E731
PIPED = lambda w: w.piped.id  # noqa: E731
ROTATING = lambda w: w.rotating_piped.id  # noqa: E731

EVERYONE = allowed(200, 200, 200, 200)
MEMBERS_ONLY = allowed(200, 200, 200, 404)

CASES = [
    # --- Pages -------------------------------------------------------------------------------------------
    Case("home", "get", page("home"), allowed(302, 302, 302, 302)),
    Case("applications", "get", page("applications"), EVERYONE),
    Case("application_add form", "get", page("application_add"), allowed(200, 200, 403, 200)),
    Case(
        "application_add form from a suggestion",
        "get",
        lambda w: reverse("webui:application_add") + f"?suggestion={w.suggestion_key}&fill=suggestion",
        allowed(200, 200, 403, 200),
    ),
    Case("application", "get", page("application", APP), MEMBERS_ONLY),
    Case("application_edit form", "get", page("application_edit", APP), allowed(200, 200, 403, 404)),
    Case("deployments", "get", page("deployments"), EVERYONE),
    Case("deployment", "get", page("deployment", WAITING), MEMBERS_ONLY),
    Case(
        "deployment live fragment",
        "get",
        lambda w: reverse("webui:deployment", args=[w.waiting.id]) + "?fragment=live",
        MEMBERS_ONLY,
    ),
    Case("stage_logs", "get", page("stage_logs", WAITING, "approve"), MEMBERS_ONLY),
    Case(
        "stage_logs tail fragment",
        "get",
        lambda w: reverse("webui:stage_logs", args=[w.waiting.id, "approve"]) + "?after=0.1",
        MEMBERS_ONLY,
    ),
    Case("settings_project", "get", page("settings_project"), EVERYONE),
    Case("settings_pipeds", "get", page("settings_pipeds"), EVERYONE),
    Case("settings_piped_add form", "get", page("settings_piped_add"), allowed(200, 403, 403, 200)),
    Case("settings_piped", "get", page("settings_piped", PIPED), MEMBERS_ONLY),
    Case("settings_user_groups", "get", page("settings_user_groups"), EVERYONE),
    Case("settings_api_keys", "get", page("settings_api_keys"), allowed(200, 403, 403, 200)),
    Case("settings_static_admin", "get", page("settings_static_admin"), EVERYONE),
    Case("settings_audit", "get", page("settings_audit"), allowed(200, 403, 403, 200)),
    Case("settings_sessions", "get", page("settings_sessions"), allowed(200, 403, 403, 200)),
    # --- Application actions -----------------------------------------------------------------------------
    Case(
        "application_add",
        "post",
        page("application_add"),
        # The outsider cannot attach an application to demo's piped: it is not a choice in `other`.
        allowed(302, 302, 403, 400),
        data=lambda w: {
            "name": "new-app",
            "piped": str(w.piped.id),
            "repo_id": "infra",
            "path": "services/new-app",
            "config_filename": "app.pipecd.yaml",
            "platform_provider": "ecs-dev",
            "kind": "ECS",
            "labels": "env: dev",
        },
    ),
    Case(
        "application_add from a suggestion",
        "post",
        page("application_add"),
        # The outsider's form has no demo piped and no demo suggestion to choose.
        allowed(302, 302, 403, 400),
        data=lambda w: {
            "piped": str(w.piped.id),
            "suggestion": w.suggestion_key,
            "platform_provider": "ecs-dev",
            "kind": "ECS",
        },
    ),
    Case(
        "application_sync",
        "post",
        page("application_sync", APP),
        allowed(302, 302, 403, 404),
        data=lambda w: {"strategy": "QUICK_SYNC"},
    ),
    Case(
        "application_edit",
        "post",
        page("application_edit", APP),
        allowed(302, 302, 403, 404),
        data=lambda w: {
            "name": "hello-renamed",
            "piped": str(w.piped.id),
            "platform_provider": "ecs-dev",
            "labels": "env: staging",
            "description": "edited",
        },
    ),
    Case("application_disable", "post", page("application_disable", APP), allowed(302, 302, 403, 404)),
    Case("application_enable", "post", page("application_enable", APP), allowed(302, 302, 403, 404)),
    Case("application_delete", "post", page("application_delete", APP), allowed(302, 302, 403, 404)),
    # --- Deployment actions ------------------------------------------------------------------------------
    Case(
        "deployment_cancel",
        "post",
        page("deployment_cancel", WAITING),
        allowed(302, 302, 403, 404),
        data=lambda w: {"rollback": "yes"},
    ),
    Case("stage_approve", "post", page("stage_approve", WAITING, "approve"), allowed(302, 302, 403, 404)),
    Case("stage_skip", "post", page("stage_skip", SLEEPING, "wait"), allowed(302, 302, 403, 404)),
    # --- Settings actions --------------------------------------------------------------------------------
    Case(
        "settings_project update",
        "post",
        page("settings_project"),
        allowed(302, 403, 403, 302),
        data=lambda w: {"description": "changed", "shared_sso_config": "corp-sso"},
    ),
    Case("settings_webhook_rotate", "post", page("settings_webhook_rotate"), allowed(302, 403, 403, 302)),
    Case(
        "settings_piped_add",
        "post",
        page("settings_piped_add"),
        allowed(201, 403, 403, 201),
        data=lambda w: {"name": "piped-new"},
    ),
    Case(
        "settings_piped update",
        "post",
        page("settings_piped", PIPED),
        allowed(302, 403, 403, 404),
        data=lambda w: {"name": "piped-renamed", "description": "edited"},
    ),
    Case(
        "settings_piped_key_add", "post", page("settings_piped_key_add", PIPED), allowed(201, 403, 403, 404)
    ),
    Case(
        "settings_piped_key_delete",
        "post",
        lambda w: reverse("webui:settings_piped_key_delete", args=[w.rotating_piped.id, w.rotating_key.pk]),
        allowed(302, 403, 403, 404),
    ),
    Case(
        "settings_piped_disable",
        "post",
        page("settings_piped_disable", ROTATING),
        allowed(302, 403, 403, 404),
    ),
    Case(
        "settings_piped_enable", "post", page("settings_piped_enable", ROTATING), allowed(302, 403, 403, 404)
    ),
    Case(
        "settings_user_groups add",
        "post",
        page("settings_user_groups"),
        allowed(302, 403, 403, 302),
        data=lambda w: {"sso_group": "sre", "role": "Viewer"},
    ),
    Case(
        "settings_user_group_delete",
        "post",
        lambda w: reverse("webui:settings_user_group_delete", args=[w.group.pk]),
        allowed(302, 403, 403, 404),
    ),
    Case(
        "settings_api_keys create",
        "post",
        page("settings_api_keys"),
        allowed(201, 403, 403, 201),
        data=lambda w: {"name": "deploy-bot", "role": "READ_WRITE"},
    ),
    Case(
        "settings_api_key_disable",
        "post",
        lambda w: reverse("webui:settings_api_key_disable", args=[w.api_key.pk]),
        allowed(302, 403, 403, 404),
    ),
    Case(
        "settings_api_key_enable",
        "post",
        lambda w: reverse("webui:settings_api_key_enable", args=[w.api_key.pk]),
        allowed(302, 403, 403, 404),
    ),
    Case(
        "settings_api_key_delete",
        "post",
        lambda w: reverse("webui:settings_api_key_delete", args=[w.api_key.pk]),
        allowed(302, 403, 403, 404),
    ),
    Case(
        "settings_static_admin update",
        "post",
        page("settings_static_admin"),
        allowed(302, 403, 403, 302),
        data=lambda w: {
            "username": "root",
            "password": "a-long-password-1",
            "password_again": "a-long-password-1",
        },
    ),
    # `demo` has an SSO config, so its static admin can be disabled; `other` has none: 409.
    Case(
        "settings_static_admin_disable",
        "post",
        page("settings_static_admin_disable"),
        allowed(302, 403, 403, 409),
    ),
    Case(
        "settings_static_admin_enable",
        "post",
        page("settings_static_admin_enable"),
        allowed(302, 403, 403, 302),
    ),
    Case(
        "settings_sessions_end",
        "post",
        page("settings_sessions_end"),
        # victor has sessions in demo only: in `other` there is nobody by that name to log out.
        allowed(302, 403, 403, 404),
        data=lambda w: {"username": "victor"},
    ),
]


def demo_state(project_id: str = "demo") -> tuple:
    """Everything a portal action could change in project demo."""
    return (
        AuditEvent.objects.filter(project_id=project_id).exclude(verb__startswith="login.").count(),
        list(
            Application.objects.filter(project_id=project_id)
            .order_by("id")
            .values_list("id", "name", "labels", "description", "disabled", "deleted", "piped_id")
        ),
        list(
            Piped.objects.filter(project_id=project_id)
            .order_by("id")
            .values_list("id", "name", "description", "disabled")
        ),
        list(
            PipedKey.objects.filter(piped__project_id=project_id).order_by("id").values_list("id", "key_hash")
        ),
        Command.objects.filter(project_id=project_id).count(),
        list(
            UserGroup.objects.filter(project_id=project_id)
            .order_by("id")
            .values_list("id", "sso_group", "role")
        ),
        list(APIKey.objects.filter(project_id=project_id).order_by("id").values_list("id", "disabled")),
        list(
            Project.objects.filter(pk=project_id).values_list(
                "description",
                "shared_sso_config",
                "allow_stray_as_viewer",
                "static_admin_username",
                "static_admin_password",
                "static_admin_disabled",
                "git_webhook_secret",
            )
        ),
        list(
            PortalSession.objects.filter(project_id=project_id)
            .order_by("session_key")
            .values_list("session_key")
        ),
    )


MATRIX = [(case, persona) for case in CASES for persona in PERSONAS]


@pytest.mark.parametrize(
    ("case", "persona"), MATRIX, ids=[f"{case.name}-{persona}" for case, persona in MATRIX]
)
def test_it_answers_each_persona_as_the_role_matrix_says(world, case, persona):
    client = world.clients[persona]
    path = case.path(world)
    data = case.data(world) if case.data else {}
    before = demo_state()

    response = client.get(path) if case.method == "get" else client.post(path, data)

    if persona == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login") + "?next=")
        assert demo_state() == before
        return
    expected = case.expect[persona]
    assert response.status_code == expected, response.content.decode()[:2000]
    if expected == 403:
        assert b"may not" in response.content  # the service's own explanation, not a bare status
    if expected == 404:
        assert b"not found" in response.content.lower()
    wrote = demo_state() != before
    writes_demo = case.method == "post" and expected in (201, 302) and persona != "outsider"
    assert wrote == writes_demo, f"{case.name} as {persona}: expected {'a' if writes_demo else 'no'} write"


@pytest.mark.parametrize("name", ["applications", "deployments", "settings_pipeds", "settings_user_groups"])
def test_it_shows_the_outsider_only_its_own_project(world, name):
    response = world.clients["outsider"].get(reverse(f"webui:{name}"))
    body = response.content.decode()
    assert response.status_code == 200
    for secret_of_demo in ("hello", "payments", "piped-rotating", "platform-team"):
        assert secret_of_demo not in body
    assert ">other<" in body  # the outsider's own project is named in the header


def test_it_covers_every_portal_url(world):
    """A new portal URL must get a row in the matrix: compare the URL names with the table."""
    from apps.webui.urls import urlpatterns

    covered = {case.name.split(" ")[0] for case in CASES}
    assert {p.name for p in urlpatterns} <= covered


@pytest.mark.parametrize("persona", ["admin", "editor", "viewer"])
def test_it_shows_the_role_on_every_page(world, persona):
    for case in CASES:
        if case.method == "get" and case.expect[persona] == 200 and "fragment" not in case.name:
            path = case.path(world)
            response = world.clients[persona].get(path)
            assert (
                f'title="Your role in this project">{persona.capitalize()}</span>'
                in response.content.decode()
            ), path
