"""Headless Chromium against pytest-django's live server: a small Playwright helper for portal tests.

`playwright install` cannot download here, so the Debian Chromium binary is launched directly;
`require()` makes a missing Chromium a failure under CI=true.
"""

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import RequestFactory
from django.utils.module_loading import import_string

from apps.accounts.services import start_portal_session
from apps.projects.principal import Principal
from tests.components import CHROMIUM, CHROMIUM_ARGS, TEST_OUTPUT, chromium_available, require

SCREENSHOTS = TEST_OUTPUT / "screenshots"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    """Playwright's sync API keeps an asyncio loop in this thread; the test's own ORM calls (seeding,
    checking results) are still plain synchronous calls, so Django's async guard must stand aside."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def chromium_browser(live_server) -> Iterator:
    """One browser per test (launching takes ~0.2 s), started after the database and the live server
    and stopped before them, so Playwright's event loop never overlaps the test database's setup."""
    require(chromium_available(), f"Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class Portal:
    """Pages of the live portal in fresh browser contexts; screenshots under test-output/screenshots/."""

    def __init__(self, browser, base_url: str):
        self.browser = browser
        self.base_url = base_url.rstrip("/")
        self._contexts: list = []

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def new_page(self, *, viewport: dict | None = None, session_key: str | None = None):
        context = self.browser.new_context(viewport=viewport or LAPTOP, base_url=self.base_url)
        context.set_default_timeout(10_000)
        if session_key:
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": session_key, "url": self.base_url}]
            )
        self._contexts.append(context)
        return context.new_page()

    def session_for(self, project, principal: Principal) -> str:
        """A portal session started by the same service SSO uses (for people SSO would log in)."""
        request = RequestFactory().get("/")
        request.session = import_string(f"{settings.SESSION_ENGINE}.SessionStore")()
        start_portal_session(request, project, username=principal.name, role=principal.role, method="test")
        return request.session.session_key

    @staticmethod
    def screenshot(page, name: str) -> str:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return str(path)

    def close(self) -> None:
        for context in self._contexts:
            context.close()


@pytest.fixture
def portal(chromium_browser, live_server) -> Iterator[Portal]:
    helper = Portal(chromium_browser, live_server.url)
    yield helper
    helper.close()
