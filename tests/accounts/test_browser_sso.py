"""SSO in a real browser: headless Chromium logs in through a real OpenID Connect provider (oidc-provider).

People whose `groups` claims differ land with different roles: the Editor sees and presses Approve on a
deployment waiting for approval, the Viewer sees no Approve button and is refused (403) when posting the
form anyway, and a person whose groups match nothing is refused — or let in as Viewer when the project
allows strays. Screenshots go to test-output/screenshots/.
"""

from collections.abc import Iterator

import pytest

from apps.applications.services import add_application
from apps.deployments.choices import CommandType
from apps.deployments.models import Command
from apps.pipeds.services import register_piped
from apps.projects.principal import system_principal
from apps.projects.services import update_project
from tests.components import CHROMIUM, CHROMIUM_ARGS, TEST_OUTPUT, chromium_available, require
from tests.webui.factories import make_deployment, report_piped

from .helpers import oidc_env_config

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("oidc")]

SCREENSHOTS = TEST_OUTPUT / "screenshots"
CONFIG = "corp-oidc"


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    """Playwright's sync API runs an asyncio loop in this thread; the test's own ORM calls (seeding and
    checking) stay synchronous, so Django's async guard must stand aside."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def provider(oidc_provider_factory, live_server):
    return oidc_provider_factory([f"{live_server.url}/accounts/oidc/{CONFIG}/login/callback/"])


@pytest.fixture
def browser(live_server) -> Iterator:
    require(chromium_available(), f"Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def waiting_deployment(settings, provider, user_groups):
    """Project demo logs in through corp-oidc and has a canary deployment waiting for approval."""
    settings.PIPEPORTAL_SSO_FROM_ENV = [oidc_env_config(provider, name=CONFIG)]
    system = system_principal(user_groups.id)
    update_project(system, user_groups, shared_sso_config=CONFIG)
    piped, _ = register_piped(system, user_groups, name="dev-vpc")
    report_piped(piped)
    app = add_application(
        system,
        user_groups,
        name="hogehoge",
        piped_id=piped.id,
        platform_provider="ecs-dev",
        repo_id="manifests",
        path="apps/hogehoge",
        labels={"env": "dev", "app": "hogehoge"},
    )
    return make_deployment(app, running_index=2, tag="v1.4.0")


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(browser, live_server, login: str, *, screenshots: bool = False):
    """From /login/ through the identity provider's sign-in and consent forms, back to the portal."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("#project", "demo")
    page.click("button[type=submit]")
    page.wait_for_url("**/login/demo/")
    if screenshots:
        shot(page, "sso-login-page")
    page.click(f"text=Login with {CONFIG}")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password works")
    page.click("button[type=submit]")
    page.click("button[type=submit]")  # the consent form: "Continue"
    page.wait_for_url(f"{live_server.url}/**")
    return page


def test_an_editor_approves_and_a_viewer_cannot(browser, live_server, waiting_deployment):
    deployment_url = f"{live_server.url}/deployments/{waiting_deployment.id}/"

    editor = log_in(browser, live_server, "erin", screenshots=True)
    editor.goto(deployment_url)
    assert editor.locator(".whoami .user").inner_text() == "erin"
    assert editor.locator(".whoami .role").inner_text() == "Editor"
    approve = editor.locator("button.approve")
    assert approve.is_visible()
    shot(editor, "sso-deployment-editor")
    approve.click()
    editor.wait_for_url(deployment_url)
    assert "Approved as erin" in editor.content()
    command = Command.objects.get(deployment=waiting_deployment, type=CommandType.APPROVE_STAGE)
    assert (command.commander, command.stage_id) == ("erin", "approve")

    viewer = log_in(browser, live_server, "victor")
    viewer.goto(deployment_url)
    assert viewer.locator(".whoami .role").inner_text() == "Viewer"
    assert viewer.locator("button.approve").count() == 0
    assert "Your role may watch but not approve" in viewer.content()
    shot(viewer, "sso-deployment-viewer")
    # Posting the form anyway, with the session and CSRF token the browser holds, is refused.
    token = next(c["value"] for c in viewer.context.cookies() if c["name"] == "csrftoken")
    response = viewer.request.post(
        f"{deployment_url}stages/approve/approve/",
        form={"csrfmiddlewaretoken": token},
        headers={"X-CSRFToken": token},
    )
    assert response.status == 403
    assert Command.objects.filter(deployment=waiting_deployment).count() == 1


def test_my_account_shows_the_role_and_its_groups(browser, live_server, waiting_deployment):
    page = log_in(browser, live_server, "ada")
    page.click(".whoami .user")
    page.wait_for_url("**/account/")
    table = page.locator("table.my-account").inner_text()
    assert "Admin" in table and "platform-admins" in table and CONFIG in table
    shot(page, "sso-my-account")


def test_a_person_in_no_mapped_group_is_refused_or_let_in_as_viewer(browser, live_server, waiting_deployment):
    refused = log_in(browser, live_server, "sam")
    assert "No role in demo" in refused.title()
    text = refused.locator("main").inner_text()
    assert "none of your groups is mapped to a role" in text
    assert "marketing" in text and "sales" in text
    shot(refused, "sso-refused")

    update_project(system_principal("demo"), waiting_deployment.project, allow_stray_as_viewer=True)
    stray = log_in(browser, live_server, "sam")
    stray.goto(f"{live_server.url}/deployments/{waiting_deployment.id}/")
    assert stray.locator(".whoami .role").inner_text() == "Viewer"
    assert stray.locator("button.approve").count() == 0
