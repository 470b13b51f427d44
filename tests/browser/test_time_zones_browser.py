"""Times on the viewer's clock, in Chromium against the live server: a visitor in Tokyo sees Tokyo
times on search cards and on a profile before logging in and the same after signing up and after
logging in again; without JavaScript a visitor picks Tokyo once in the switcher and then sees
Tokyo times everywhere. Expected times are computed here from the database, in Asia/Tokyo."""
from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import TrainerProfile
from fittribe.services.booking import slots_for
from tests.browser.pages import PASSWORD, log_in

pytestmark = pytest.mark.browser

TOKYO = ZoneInfo("Asia/Tokyo")


def _stored(app) -> tuple[int, datetime, list[datetime]]:
    """Maya's id, her stored next free start (what her card shows) and her first free starts (what
    her profile lists first), from the database."""
    with app.app_context():
        try:
            maya = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
            firsts = [slot.starts_at for slot in slots_for(maya, min(maya.session_lengths), limit=2)]
            return maya.id, maya.next_available_at, firsts
        finally:
            db.session.remove()


def _expect_card_in_tokyo(page: Page, app) -> None:
    maya_id, next_free, _ = _stored(app)
    local = next_free.astimezone(TOKYO)
    card = page.locator(f"#next-available-{maya_id}")
    expect(card.locator("time")).to_have_attribute("datetime", local.isoformat())
    expect(card.locator("time")).to_have_text(local.strftime("%a %-d %b, %H:%M"))
    expect(card).to_contain_text("your time")
    expect(card).not_to_contain_text("trainer's time")


def _expect_profile_in_tokyo(page: Page, app, base: str) -> None:
    page.goto(f"{base}/trainers/maya-chen")
    first = page.locator("#availability time").first
    shown = first.get_attribute("datetime")
    # Read after the page: a start that just fell inside the minimum notice is the second one.
    local = [start.astimezone(TOKYO) for start in _stored(app)[2]]
    assert shown in [start.isoformat() for start in local], (shown, local)
    expect(first).to_have_text(datetime.fromisoformat(shown).strftime("%H:%M"))
    expect(page.locator("#availability")).to_contain_text("Asia/Tokyo (your time)")
    expect(page.locator(".profile")).to_contain_text(re.compile(r"America/Los Angeles time\s*· 1[67] hours behind you"))
    expect(page.locator(".site-footer")).to_contain_text("Times in Asia/Tokyo, your time")


def _soonest_first(page: Page) -> None:
    """"Soonest available" orders by the instant, whatever clock each card is shown on."""
    starts = [datetime.fromisoformat(value) for value in
              page.locator("#results [id^=next-available-] time").evaluate_all(
                  "els => els.map(e => e.getAttribute('datetime'))")]
    assert len(starts) >= 2 and starts == sorted(starts), starts


def test_a_visitor_in_tokyo_sees_tokyo_times_before_and_after_signing_up_and_logging_in(
        app, live_server, demo, new_context):
    page = new_context(timezone_id="Asia/Tokyo").new_page()
    page.goto(f"{live_server}/trainers?sort=available")
    # First visit: rendered on the trainers' clocks, then live.js tells the site the browser's zone
    # and the cards come again on it.
    _expect_card_in_tokyo(page, app)
    expect(page.locator("#results .zone-switch")).to_have_text(re.compile(r"Times in Asia/Tokyo, your time\s*· Change"))
    _soonest_first(page)
    _expect_profile_in_tokyo(page, app, live_server)

    # Sign up: the account starts on the browser's clock, so nothing moves.
    page.goto(f"{live_server}/signup")
    form = page.locator("#signup-form")
    expect(form.get_by_label("Time zone")).to_have_value("Asia/Tokyo")
    form.get_by_label("Your name").fill("Kenji Sato")
    form.get_by_label("Email", exact=True).fill("kenji@example.com")
    form.get_by_label("Password", exact=True).fill(PASSWORD + "-long")
    form.get_by_label("Repeat password").fill(PASSWORD + "-long")
    form.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{live_server}/trainers")
    _expect_card_in_tokyo(page, app)
    _expect_profile_in_tokyo(page, app, live_server)

    # Log out and in again (the demo password differs; this is Kenji's own).
    page.get_by_role("button", name=re.compile("^Log out")).click()
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    page.goto(f"{live_server}/login")
    login = page.locator("#login-form")
    login.get_by_label("Email").fill("kenji@example.com")
    login.get_by_label("Password", exact=True).fill(PASSWORD + "-long")
    login.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/dashboard/")
    page.goto(f"{live_server}/trainers?sort=available")
    _expect_card_in_tokyo(page, app)
    _expect_profile_in_tokyo(page, app, live_server)


def test_without_javascript_a_visitor_picks_tokyo_once_and_then_sees_tokyo_times(app, live_server, demo, new_context):
    page = new_context(java_script_enabled=False, timezone_id="Europe/Berlin").new_page()
    page.goto(f"{live_server}/trainers")
    maya_id, next_free, _ = _stored(app)
    card = page.locator(f"#next-available-{maya_id}")
    expect(card).to_contain_text("America/Los Angeles (trainer's time)")  # nothing told us the visitor's
    notice = page.locator(".zone-notice")
    expect(notice).to_be_visible()

    notice.get_by_role("link", name="Pick your time zone once").click()
    expect(page).to_have_url(re.compile(r"/time-zone\?next=/trainers"))
    page.get_by_label("Show times in").select_option("Asia/Tokyo")
    page.get_by_role("button", name="Show times in this zone").click()
    expect(page).to_have_url(f"{live_server}/trainers")
    expect(page.get_by_text("Times are now shown in Asia/Tokyo, your time.")).to_be_visible()
    expect(page.locator(".zone-notice")).to_have_count(0)
    _expect_card_in_tokyo(page, app)
    _expect_profile_in_tokyo(page, app, live_server)
    # The footer's switcher changes it again, and comes back to the page it was used on.
    page.locator(".site-footer").get_by_role("link", name=re.compile("^Change")).click()
    expect(page.get_by_label("Show times in")).to_have_value("Asia/Tokyo")
    page.get_by_label("Show times in").select_option("Europe/Paris")
    page.get_by_role("button", name="Show times in this zone").click()
    expect(page).to_have_url(f"{live_server}/trainers/maya-chen")
    expect(page.locator(".site-footer")).to_contain_text("Times in Europe/Paris, your time")
