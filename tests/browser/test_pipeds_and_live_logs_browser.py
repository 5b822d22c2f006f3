"""In a real browser: a piped's page with a broken remote and app configs found in Git; adding an application
from one of them (with htmx, and without JavaScript); the project's webhook settings; and a running
deployment's log growing on the open page."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from apps.applications.models import Application
from apps.applications.services import add_application
from apps.deployments.choices import DeploymentStatus, StageStatus
from apps.deployments.models import Stage, StageLogBlock
from apps.deployments.services import transition_deployment, transition_stage
from apps.ops.housekeeping import prune
from apps.pipeds.models import Piped
from apps.pipeds.services import register_piped
from apps.projects.choices import Role
from apps.projects.principal import Principal, system_principal
from apps.projects.services import create_project
from tests.webui.factories import (
    append_log,
    make_deployment,
    report_piped,
    report_repository_status,
    report_suggestions,
    suggestion,
)

from .conftest import LAPTOP, PHONE

pytestmark = pytest.mark.browser
ADDED = re.compile(r".*/applications/[0-9a-f-]{36}/$")  # the new application's page


def seed_team():
    """A project with two pipeds: prod (one remote broken, three app configs not added yet) and staging."""
    project, _, _ = create_project(system_principal(), "team", description="Team project")
    system = system_principal(project.id)
    prod, _ = register_piped(system, project, name="prod-vpc")
    report_piped(prod)
    now = timezone.now()
    report_repository_status(
        prod,
        {
            "manifests": {
                "last_fetch_at": (now - timedelta(seconds=25)).isoformat(),
                "head": "9f1c2ab7e0d4c6b8a1f2e3d4c5b6a7980f1e2d3c",
                "error": "",
                "failures": 0,
                "next_attempt_at": (now + timedelta(seconds=35)).isoformat(),
            },
            "infra": {
                "last_fetch_at": (now - timedelta(hours=3)).isoformat(),
                "head": "4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e",
                "error": "git fetch origin: fatal: Could not read from remote repository.\n"
                "git@github.com: Permission denied (publickey).",
                "failures": 6,
                "last_error_at": (now - timedelta(seconds=12)).isoformat(),
                "next_attempt_at": (now + timedelta(seconds=268)).isoformat(),
            },
        },
    )
    report_suggestions(
        prod,
        [
            suggestion("manifests", "services/cart", "cart", labels={"env": "prod", "team": "web"}),
            suggestion("manifests", "services/search", "search", labels={"env": "prod", "team": "web"}),
            suggestion(
                "infra",
                "jobs/nightly",
                "nightly-report",
                labels={"team": "data"},
                config_filename="nightly.pipecd.yaml",
            ),
        ],
    )
    staging, _ = register_piped(system, project, name="staging-vpc")
    report_piped(staging)
    Piped.objects.filter(pk=staging.pk).update(
        repositories=[
            {"repo_id": "staging", "remote": "git@github.com:example/staging.git", "branch": "main"}
        ],
        platform_providers=[{"name": "ecs-staging", "type": "ECS"}],
        stopped_at=now,
        last_heartbeat_at=now - timedelta(seconds=3),
    )
    add_application(
        system,
        project,
        name="checkout",
        piped_id=prod.id,
        platform_provider="ecs-dev",
        repo_id="manifests",
        path="services/checkout",
        labels={"env": "prod"},
    )
    return project, prod, staging


def as_person(portal, project, name: str, role: str, **page_options):
    principal = Principal(project_id=project.id, kind="user", name=name, role=role)
    return portal.new_page(session_key=portal.session_for(project, principal), **page_options)


def without_javascript(portal, project, name: str, role: str):
    """A page in a browser context with JavaScript turned off (htmx never runs)."""
    principal = Principal(project_id=project.id, kind="user", name=name, role=role)
    context = portal.browser.new_context(viewport=LAPTOP, base_url=portal.base_url, java_script_enabled=False)
    context.set_default_timeout(10_000)
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": portal.session_for(project, principal),
                "url": portal.base_url,
            }
        ]
    )
    portal._contexts.append(context)
    return context.new_page()


def test_a_piped_page_shows_a_broken_remote_and_adding_an_app_from_a_suggestion(portal):
    project, prod, staging = seed_team()
    admin = as_person(portal, project, "ada", Role.ADMIN)
    errors: list[str] = []
    admin.on("pageerror", lambda exc: errors.append(str(exc)))

    admin.goto(portal.url("/settings/pipeds/"))
    rows = admin.locator("table.list tbody tr")
    assert "1 of 2 failing" in rows.filter(has_text="prod-vpc").inner_text()
    assert "stopped cleanly" in rows.filter(has_text="staging-vpc").inner_text()
    portal.screenshot(admin, "pipeds-repository-health")

    admin.goto(portal.url(f"/settings/pipeds/{prod.id}/"))
    broken = admin.locator(".repo-failing")
    assert "6 fetches failed in a row" in broken.inner_text()
    assert "Permission denied (publickey)" in broken.inner_text()
    assert "Next try in" in broken.inner_text() or "Next try" in broken.inner_text()
    assert admin.locator(".repo-ok .badge").inner_text().strip() == "Fetched"
    assert not admin.locator("#configuration pre.config").is_visible()  # folded until asked for
    assert admin.locator("#suggestions tbody tr").count() == 3
    portal.screenshot(admin, "piped-broken-remote-and-suggestions")
    admin.locator("#configuration summary").click()
    assert admin.locator("#configuration pre.config").is_visible()

    # An Editor sees the note on the applications list and adds `cart` from its suggestion (htmx).
    editor = as_person(portal, project, "erin", Role.EDITOR)
    editor.on("pageerror", lambda exc: errors.append(str(exc)))
    editor.goto(portal.url("/applications/"))
    note = editor.locator(".suggestions-note")
    assert "3 unregistered apps found in Git" in note.inner_text()
    portal.screenshot(editor, "applications-suggestions-note")
    note.locator("a").click()
    editor.wait_for_url("**/applications/add/**")
    editor.fill("#id_name", "typed-before")
    cart = f"{prod.id}:manifests:services/cart/app.pipecd.yaml"
    editor.select_option("#id_suggestion", cart)
    editor.wait_for_function("document.querySelector('#id_path').value === 'services/cart'")
    assert editor.input_value("#id_name") == "cart"  # picking a suggestion fills it in
    assert editor.input_value("#id_piped") == str(prod.id)
    assert editor.input_value("#id_repo_id") == "manifests"
    assert editor.locator("#id_repo_id option").all_inner_texts() == [
        "Choose a repository",
        "manifests",
        "infra",
    ]
    assert editor.input_value("#id_platform_provider") == "ecs-dev"  # its only provider
    assert "env: prod" in editor.input_value("#id_labels")
    portal.screenshot(editor, "application-add-from-suggestion")
    editor.click("form button.primary")
    editor.wait_for_url(ADDED)
    assert editor.locator("h1").inner_text().startswith("cart")
    app = Application.objects.get(project=project, name="cart")
    assert (app.piped_id, app.repo_id, app.path, app.labels) == (
        prod.id,
        "manifests",
        "services/cart",
        {"env": "prod", "team": "web"},
    )

    # Picking staging's piped drops prod's suggestions and says its only repository.
    editor.goto(portal.url("/applications/add/"))
    editor.select_option("#id_piped", str(staging.id))
    editor.wait_for_function("document.querySelectorAll('#id_repo_id option').length === 2")
    assert editor.locator("#id_suggestion").count() == 0
    assert editor.input_value("#id_repo_id") == "staging"
    assert errors == []

    # Without JavaScript: pick a suggestion, leave the rest empty, submit.
    plain = without_javascript(portal, project, "erin", Role.EDITOR)
    plain.goto(portal.url("/applications/add/"))
    plain.select_option("#id_suggestion", f"{prod.id}:infra:jobs/nightly/nightly.pipecd.yaml")
    plain.click("form button.primary")
    plain.wait_for_url(ADDED)
    nightly = Application.objects.get(project=project, name="nightly-report")
    assert (nightly.repo_id, nightly.path, nightly.config_filename) == (
        "infra",
        "jobs/nightly",
        "nightly.pipecd.yaml",
    )

    # A suggestion of the other piped is refused on its field, and nothing is added.
    plain.goto(portal.url("/applications/add/"))
    plain.select_option("#id_piped", str(staging.id))
    plain.select_option("#id_suggestion", f"{prod.id}:manifests:services/search/app.pipecd.yaml")
    plain.click("form button.primary")
    assert (
        "found by piped prod-vpc, not by staging-vpc"
        in plain.locator(".has-error .field-error").first.inner_text()
    )
    assert not Application.objects.filter(project=project, name="search").exists()
    portal.screenshot(plain, "application-add-suggestion-of-another-piped")

    # The piped's page on a phone.
    phone = as_person(portal, project, "ada", Role.ADMIN, viewport=PHONE)
    phone.goto(portal.url(f"/settings/pipeds/{prod.id}/"))
    assert phone.locator("#suggestions tbody tr").count() == 1  # cart and nightly were added
    portal.screenshot(phone, "piped-phone")


def test_the_project_webhook_settings_for_an_admin_and_an_editor(portal):
    project, _, _ = seed_team()
    admin = as_person(portal, project, "ada", Role.ADMIN)
    admin.goto(portal.url("/settings/"))
    assert (
        admin.locator("#webhook-url").inner_text()
        == f"{settings.PIPEPORTAL_BASE_URL}/webhooks/git?project=team"
    )
    admin.locator("#git-webhook details.howto summary").click()
    admin.locator("#git-webhook details summary", has_text="Show").click()
    assert admin.locator("#webhook-secret").inner_text() == project.git_webhook_secret
    portal.screenshot(admin, "settings-webhook-admin")
    admin.click("#git-webhook button[type=submit]")
    admin.wait_for_selector("ul.messages .msg-success")
    project.refresh_from_db()
    admin.locator("#git-webhook details summary", has_text="Show").click()
    assert admin.locator("#webhook-secret").inner_text() == project.git_webhook_secret

    editor = as_person(portal, project, "erin", Role.EDITOR)
    editor.goto(portal.url("/settings/"))
    assert "only Admins can see it" in editor.locator("#git-webhook").inner_text()
    assert project.git_webhook_secret not in editor.content()
    portal.screenshot(editor, "settings-webhook-editor")


def test_a_running_deployments_log_grows_on_the_open_page(portal):
    project, _, _ = seed_team()
    app = Application.objects.get(project=project, name="checkout")
    deployment = make_deployment(
        app,
        running_index=1,
        stages=[("sync", "ECS_SYNC", ""), ("script", "SCRIPT_RUN", "smoke tests"), ("wait", "WAIT", "")],
        log_lines=4,
        tag="v2.1.0",
        rollback=True,
    )
    script = Stage.objects.get(deployment=deployment, stage_id="script")
    viewer = as_person(portal, project, "victor", Role.VIEWER)
    errors: list[str] = []
    viewer.on("pageerror", lambda exc: errors.append(str(exc)))
    viewer.goto(portal.url(f"/deployments/{deployment.id}/"))
    pane = viewer.locator(f"#log-lines-{script.pk}")
    assert pane.locator(".line").count() == 4
    # Mark the pane: if a poll re-rendered it, the mark would be gone.
    viewer.evaluate(f"document.getElementById('log-lines-{script.pk}').dataset.mark = 'original'")

    append_log(script, 60, text="test case passed:")
    viewer.wait_for_function(
        f"document.querySelectorAll('#log-lines-{script.pk} .line').length === 64", timeout=15_000
    )
    at_bottom = (
        f"(() => {{ const p = document.getElementById('log-lines-{script.pk}');"
        " return p.scrollHeight - p.scrollTop - p.clientHeight < 24; })()"
    )
    viewer.wait_for_function(at_bottom)  # it follows the tail
    assert pane.get_attribute("data-mark") == "original"
    portal.screenshot(viewer, "deployment-live-log")

    # Scrolled up to read: new lines arrive but the pane stays where the person is.
    viewer.evaluate(f"document.getElementById('log-lines-{script.pk}').scrollTop = 0")
    append_log(script, 10, text="more output")
    viewer.wait_for_function(
        f"document.querySelectorAll('#log-lines-{script.pk} .line').length === 74", timeout=15_000
    )
    assert viewer.evaluate(f"document.getElementById('log-lines-{script.pk}').scrollTop") == 0
    texts = pane.locator(".line").all_inner_texts()
    assert len(texts) == len(set(texts)) == StageLogBlock.objects.filter(stage=script).count()  # no repeats

    # The script fails, the rollback stage starts: it appears, and the page follows its log.
    append_log(script, 1, text="smoke test failed:")
    transition_stage(script.pk, StageStatus.FAILURE, "Script exited with 1")
    transition_deployment(deployment.id, DeploymentStatus.ROLLING_BACK, "Stage script failed")
    rollback = Stage.objects.get(deployment=deployment, stage_id="rollback")
    transition_stage(rollback.pk, StageStatus.RUNNING)
    append_log(rollback, 3, text="restoring the last successful task definition, step")
    viewer.wait_for_selector(".pipeline.rollback .stage.tone-running", timeout=15_000)
    viewer.wait_for_selector(f"#log-lines-{rollback.pk} .line >> nth=2", timeout=15_000)
    portal.screenshot(viewer, "deployment-live-rollback")

    transition_stage(rollback.pk, StageStatus.SUCCESS, "Rolled back")
    Stage.objects.filter(pk=rollback.pk).update(completed_at=timezone.now() - timedelta(seconds=30))
    transition_deployment(deployment.id, DeploymentStatus.FAILURE, "Stage script failed; rolled back")
    viewer.wait_for_selector(".status-head .badge.tone-failure", timeout=15_000)
    # The page now shows the stage that failed; once nothing can grow any more, nothing polls.
    viewer.wait_for_selector(f"#log-lines-{script.pk}", timeout=15_000)
    viewer.wait_for_function("document.querySelectorAll('[hx-trigger]').length === 0", timeout=20_000)
    assert errors == []
    portal.screenshot(viewer, "deployment-live-finished")


def test_a_deployment_whose_details_retention_removed(portal, settings):
    project, _, _ = seed_team()
    settings.PIPEPORTAL_RETENTION_KEEP_DEPLOYMENTS = 1
    settings.PIPEPORTAL_RETENTION_DEPLOYMENT_DETAIL_DAYS = 30
    app = Application.objects.get(project=project, name="checkout")
    old = make_deployment(app, status=DeploymentStatus.SUCCESS, created_ago=timedelta(days=200), tag="v1.0.0")
    make_deployment(app, status=DeploymentStatus.SUCCESS, created_ago=timedelta(days=2), tag="v1.1.0")
    prune()
    page = as_person(portal, project, "victor", Role.VIEWER)
    page.goto(portal.url(f"/deployments/{old.id}/"))
    assert "Stage details were removed by retention on" in page.locator(".pruned-banner").inner_text()
    portal.screenshot(page, "deployment-pruned")
