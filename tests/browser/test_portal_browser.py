"""The portal in a real browser: static admin login, the applications list, a deployment waiting for
approval, and an Editor approving it while the page follows the pipeline by itself."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.applications.choices import SyncStatus
from apps.applications.models import Application
from apps.applications.services import add_application
from apps.deployments.choices import CommandType, DeploymentStatus, StageStatus
from apps.deployments.models import Command, Stage
from apps.deployments.services import transition_deployment, transition_stage
from apps.pipeds.models import Piped
from apps.pipeds.services import register_piped
from apps.projects.choices import Role
from apps.projects.principal import Principal, system_principal
from apps.projects.services import create_project
from tests.webui.factories import make_deployment, report_piped

from .conftest import PHONE

pytestmark = pytest.mark.browser


def seed_shop():
    """A project as a team would have it a week in: four applications in different states."""
    project, username, password = create_project(system_principal(), "shop", description="Online shop")
    system = system_principal(project.id)
    piped, _ = register_piped(system, project, name="prod-vpc")
    report_piped(piped)
    apps = {}
    for name, labels in [
        ("checkout", {"env": "prod", "team": "web"}),
        ("payments", {"env": "prod", "team": "pay"}),
        ("search", {"env": "prod", "team": "web"}),
        ("notifications", {"env": "dev", "team": "growth"}),
    ]:
        apps[name] = add_application(
            system,
            project,
            name=name,
            piped_id=piped.id,
            platform_provider="ecs-dev",
            repo_id="manifests",
            path=f"services/{name}",
            labels=labels,
        )
    make_deployment(
        apps["checkout"], status=DeploymentStatus.SUCCESS, tag="v1.3.0", created_ago=timedelta(days=1)
    )
    waiting = make_deployment(
        apps["checkout"], running_index=2, tag="v1.4.0", created_ago=timedelta(minutes=6)
    )
    Application.objects.filter(pk=apps["checkout"].pk).update(
        sync_status=SyncStatus.DEPLOYING, sync_short_reason="Deploying v1.4.0"
    )
    make_deployment(
        apps["payments"], status=DeploymentStatus.SUCCESS, tag="v2.0.1", created_ago=timedelta(hours=3)
    )
    Application.objects.filter(pk=apps["payments"].pk).update(sync_status=SyncStatus.SYNCED)
    make_deployment(
        apps["search"], status=DeploymentStatus.SUCCESS, tag="v0.9.2", created_ago=timedelta(days=2)
    )
    make_deployment(
        apps["search"],
        status=DeploymentStatus.FAILURE,
        tag="v0.9.3",
        running_index=3,
        rollback=True,
        created_ago=timedelta(hours=5),
    )
    Application.objects.filter(pk=apps["search"].pk).update(
        sync_status=SyncStatus.OUT_OF_SYNC,
        sync_short_reason="desiredCount differs: 4 live, 2 in Git",
        sync_reason="--- live\n+++ Git\n-  desiredCount: 4\n+  desiredCount: 2\n",
        sync_updated_at=timezone.now(),
    )
    Application.objects.filter(pk=apps["notifications"].pk).update(
        sync_status=SyncStatus.INVALID_CONFIG,
        sync_short_reason="app.pipecd.yaml line 12: unknown key spec.pipline",
        disabled=True,
    )
    return project, username, password, waiting


def test_it_logs_in_lists_applications_and_approves_as_an_editor(portal):
    project, username, password, waiting = seed_shop()

    # The static admin logs in through the real forms: project first, then username and password.
    page = portal.new_page()
    page.goto(portal.url("/"))
    assert "/login/" in page.url
    page.fill("#project", "shop")
    page.click("button[type=submit]")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/applications/")
    assert page.title() == "Applications · PipePortal"
    assert page.locator(".whoami .role").inner_text() == "Admin"
    rows = page.locator("table.list tbody tr")
    assert rows.count() == 4
    checkout = rows.filter(has_text="checkout")
    assert "Waiting for approval" in checkout.inner_text()
    assert "v1.3.0" in checkout.inner_text()  # running version: the last successful deployment's tag
    portal.screenshot(page, "applications")

    # Filters stay in the URL.
    page.fill("#id_labels", "team:web")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**/applications/?*labels=team%3Aweb*")
    assert page.locator("table.list tbody tr").count() == 2

    # The admin may approve too: the button is there.
    page.goto(portal.url(f"/deployments/{waiting.id}/"))
    assert page.locator("button.approve").count() == 1
    portal.screenshot(page, "deployment-waiting-admin")

    # A Viewer sees the state but no button, on a phone.
    viewer = Principal(project_id=project.id, kind="user", name="victor", role=Role.VIEWER)
    phone = portal.new_page(viewport=PHONE, session_key=portal.session_for(project, viewer))
    phone.goto(portal.url(f"/deployments/{waiting.id}/"))
    assert phone.locator(".status-head .badge").inner_text().strip() == "Waiting for approval"
    assert phone.locator("button.approve").count() == 0
    assert "may watch but not approve" in phone.locator(".approval").inner_text()
    portal.screenshot(phone, "deployment-waiting-viewer-phone")

    # An Editor approves.
    editor = Principal(project_id=project.id, kind="user", name="erin", role=Role.EDITOR)
    editor_page = portal.new_page(session_key=portal.session_for(project, editor))
    editor_page.goto(portal.url(f"/deployments/{waiting.id}/"))
    assert editor_page.locator(".whoami .role").inner_text() == "Editor"
    editor_page.click("button.approve")
    editor_page.wait_for_selector("ul.messages .msg-success")
    assert "Approved as erin" in editor_page.locator("ul.messages").inner_text()
    command = Command.objects.get(deployment=waiting, type=CommandType.APPROVE_STAGE)
    assert command.commander == "erin"
    assert editor_page.locator("button.approve").count() == 0  # no second approval by the same person
    assert "erin" in editor_page.locator(".approvals").inner_text()
    portal.screenshot(editor_page, "deployment-approved-by-editor")

    # The piped records the approval and moves on; the open page follows without a reload.
    stages = {s.stage_id: s for s in Stage.objects.filter(deployment=waiting)}
    Stage.objects.filter(pk=stages["approve"].pk).update(metadata={"approved_by": ["erin"]})
    assert transition_stage(stages["approve"].pk, StageStatus.SUCCESS, "Approved by erin")
    assert transition_stage(stages["primary-rollout"].pk, StageStatus.RUNNING)
    editor_page.wait_for_selector(".stage.tone-running >> text=ECS primary rollout", timeout=15_000)
    assert editor_page.locator(".stage.tone-waiting").count() == 0
    portal.screenshot(editor_page, "deployment-following-pipeline")

    # It completes; the page says so and stops polling.
    for stage_id in ("primary-rollout", "primary-traffic", "canary-clean"):
        transition_stage(stages[stage_id].pk, StageStatus.SUCCESS)
    assert transition_deployment(waiting.id, DeploymentStatus.SUCCESS, "Deployed v1.4.0")
    editor_page.wait_for_selector(".status-head .badge.tone-success", timeout=15_000)
    assert editor_page.locator("#deployment-live[hx-trigger]").count() == 0
    portal.screenshot(editor_page, "deployment-success")


def test_every_page_renders_without_errors_on_a_laptop_and_a_phone(portal):
    """Each page as the static admin: status 200, titled, no script error; screenshots to look at."""
    project, _, _, waiting = seed_shop()
    app = Application.objects.get(project=project, name="search")
    piped = app.piped
    admin = Principal(project_id=project.id, kind="static_admin", name="ops", role=Role.ADMIN)
    session = portal.session_for(project, admin)
    pages = {
        "applications": "/applications/",
        "application-add": "/applications/add/",
        "application": f"/applications/{app.id}/",
        "application-edit": f"/applications/{app.id}/edit/",
        "deployments": "/deployments/",
        "deployment-failed": f"/deployments/{app.most_recent_deployment_id}/",
        "settings-project": "/settings/",
        "settings-pipeds": "/settings/pipeds/",
        "settings-piped": f"/settings/pipeds/{piped.id}/",
        "settings-piped-add": "/settings/pipeds/add/",
        "settings-user-groups": "/settings/user-groups/",
        "settings-api-keys": "/settings/api-keys/",
        "settings-static-admin": "/settings/static-admin/",
        "settings-audit": "/settings/audit/",
        "settings-sessions": "/settings/sessions/",
    }
    for viewport_name, viewport in (("laptop", None), ("phone", PHONE)):
        page = portal.new_page(viewport=viewport, session_key=session)
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        page.on("console", lambda msg, errors=errors: msg.type == "error" and errors.append(msg.text))
        for name, path in pages.items():
            response = page.goto(portal.url(path))
            assert response.status == 200, (path, response.status)
            assert page.title().endswith("· PipePortal") and len(page.title()) > len(" · PipePortal")
            assert page.locator(".whoami .role").inner_text() == "Admin"
            if viewport_name == "laptop" or name in (
                "applications",
                "application",
                "deployments",
                "settings-piped",
            ):
                portal.screenshot(page, f"{name}-{viewport_name}")
        assert errors == []

    # Registering a piped shows its key once, with the config to paste.
    page = portal.new_page(session_key=session)
    page.goto(portal.url("/settings/pipeds/add/"))
    page.fill("#id_name", "staging-vpc")
    page.click("form button.primary")
    page.wait_for_selector("#piped-key")
    assert (
        "pipedKeyData: " + page.locator("#piped-key").inner_text()
        in page.locator("#piped-config").inner_text()
    )
    portal.screenshot(page, "settings-piped-registered")
    assert waiting.status == DeploymentStatus.RUNNING


def test_an_operator_creates_a_project_whose_static_admin_then_logs_in(portal, django_user_model):
    django_user_model.objects.create_superuser("ops", "ops@example.com", "console-password-1")
    page = portal.new_page()
    page.goto(portal.url("/admin/"))
    page.fill("#id_username", "ops")
    page.fill("#id_password", "console-password-1")
    page.click("input[type=submit]")
    page.goto(portal.url("/admin/projects/project/add/"))
    page.fill("#id_id", "payments")
    page.fill("#id_description", "The payments team")
    page.fill("#id_user_groups-0-sso_group", "pay-devs")
    page.select_option("#id_user_groups-0-role", "Editor")
    page.click("input[name=_save]")
    username = page.locator("#static-admin-username").inner_text()
    password = page.locator("#static-admin-password").inner_text()
    portal.screenshot(page, "console-project-created")

    portal_page = portal.new_page()
    portal_page.goto(portal.url("/login/payments/"))
    portal_page.fill("#username", username)
    portal_page.fill("#password", password)
    portal_page.click("button[type=submit]")
    portal_page.wait_for_url("**/applications/")
    assert "No applications yet" in portal_page.locator(".empty").inner_text()
    portal_page.goto(portal.url("/settings/user-groups/"))
    assert "pay-devs" in portal_page.locator("table").inner_text()
    portal.screenshot(portal_page, "settings-user-groups-new-project")


def test_adding_an_application_offers_the_chosen_pipeds_repositories(portal):
    project, _, _, _ = seed_shop()
    other, _ = register_piped(system_principal(project.id), project, name="staging-vpc")
    report_piped(other)
    Piped.objects.filter(pk=other.pk).update(
        repositories=[{"repo_id": "staging-manifests", "remote": "git@example.com:s.git", "branch": "main"}],
        platform_providers=[{"name": "ecs-staging", "type": "ECS"}],
    )
    editor = Principal(project_id=project.id, kind="user", name="erin", role=Role.EDITOR)
    page = portal.new_page(session_key=portal.session_for(project, editor))
    page.goto(portal.url("/applications/add/"))
    page.fill("#id_path", "services/cart")
    page.select_option("#id_piped", label="staging-vpc")
    # htmx swaps in the fields for that piped only, keeping what was typed.
    page.wait_for_function("document.querySelectorAll('#id_repo_id option').length === 2")
    assert page.locator("#id_repo_id option").all_inner_texts() == [
        "Choose a repository",
        "staging-manifests",
    ]
    assert page.input_value("#id_path") == "services/cart"
    page.select_option("#id_repo_id", "staging-manifests")
    page.select_option("#id_platform_provider", "ecs-staging")
    page.fill("#id_name", "cart")
    page.fill("#id_labels", "env: stg\nteam: web")
    portal.screenshot(page, "application-add-filled")
    page.click("form button.primary")
    page.wait_for_url("**/applications/*/")
    assert page.locator("h1").inner_text().startswith("cart")
    app = Application.objects.get(project=project, name="cart")
    assert (app.piped_id, app.repo_id, app.path, app.labels) == (
        other.id,
        "staging-manifests",
        "services/cart",
        {"env": "stg", "team": "web"},
    )

    # A path that leaves the repository comes back with the field's error, and nothing is added.
    page.goto(portal.url("/applications/add/"))
    page.select_option("#id_piped", label="staging-vpc")
    page.wait_for_function("document.querySelectorAll('#id_repo_id option').length === 2")
    page.select_option("#id_repo_id", "staging-manifests")
    page.select_option("#id_platform_provider", "ecs-staging")
    page.fill("#id_path", "../other-team")
    page.fill("#id_name", "sneaky")
    page.click("form button.primary")
    assert "'..' is not allowed" in page.locator(".has-error .field-error").inner_text()
    assert not Application.objects.filter(name="sneaky").exists()
    portal.screenshot(page, "application-add-bad-path")
