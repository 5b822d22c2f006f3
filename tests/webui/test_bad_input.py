"""Bad input gets a clear 4xx answer that names the problem, and writes nothing."""

import uuid

import pytest
from django.urls import reverse

from apps.applications.models import Application
from apps.deployments.choices import CommandType
from apps.deployments.models import Command

from .test_role_matrix import demo_state


def add_form(world, **overrides):
    data = {
        "name": "new-app",
        "piped": str(world.piped.id),
        "repo_id": "infra",
        "path": "services/new-app",
        "config_filename": "app.pipecd.yaml",
        "platform_provider": "ecs-dev",
        "kind": "ECS",
        "labels": "env: dev",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"path": "../secrets"}, 400, "&#x27;..&#x27; is not allowed"),
        ({"path": "services/../../etc"}, 400, "&#x27;..&#x27; is not allowed"),
        ({"path": "/etc/app"}, 400, "no leading &#x27;/&#x27;"),
        ({"config_filename": "../app.pipecd.yaml"}, 400, "file name, without a directory"),
        ({"kind": "MAINFRAME"}, 400, "Select a valid choice"),
        ({"kind": "KUBERNETES"}, 400, "not deployed by PipePortal yet"),
        ({"piped": str(uuid.uuid4())}, 400, "Select a valid choice"),
        ({"piped": "not-a-uuid"}, 400, "Select a valid choice"),
        ({"repo_id": "unknown-repo"}, 400, "does not report a repository &#x27;unknown-repo&#x27;"),
        ({"repo_id": ""}, 400, "Choose one of the piped&#x27;s repositories"),
        ({"platform_provider": "gke"}, 400, "has no platform provider named &#x27;gke&#x27;"),
        ({"labels": "env dev"}, 400, "expected key: value"),
        ({"name": ""}, 400, "This field is required"),
        ({"name": "x" * 101}, 400, "at most 100 characters"),
        # Same piped, repository, path and config file as `hello`: the service refuses a duplicate.
        ({"repo_id": "manifests", "path": "./apps/hello/"}, 409, "already exists"),
    ],
)
def test_it_refuses_a_bad_application_and_writes_nothing(world, overrides, status, message):
    before = demo_state()
    response = world.clients["editor"].post(reverse("webui:application_add"), add_form(world, **overrides))
    assert response.status_code == status
    assert message in response.content.decode()
    assert demo_state() == before


def test_it_names_the_piped_when_its_repository_does_not_match(world):
    """Without JavaScript every piped's repositories are offered; the pair must still match."""
    world.rotating_piped.repositories = [{"repo_id": "elsewhere", "remote": "x", "branch": "main"}]
    world.rotating_piped.save(update_fields=["repositories"])
    before = demo_state()
    response = world.clients["editor"].post(
        reverse("webui:application_add"), add_form(world, repo_id="elsewhere")
    )
    assert response.status_code == 400
    assert "does not report a repository &#x27;elsewhere&#x27;; it reports: manifests, infra" in (
        response.content.decode()
    )
    assert demo_state() == before


def test_it_adds_an_application_with_a_normalised_path(world):
    response = world.clients["editor"].post(
        reverse("webui:application_add"),
        add_form(world, path="./services/new-app/", labels="env: dev\nteam: web"),
    )
    app = Application.objects.get(name="new-app")
    assert response.status_code == 302
    assert response["Location"] == reverse("webui:application", args=[app.id])
    assert (app.path, app.labels, app.repo_id) == ("services/new-app", {"env": "dev", "team": "web"}, "infra")


