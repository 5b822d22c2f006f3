"""The notification deliveries page in headless Chromium: reached from the piped's page, readable on a
laptop and a phone (screenshots in test-output/screenshots/)."""

import pytest

from tests.browser.conftest import PHONE, _orm_beside_playwright, chromium_browser, portal  # noqa: F401

from .test_page import report

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_follows_the_piped_page_to_its_deliveries(portal, project, admin, piped, application):  # noqa: F811
    report(piped, count=3, application=application)
    report(piped, count=2, outcome="FAILED")
    session = portal.session_for(project, admin)
    page = portal.new_page(session_key=session)
    page.goto(portal.url(f"/settings/pipeds/{piped.id}/"))
    page.get_by_role("link", name="Notification deliveries →").click()
    page.wait_for_url(f"**/settings/pipeds/{piped.id}/notifications/")
    assert page.title().startswith(f"Notifications of piped {piped.name}")
    rows = page.locator("table.list tbody tr")
    assert rows.count() == 5
    assert page.get_by_text("503 upstream busy").count() == 2
    portal.screenshot(page, "notifications-attempts-laptop")
    page.select_option("select[name=outcome]", "FAILED")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**outcome=FAILED**")
    assert page.locator("table.list tbody tr").count() == 2
    phone = portal.new_page(session_key=session, viewport=PHONE)
    phone.goto(portal.url(f"/settings/pipeds/{piped.id}/notifications/"))
    portal.screenshot(phone, "notifications-attempts-phone")
