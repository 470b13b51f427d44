"""Every page, for every role, on a 390 px phone and a 1280 px laptop: nothing scrolls sideways
(document.scrollingElement.scrollWidth <= the viewport) and axe-core (npm, pinned in package.json)
finds no serious or critical accessibility problem. Set SCREENSHOT_DIR to keep a full-page
screenshot of each one for review."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import TrainerProfile, User
from tests.browser.pages import log_in
from tests.helpers import ROOT, demo_hold, demo_paid_session

pytestmark = pytest.mark.browser

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"phone": (390, 844), "laptop": (1280, 800)}
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")

PAGES = {
    "visitor": ["/", "/trainers", "/trainers?q=zzzz-nobody", "/trainers/maya-chen", "/login", "/signup",
                "/password/forgot", "/time-zone"],
    "member": ["/", "/trainers", "/trainers/maya-chen", "/dashboard/", "/dashboard/payments", "/notifications/",
               "/account/calendar", "/bookings/{held}", "/bookings/{held}/pay", "/bookings/{paid}",
               "/bookings/{paid}/cancel", "/bookings/{paid}/reschedule", "/time-zone"],
    "trainer": ["/dashboard/", "/dashboard/profile", "/dashboard/availability", "/dashboard/earnings",
                "/dashboard/reviews", "/trainers/maya-chen", "/bookings/{paid}", "/notifications/"],
    "admin": ["/admin/trainers", "/admin/users", "/admin/reviews", "/admin/analytics", "/admin/users/{member}/suspend",
              "/trainers/jordan-pending"],
}
LOGINS = {"member": ("member@fittribe.example", "/dashboard/"), "trainer": ("trainer@fittribe.example", "/dashboard/"),
          "admin": ("admin@fittribe.example", "/admin/trainers")}


def page_ids(app) -> dict:
    ids = {"held": demo_hold(app, days_ahead=4), "paid": demo_paid_session(app, days_ahead=6)}
    with app.app_context():
        ids["member"] = db.session.scalar(select(User.id).where(User.email == "member@fittribe.example"))
        assert db.session.scalar(select(TrainerProfile.id).where(TrainerProfile.slug == "jordan-pending"))
    return ids


def serious_axe_findings(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""() => axe.run(document, {resultTypes: ['violations']})""")
    return [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def audit(page: Page, base_url: str, path: str, label: str) -> list[str]:
    url = base_url + path
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url}: HTTP {response and response.status}"
    problems = []
    width, viewport = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    if width > viewport:
        problems.append(f"{url} scrolls sideways: {width} px wide in a {viewport} px viewport")
    problems += [f"{url}: {finding}" for finding in serious_axe_findings(page)]
    if SCREENSHOTS:
        name = f"{label}{path.replace('/', '_').replace('?', '_')}.png"
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)
    return problems


@pytest.mark.parametrize("size", WIDTHS)
@pytest.mark.parametrize("role", PAGES)
def test_no_sideways_scroll_and_no_serious_axe_findings(app, live_server, demo, new_context, role, size):
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    width, height = WIDTHS[size]
    # axe is injected as a script tag, which the site's CSP (rightly) refuses: bypass it for the audit only.
    page = new_context(viewport={"width": width, "height": height}, bypass_csp=True).new_page()
    if role in LOGINS:
        log_in(page, live_server, *LOGINS[role])
    ids = page_ids(app) if role in ("member", "trainer", "admin") else {}
    problems = []
    for path in PAGES[role]:
        problems += audit(page, live_server, path.format(**ids), f"{role}-{size}")
    assert not problems, "\n".join(problems)


def test_phone_header_menu_opens_without_javascript(live_server, demo, new_context):
    page = new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False).new_page()
    log_in(page, live_server, "member@fittribe.example")
    menu = page.locator(".nav-menu summary")
    dashboard = page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard")
    expect(dashboard).to_be_hidden()
    menu.click()
    expect(dashboard).to_be_visible()
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "member-phone_menu-open.png"))
    dashboard.click()
    expect(page).to_have_url(f"{live_server}/dashboard/")


def test_laptop_header_shows_its_links_without_a_menu(live_server, demo, new_context):
    page = new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(live_server + "/")
    expect(page.locator(".nav-menu summary")).to_be_hidden()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Log in")).to_be_visible()


def test_phone_search_shows_results_first_and_filters_in_a_panel(live_server, demo, new_context):
    page = new_context(viewport={"width": 390, "height": 844}).new_page()
    page.goto(live_server + "/trainers")
    expect(page.get_by_label("Name or goal")).to_be_hidden()
    first_card = page.locator(".trainer-card").first
    assert first_card.bounding_box()["y"] < 844, "the first result starts below the fold"
    page.get_by_text("Filters and sort").click()
    expect(page.get_by_label("Name or goal")).to_be_visible()


def test_toasts_float_and_close(live_server, demo, new_context):
    page = new_context(viewport={"width": 390, "height": 844}).new_page()
    log_in(page, live_server, "member@fittribe.example")  # lands with no flash; make one
    page.goto(live_server + "/dashboard/payments")
    page.evaluate("""() => { document.getElementById('notification-toast').innerHTML =
                       '<p class="toast" role="status">Hello there</p>'; }""")
    toast = page.locator("#notification-toast .toast")
    expect(toast.get_by_role("button", name="Close this message")).to_be_visible()
    assert page.evaluate("getComputedStyle(document.getElementById('notification-toast')).position") == "fixed"
    expect(toast).to_have_text("Hello there")
    toast.get_by_role("button", name="Close this message").click()
    expect(toast).to_have_count(0)
