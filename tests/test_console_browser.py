"""The staff console in a real browser: headless Chromium (Debian's package) driven by Playwright.

The page is served by pytest-django's live server and runs under a strict Content-Security-Policy
injected by the test (script-src 'self', style-src 'self'), the policy production will send.
A screenshot of the dashboard is saved as test-results/console-dashboard.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from leads.models import Lead
from leads.tests.factories import ExperimentFactory, LeadFactory, VariantFactory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'"
OUTPUT_DIR = Path(django_settings.BASE_DIR) / "test-results"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Browser tests need {CHROMIUM}: run `apt-get install -y chromium` (or `make test`).")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between browser steps are synchronous and safe, but Django cannot tell.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()
        # Connections the test opened while Playwright's loop ran belong to that loop's context,
        # not the thread's: close them here, or the test database cannot be dropped at the end.
        connections.close_all()


@pytest.fixture
def staff_page(browser: Browser, live_server, admin_user, settings) -> Iterator[Page]:
    """A page logged in to the admin as staff, with every response under the strict CSP, and a
    list of anything the page asked of another origin or any policy violation it reported."""
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # the live server is plain HTTP
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.problems = []  # type: ignore[attr-defined]

    def with_csp(route: Route) -> None:
        if not route.request.url.startswith(live_server.url):
            page.problems.append(f"outside request: {route.request.url}")  # type: ignore[attr-defined]
            route.abort()
            return
        response = route.fetch(max_redirects=0)
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": STRICT_CSP})

    page.route("**/*", with_csp)
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and page.problems.append(message.text),  # type: ignore[attr-defined]
    )
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    yield page
    # A refresh may be in flight; its route must not outlive the page.
    page.unroute_all(behavior="ignoreErrors")
    page.close()


def _seed() -> None:
    experiment = ExperimentFactory(name="Cold intro")
    VariantFactory(experiment=experiment, name="Pain-led", alpha=13, beta=40, sends=52, successes=12, failures=40)
    VariantFactory(experiment=experiment, name="Social proof", alpha=5, beta=48, sends=52, successes=4, failures=48)
    now = timezone.now()
    LeadFactory.create_batch(5, status=Lead.Status.SCORED, scored_at=now, score=0.7)
    LeadFactory.create_batch(2, status=Lead.Status.CONTACTED, scored_at=now, score=0.9, contacted_at=now)
    LeadFactory(status=Lead.Status.CONVERTED, scored_at=now, contacted_at=now, responded_at=now, converted_at=now)
    LeadFactory(status=Lead.Status.SNOOZED)


def test_dashboard_shows_the_databases_numbers_and_charts(staff_page, live_server):
    _seed()
    staff_page.click("a.console-entry-link")
    staff_page.click("a[data-period=all]")
    funnel = staff_page.locator("#panel-funnel")
    assert funnel.locator("[data-funnel=raw-ingested]").inner_text() == str(Lead.objects.count())
    assert funnel.locator("[data-funnel=contacted]").inner_text() == "3"
    assert funnel.locator("[data-funnel=converted]").inner_text() == "1"
    assert funnel.locator("[data-funnel=snoozed]").inner_text() == "1"
    assert staff_page.locator("#panel-experiments polyline.curve").count() == 2
    assert staff_page.locator("#panel-experiments [data-field=sends]").all_inner_texts() == ["52", "52"]
    today_bar = staff_page.locator("#panel-timeline rect.bar.leads").last
    assert today_bar.get_attribute("data-value") == str(Lead.objects.count())
    assert staff_page.locator("#panel-health [data-health=consumer-lag]").inner_text() == "in-process bus: no lag"
    OUTPUT_DIR.mkdir(exist_ok=True)
    staff_page.screenshot(path=str(OUTPUT_DIR / "console-dashboard.png"), full_page=True)
    assert staff_page.problems == []  # type: ignore[attr-defined]


def test_dashboard_refreshes_its_panels_without_a_reload(staff_page, live_server, settings):
    settings.CONSOLE_REFRESH_SECONDS = 1
    LeadFactory()
    staff_page.goto(f"{live_server.url}/admin/console/?period=all")
    staff_page.evaluate("window.consoleNotReloaded = true")
    LeadFactory.create_batch(2)
    # Waits for the swap (no eval: the page's CSP forbids it); fails if it never comes.
    expect(staff_page.locator("[data-funnel=raw-ingested]")).to_have_text("3", timeout=15_000)
    assert staff_page.evaluate("window.consoleNotReloaded") is True
    assert staff_page.problems == []  # type: ignore[attr-defined]


def test_staff_snooze_a_lead_from_the_changelist(staff_page, live_server):
    lead = LeadFactory(company_name="Acme Rockets", status=Lead.Status.SCORED)
    LeadFactory(company_name="Globex", status=Lead.Status.SCORED)
    staff_page.goto(f"{live_server.url}/admin/leads/lead/")
    staff_page.check(f"input.action-select[value='{lead.pk}']")
    staff_page.select_option("select[name=action]", "snooze_leads")
    staff_page.click("button[name=index]")
    assert re.search("Snoozed 1 of the selected leads", staff_page.locator("ul.messagelist").inner_text())
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.SNOOZED
    assert Lead.objects.get(company_name="Globex").status == Lead.Status.SCORED
