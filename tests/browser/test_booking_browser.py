"""The booking flow end to end in Chromium against the live gunicorn server: a member holds a time
on a demo trainer's profile and pays with the simulated test card; the member sees the
confirmation with the join link, while the trainer's open dashboard, another visitor's open
profile page and a search page's "Next available" update live, without reloading. Then the same flow with JavaScript switched off."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import assert_same_document, log_in, open_live_page

pytestmark = pytest.mark.browser

PUSH_TIMEOUT_MS = 5_000


def free_instants(page: Page) -> set[datetime]:
    """The free times on a profile's calendar, as instants (each viewer sees their own clock)."""
    stamps = page.locator("#availability time").evaluate_all("nodes => nodes.map(n => n.getAttribute('datetime'))")
    return {datetime.fromisoformat(stamp).astimezone(timezone.utc) for stamp in stamps}


def hold_first_free_time(page: Page) -> datetime:
    """The first time of the day the calendar opens on (every day and length is in the page; the
    others are hidden)."""
    slot = page.locator("#availability .slot-button:visible").first
    start = datetime.fromisoformat(slot.get_attribute("value"))
    slot.click()
    expect(page.get_by_text("This time is held for you until")).to_be_visible()
    return start.astimezone(timezone.utc)


def pay_with_test_card(page: Page) -> None:
    page.get_by_role("button", name="Pay").first.click()
    expect(page.get_by_text("Test mode.")).to_be_visible()
    page.get_by_label("4242 4242 4242 4242 — payment succeeds").check()
    page.get_by_role("button", name="Pay").click()
    expect(page.get_by_text("Payment received: your session is confirmed.")).to_be_visible()
    expect(page.get_by_role("heading", name="You're booked")).to_be_visible()
    expect(page.get_by_role("link", name="Add to Google Calendar")).to_be_visible()


def test_member_books_and_pays_while_the_trainer_and_a_visitor_watch_live(
        live_server, demo, member_context, trainer_context, new_context):
    trainer_page = trainer_context.new_page()
    log_in(trainer_page, live_server, "trainer@fittribe.example")
    open_live_page(trainer_page)
    rows = trainer_page.locator("#upcoming .session-row")
    expect(rows).to_have_count(1)  # the seeded demo session

    visitor_page = new_context().new_page()
    open_live_page(visitor_page, f"{live_server}/trainers/maya-chen")
    free_before = free_instants(visitor_page)
    search_page = new_context().new_page()
    open_live_page(search_page, f"{live_server}/trainers")
    next_on_card = (search_page.locator(".trainer-card").filter(has=search_page.get_by_role("link", name="Maya Chen"))
                    .locator("[id^='next-available-'] time"))

    member_page = member_context.new_page()
    log_in(member_page, live_server, "member@fittribe.example")
    member_page.goto(f"{live_server}/trainers/maya-chen")
    card_before = next_on_card.get_attribute("datetime")
    start = hold_first_free_time(member_page)
    assert start in free_before and datetime.fromisoformat(card_before) == start
    # The visitor's open profile loses that time as soon as it is held.
    expect(visitor_page.locator(f"#availability time[datetime='{start.astimezone(visitor_tz(visitor_page)).isoformat()}']")
           ).to_have_count(0, timeout=PUSH_TIMEOUT_MS)
    # Her card on another visitor's open search page moves on to her next free time (after a
    # random delay of up to 2 s that spreads the cards' re-fetches).
    expect(next_on_card).not_to_have_attribute("datetime", card_before, timeout=PUSH_TIMEOUT_MS + 2_000)
    assert datetime.fromisoformat(next_on_card.get_attribute("datetime")) > start

    pay_with_test_card(member_page)
    # The trainer's open dashboard lists the new session, without a reload.
    expect(rows).to_have_count(2, timeout=PUSH_TIMEOUT_MS)
    expect(trainer_page.locator("#upcoming")).to_contain_text("Sam Member")
    assert_same_document(trainer_page)
    assert_same_document(visitor_page)
    assert_same_document(search_page)
    assert start not in free_instants(visitor_page)


def visitor_tz(page: Page):
    """The zone the anonymous visitor's calendar is shown in (the trainer's), from its first time."""
    stamp = page.locator("#availability time").first.get_attribute("datetime")
    return datetime.fromisoformat(stamp).tzinfo


def test_the_whole_booking_flow_works_with_javascript_off(live_server, demo, new_context):
    page = new_context(java_script_enabled=False).new_page()
    log_in(page, live_server, "member@fittribe.example")
    page.goto(f"{live_server}/trainers/lucia-fernandez")
    hold_first_free_time(page)
    pay_with_test_card(page)
    page.goto(f"{live_server}/dashboard/")
    expect(page.locator("#upcoming")).to_contain_text("Lucía Fernández")