def test_it_offers_only_the_chosen_pipeds_repositories(world):
    """What htmx asks for when the piped select changes: the form for that piped alone."""
    response = world.clients["editor"].get(
        reverse("webui:application_add"), {"piped": str(world.other_piped.id)}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="app-source"' in body
    # other-piped is in another project: not offered, so every demo piped's repositories are shown.
    assert str(world.other_piped.id) not in body
    response = world.clients["editor"].get(reverse("webui:application_add"), {"piped": str(world.piped.id)})
    assert '<optgroup label="piped-1">' in response.content.decode()
    assert '<optgroup label="piped-rotating">' not in response.content.decode()


@pytest.mark.parametrize(
    ("name", "data", "status", "message"),
    [
        ("application_sync", {"strategy": "YOLO"}, 400, "Select a valid choice"),
        ("application_sync", {}, 400, "This field is required"),
        (
            "application_edit",
            {"name": "", "piped": "x", "platform_provider": ""},
            400,
            "This field is required",
        ),
        (
            "application_edit",
            {"name": "n", "piped": str(uuid.uuid4()), "platform_provider": "p"},
            400,
            "Select a valid choice",
        ),
        (
            "application_edit",
            {"name": "n", "piped": "", "platform_provider": "p", "labels": ":x"},
            400,
            "expected key: value",
        ),
    ],
)
def test_it_refuses_bad_application_actions(world, name, data, status, message):
    before = demo_state()
    response = world.clients["editor"].post(reverse(f"webui:{name}", args=[world.app.id]), data)
    assert response.status_code == status
    assert message in response.content.decode()
    assert demo_state() == before


def test_it_refuses_to_sync_a_disabled_application(world):
    world.clients["editor"].post(reverse("webui:application_disable", args=[world.app.id]))
    before = demo_state()
    response = world.clients["editor"].post(
        reverse("webui:application_sync", args=[world.app.id]), {"strategy": "AUTO"}
    )
    assert response.status_code == 409
    assert "enable it before syncing" in response.content.decode()
    assert demo_state() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", lambda w: reverse("webui:application", args=[uuid.uuid4()])),
        ("post", lambda w: reverse("webui:application_sync", args=[uuid.uuid4()])),
        ("get", lambda w: reverse("webui:deployment", args=[uuid.uuid4()])),
        ("post", lambda w: reverse("webui:stage_approve", args=[w.waiting.id, "no-such-stage"])),
        ("post", lambda w: reverse("webui:stage_skip", args=[w.waiting.id, "no-such-stage"])),
        ("get", lambda w: reverse("webui:stage_logs", args=[w.waiting.id, "no-such-stage"])),
        ("get", lambda w: reverse("webui:settings_piped", args=[uuid.uuid4()])),
        ("post", lambda w: reverse("webui:settings_piped_key_delete", args=[w.piped.id, 999999])),
        ("post", lambda w: reverse("webui:settings_user_group_delete", args=[999999])),
        ("post", lambda w: reverse("webui:settings_api_key_disable", args=["nope"])),
        ("get", lambda w: "/applications/not-a-uuid/"),
        ("get", lambda w: "/deployments/../settings/"),
    ],
)
def test_it_answers_404_for_unknown_ids_and_writes_nothing(world, method, path):
    before = demo_state()
    response = getattr(world.clients["admin"], method)(path(world))
    assert response.status_code == 404
    assert demo_state() == before


def test_it_does_not_show_a_deleted_application(world):
    world.clients["admin"].post(reverse("webui:application_delete", args=[world.app.id]))
    assert world.clients["admin"].get(reverse("webui:application", args=[world.app.id])).status_code == 404
    # Its deployments stay visible: the history is kept.
    assert world.clients["admin"].get(reverse("webui:deployment", args=[world.waiting.id])).status_code == 200


@pytest.mark.parametrize(
    ("name", "query", "message"),
    [
        ("applications", {"kind": "MAINFRAME"}, "Select a valid choice"),
        ("applications", {"sync_status": "MAYBE"}, "Select a valid choice"),
        ("applications", {"labels": "env"}, "expected key:value"),
        ("deployments", {"status": "DONE"}, "Select a valid choice"),
        ("deployments", {"labels": ":dev"}, "expected key:value"),
        ("deployments", {"cursor": "garbage!"}, "cursor is not valid"),
        ("settings_audit", {"before": "-3"}, "greater than or equal to 1"),
    ],
)
def test_it_refuses_bad_filters(world, name, query, message):
    response = world.clients["admin"].get(reverse(f"webui:{name}"), query)
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.parametrize(
    ("name", "data", "status", "message"),
    [
        ("settings_user_groups", {"sso_group": "ops", "role": "Owner"}, 400, "Select a valid choice"),
        ("settings_user_groups", {"sso_group": "platform-team", "role": "Viewer"}, 409, "already mapped"),
        ("settings_user_groups", {"sso_group": "", "role": "Viewer"}, 400, "This field is required"),
        ("settings_api_keys", {"name": "x", "role": "GOD_MODE"}, 400, "Select a valid choice"),
        ("settings_api_keys", {"name": "ci", "role": "READ_ONLY"}, 409, "already exists"),
        (
            "settings_static_admin",
            {"username": "root", "password": "short", "password_again": "short"},
            400,
            "at least 12",
        ),
        (
            "settings_static_admin",
            {"username": "root", "password": "a-long-password-1", "password_again": "another-password"},
            400,
            "differ",
        ),
        (
            "settings_static_admin",
            {"username": " ", "password": "a-long-password-1", "password_again": "a-long-password-1"},
            400,
            "This field is required",
        ),
        ("settings_piped_add", {"name": ""}, 400, "This field is required"),
        ("settings_piped_add", {"name": "piped-1"}, 409, "already exists"),
        ("settings_sessions_end", {"username": ""}, 400, "This field is required"),
        ("settings_sessions_end", {"username": "nobody"}, 404, "has no session"),
        ("settings_static_admin_disable", {}, 409, "Attach an SSO config"),
    ],
)
def test_it_refuses_bad_settings(world, name, data, status, message):
    if name == "settings_static_admin_disable":
        world.project.shared_sso_config = ""
        world.project.save(update_fields=["shared_sso_config"])
    before = demo_state()
    response = world.clients["admin"].post(reverse(f"webui:{name}"), data)
    assert response.status_code == status
    assert message in response.content.decode()
    assert demo_state() == before


