"""The browser fixtures of tests/browser (headless Chromium against the live server) for the ECS pages."""

from tests.browser.conftest import (  # noqa: F401  (fixtures)
    _orm_beside_playwright,
    chromium_browser,
    portal,
)
