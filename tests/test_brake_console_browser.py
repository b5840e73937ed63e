"""The deliverability brake in the console, in a real browser under the strict CSP: a trip shows
its banner on the next live refresh (no reload), and staff resume and pause from the page. A
screenshot of the banner is saved as test-results/console-sending-paused.png."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from leads.services.brake import brake_check, sending_paused
from leads.tests.factories import complaint_history
from tests.test_console_browser import OUTPUT_DIR, browser, staff_page  # noqa: F401  (the fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def _trip() -> None:
    complaint_history(sent=100, prefix="b")
    assert brake_check(now=timezone.now()) is not None


def test_a_trip_shows_its_banner_without_a_reload_and_staff_resume_from_it(staff_page, live_server, settings):  # noqa: F811
    settings.CONSOLE_REFRESH_SECONDS = 1
    settings.OUTREACH_BRAKE_MIN_SAMPLE = 100
    staff_page.goto(f"{live_server.url}/admin/console/")
    expect(staff_page.locator("[data-deliverability=state]")).to_have_text("Sending is on.")
    staff_page.evaluate("window.consoleNotReloaded = true")
    _trip()
    banner = staff_page.locator("#sending-paused")
    expect(banner).to_contain_text("complaint rate 1.00% (1 of 100 sent", timeout=15_000)
    assert staff_page.evaluate("window.consoleNotReloaded") is True
    OUTPUT_DIR.mkdir(exist_ok=True)
    staff_page.screenshot(path=str(OUTPUT_DIR / "console-sending-paused.png"))
    banner.locator("[data-sending=resume]").click()
    expect(staff_page.locator("ul.messagelist")).to_contain_text("Sending resumed.")
    assert sending_paused() is None
    assert staff_page.locator("#sending-paused").count() == 0
    assert staff_page.problems == []  # type: ignore[attr-defined]


def test_staff_pause_sending_from_the_deliverability_panel(staff_page, live_server, admin_user):  # noqa: F811
    staff_page.goto(f"{live_server.url}/admin/console/")
    staff_page.fill("#sending-pause-reason", "Checking the March import")
    staff_page.click("[data-sending=pause]")
    expect(staff_page.locator("#sending-paused")).to_contain_text("Checking the March import")
    pause = sending_paused()
    assert pause is not None and pause.paused_by == admin_user.username
    assert staff_page.problems == []  # type: ignore[attr-defined]