def test_it_refuses_a_third_piped_key_and_deleting_the_only_one(world):
    before = demo_state()
    response = world.clients["admin"].post(
        reverse("webui:settings_piped_key_add", args=[world.rotating_piped.id])
    )
    assert response.status_code == 409
    assert "at most 2 keys" in response.content.decode()
    only_key = world.piped.keys.get()
    response = world.clients["admin"].post(
        reverse("webui:settings_piped_key_delete", args=[world.piped.id, only_key.pk])
    )
    assert response.status_code == 409
    assert "only key" in response.content.decode()
    assert demo_state() == before


def test_it_refuses_a_piped_rename_to_a_taken_name(world):
    before = demo_state()
    response = world.clients["admin"].post(
        reverse("webui:settings_piped", args=[world.piped.id]), {"name": "piped-rotating"}
    )
    assert response.status_code == 409
    assert "already exists" in response.content.decode()
    assert demo_state() == before


# --- Deployments ----------------------------------------------------------------------------------------


def test_it_refuses_a_second_approval_by_the_same_person(world):
    url = reverse("webui:stage_approve", args=[world.waiting.id, "approve"])
    assert world.clients["editor"].post(url).status_code == 302
    before = demo_state()
    response = world.clients["editor"].post(url)
    assert response.status_code == 409
    assert "already approved" in response.content.decode()
    assert demo_state() == before
    assert Command.objects.filter(type=CommandType.APPROVE_STAGE, commander="erin").count() == 1


def test_it_refuses_an_approver_not_on_the_list(world):
    world.waiting.stages.filter(stage_id="approve").update(authorized_approvers=["alice"])
    before = demo_state()
    response = world.clients["editor"].post(
        reverse("webui:stage_approve", args=[world.waiting.id, "approve"])
    )
    assert response.status_code == 403
    assert "not an approver" in response.content.decode()
    assert demo_state() == before
    page = world.clients["editor"].get(reverse("webui:deployment", args=[world.waiting.id])).content.decode()
    assert "Only the listed approvers may approve" in page
    assert 'class="primary approve"' not in page
    page = world.clients["admin"].get(reverse("webui:deployment", args=[world.waiting.id])).content.decode()
    assert 'class="primary approve"' in page  # alice is on the list


@pytest.mark.parametrize(
    ("stage", "action", "message"),
    [
        ("canary-rollout", "approve", "not an approval stage"),
        ("primary-rollout", "skip", "cannot be skipped"),
        ("approve", "skip", "cannot be skipped"),
    ],
)
def test_it_refuses_actions_on_the_wrong_stage(world, stage, action, message):
    before = demo_state()
    response = world.clients["editor"].post(reverse(f"webui:stage_{action}", args=[world.waiting.id, stage]))
    assert response.status_code == 409
    assert message in response.content.decode()
    assert demo_state() == before


def test_it_refuses_to_cancel_a_completed_deployment_or_with_a_bad_choice(world):
    before = demo_state()
    response = world.clients["editor"].post(reverse("webui:deployment_cancel", args=[world.previous.id]))
    assert response.status_code == 409
    assert "already completed" in response.content.decode()
    response = world.clients["editor"].post(
        reverse("webui:deployment_cancel", args=[world.waiting.id]), {"rollback": "maybe"}
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert demo_state() == before


def test_it_sends_the_cancel_choice_to_the_piped(world):
    url = reverse("webui:deployment_cancel", args=[world.waiting.id])
    assert world.clients["editor"].post(url, {"rollback": "no"}).status_code == 302
    command = Command.objects.get(type=CommandType.CANCEL_DEPLOYMENT)
    assert command.payload == {"force_rollback": False, "force_no_rollback": True}
    page = world.clients["viewer"].get(reverse("webui:deployment", args=[world.waiting.id])).content.decode()
    assert "Cancel requested by erin" in page


def test_it_refuses_get_on_actions(world):
    for name, args in [
        ("stage_approve", [world.waiting.id, "approve"]),
        ("deployment_cancel", [world.waiting.id]),
        ("application_sync", [world.app.id]),
        ("settings_api_key_delete", [world.api_key.pk]),
    ]:
        assert world.clients["admin"].get(reverse(f"webui:{name}", args=args)).status_code == 405
