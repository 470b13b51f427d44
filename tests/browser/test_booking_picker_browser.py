"""The booking journey in Chromium against the live server, with JavaScript on and off: a visitor
opens a trainer's profile, picks a day in the strip, picks 60 minutes, picks a time, logs in, is
back at that time with its Hold button, holds it (the hold counts down), pays with the test card
and lands on "You're booked" with the session on the member's clock. And an open profile whose
viewer chose a day and 60 minutes loses a time someone else holds, live, and keeps that choice."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from tests.browser.pages import PASSWORD, assert_same_document, open_live_page
from tests.browser.test_booking_browser import PUSH_TIMEOUT_MS, pay_with_test_card

pytestmark = pytest.mark.browser

MEMBER, MEMBER_ZONE = "member@fittribe.example", "Europe/London"  # Sam's account clock (the seed's)


def choose_last_free_day_and_60_minutes(page: Page, javascript: bool) -> str:
    """Clicks the strip's last day with free times (not the one the calendar opens on), then
    "60 min"; returns the day (YYYY-MM-DD, the viewer's clock)."""
    day_link = page.locator("#availability .length-times:not([hidden]) .day-strip a.day").last
    day = day_link.get_attribute("data-day")
    name = datetime.fromisoformat(day).strftime("%A %-d %B")
    expect(day_link).to_have_accessible_name(re.compile(rf"^{name}, \d+ free times?$"))
    if javascript:  # the calendar says it is loading while htmx fetches the choice
        page.evaluate("""window.__calendarLoading = false; new MutationObserver(changes => changes.forEach(c => {
            if (c.target.id === 'calendar' && c.target.classList.contains('htmx-request')) window.__calendarLoading = true;
        })).observe(document.body, {attributes: true, subtree: true, attributeFilter: ['class']})""")
    day_link.click()
    expect(page).to_have_url(re.compile(rf"[?&]day={day}&length=30"))
    calendar = page.locator("#calendar")
    expect(calendar).to_have_attribute("data-day", day)
    expect(page.locator(f"#day-30-{day}")).to_have_attribute("aria-current", "true")

    page.get_by_role("link", name=re.compile(r"^60 min")).click()
    expect(page).to_have_url(re.compile(rf"[?&]day={day}&length=60"))
    expect(calendar).to_have_attribute("data-length", "60")
    expect(page.get_by_role("link", name=re.compile(r"^60 min"))).to_have_attribute("aria-current", "true")
    expect(page.locator(f"#day-60-{day}")).to_have_attribute("aria-current", "true")
    expect(page.get_by_role("heading", name=f"{name} · 60-minute sessions")).to_be_visible()
    if javascript:
        assert_same_document(page)  # htmx swapped the calendar; the address followed
        assert page.evaluate("window.__calendarLoading") is True
    return day


@pytest.mark.parametrize("javascript", [True, False])
def test_a_visitor_picks_a_day_60_minutes_and_a_time_logs_in_holds_pays_and_is_booked(
        app, live_server, demo, new_context, javascript):
    page = new_context(java_script_enabled=javascript, timezone_id="Asia/Tokyo").new_page()
    if javascript:
        open_live_page(page, f"{live_server}/trainers/maya-chen")
        expect(page.locator("#availability")).to_contain_text("Asia/Tokyo (your time)")  # the browser's clock
    else:
        page.goto(f"{live_server}/trainers/maya-chen")
    day = choose_last_free_day_and_60_minutes(page, javascript)
    if javascript:  # back and forward keep each choice (htmx restores the pushed addresses)
        page.go_back()
        expect(page.locator("#calendar")).to_have_attribute("data-length", "30")
        page.go_forward()
        expect(page.locator("#calendar")).to_have_attribute("data-length", "60")
        expect(page.locator("#calendar")).to_have_attribute("data-day", day)

    # A time of that day: it leads to log in.
    time_link = page.get_by_role("link", name=re.compile(r"^Log in to hold .* \(60 min\)$")).last
    start = datetime.fromisoformat(time_link.locator("time").get_attribute("datetime"))
    time_link.click()
    expect(page).to_have_url(re.compile(r"/login\?next="))
    form = page.locator("#login-form")
    form.get_by_label("Email").fill(MEMBER)
    form.get_by_label("Password", exact=True).fill(PASSWORD)
    form.get_by_role("button", name="Log in").click()

    # Back at that time, on Sam's clock, with one clear action.
    mine = start.astimezone(ZoneInfo(MEMBER_ZONE))
    when = mine.strftime("%A %-d %B, %H:%M")
    expect(page).to_have_url(re.compile(r"/trainers/maya-chen\?length=60&time=.*#calendar$"))
    hold = page.get_by_role("button", name=f"Hold {when} (60 min, $65)")
    expect(hold).to_be_visible()
    expect(page.locator("#calendar")).to_have_attribute("data-length", "60")
    hold.click()

    expect(page.get_by_role("heading", name="Your time is held")).to_be_visible()
    countdown = page.locator(".countdown")
    if javascript:
        expect(countdown).to_have_text(re.compile(r"^\d+:\d\d left$"))
        first = countdown.text_content()
        expect(countdown).not_to_have_text(first, timeout=3_000)  # it ticks
    else:
        expect(countdown).to_have_text(f"{app.config['HOLD_MINUTES']} minutes left")

    pay_with_test_card(page)  # ends on "You're booked"
    summary = page.locator(".summary")
    expect(summary).to_contain_text(mine.strftime("%A %-d %B %Y"))
    end = mine + timedelta(minutes=60)
    expect(summary).to_contain_text(re.compile(rf"{mine:%H:%M}–{end:%H:%M} .*{MEMBER_ZONE}"))
    expect(summary).to_contain_text("60 minutes, live video")


def test_a_time_held_elsewhere_vanishes_from_the_60_minute_day_a_visitor_looks_at_and_the_choice_stays(
        app, live_server, demo, new_context):
    page = new_context(timezone_id="Asia/Tokyo").new_page()
    open_live_page(page, f"{live_server}/trainers/maya-chen")
    expect(page.locator("#availability")).to_contain_text("Asia/Tokyo (your time)")
    day = choose_last_free_day_and_60_minutes(page, javascript=True)
    panel = page.locator(f"#availability .length-times[data-length='60'] .day-times[data-day='{day}']")
    shown = panel.locator("time").evaluate_all("nodes => nodes.map(n => n.getAttribute('datetime'))")
    assert shown, "the chosen day has free 60-minute times"

    # Another member holds the first of them (the same service the Hold button calls).
    from fittribe.extensions import db
    from fittribe.models import TrainerProfile, User
    from fittribe.services import booking as booking_service

    with app.app_context():
        try:
            trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
            member = db.session.scalar(select(User).where(User.email == MEMBER))
            booking_service.hold(member, trainer, datetime.fromisoformat(shown[0]), 60)
        finally:
            db.session.remove()

    expect(page.locator(f"#availability time[datetime='{shown[0]}']")).to_have_count(0, timeout=PUSH_TIMEOUT_MS)
    # The push came as the days the hold touched alone (their strip items and times, each swapped
    # by id, hidden ones staying hidden); the page still shows the viewer's own choice.
    expect(page.locator("#availability .day-times:visible")).to_have_count(1)
    expect(page.locator("#calendar")).to_have_attribute("data-day", day)
    expect(page.locator("#calendar")).to_have_attribute("data-length", "60")
    expect(page.locator("#availability .length-times[data-length='60']")).to_be_visible()
    expect(page.locator("#availability .length-times[data-length='30']")).to_be_hidden()
    expect(panel).to_be_visible()
    expect(page.locator(f"#day-60-{day}")).to_have_attribute("aria-current", "true")
    expect(page.locator("#availability [aria-current]:visible")).to_have_count(1)
    remaining = panel.locator("time").evaluate_all("nodes => nodes.map(n => n.getAttribute('datetime'))")
    assert shown[0] not in remaining and set(remaining) <= set(shown)
    assert_same_document(page)
