"""Google Calendar in Chromium against the live gunicorn server and the fake Google it is configured
with: the trainer connects through the (fake) consent screen; a busy event added in the trainer's
Google calendar disappears from a member's open profile without a reload (push notification →
free/busy → live layer); the member's booking appears in the trainer's calendar and leaves it on cancel."""
from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.pages import assert_same_document, log_in, open_live_page
from tests.browser.test_booking_browser import free_instants, hold_first_free_time, pay_with_test_card

pytestmark = pytest.mark.browser

PUSH_TIMEOUT_MS = 5_000
ACCOUNT = "maya@gmail.test"


def booking_events(google, booking_id: int) -> list[dict]:
    return [e for e in google.events_in(ACCOUNT)
            if e.get("extendedProperties", {}).get("private", {}).get("fittribeBookingId") == str(booking_id)]


def wait_for(check, failure: str = "the fake Google calendar did not change in time") -> None:
    deadline = time.monotonic() + PUSH_TIMEOUT_MS / 1000
    while not check():
        assert time.monotonic() < deadline, failure
        time.sleep(0.1)


def test_busy_time_in_google_leaves_an_open_profile_and_bookings_go_to_google(
        live_server, live_google, demo, member_context, trainer_context):
    live_google.reset()
    trainer_page = trainer_context.new_page()
    log_in(trainer_page, live_server, "trainer@fittribe.example")
    trainer_page.get_by_role("link", name="Connect Google Calendar").click()
    trainer_page.get_by_role("link", name="Connect Google Calendar").click()
    expect(trainer_page.get_by_text("FitTribe wants to access your Google Account")).to_be_visible()  # the fake consent screen
    trainer_page.get_by_label("Account").fill(ACCOUNT)
    trainer_page.get_by_role("button", name="Allow").click()
    expect(trainer_page.get_by_text(f"Connected: {ACCOUNT}")).to_be_visible()
    expect(trainer_page.get_by_text("Google Calendar connected.")).to_be_visible()

    member_page = member_context.new_page()
    log_in(member_page, live_server, "member@fittribe.example")
    open_live_page(member_page, f"{live_server}/trainers/maya-chen")
    first = min(free_instants(member_page))
    # The trainer's dentist appointment, added in Google Calendar: gone from the open profile.
    live_google.add_event(ACCOUNT, first, first + timedelta(hours=1), summary="Dentist")
    wait_for(lambda: first not in free_instants(member_page), "the busy time is still offered on the open profile")
    assert_same_document(member_page)

    start = hold_first_free_time(member_page)
    assert start > first
    pay_with_test_card(member_page)
    booking_id = int(member_page.url.rstrip("/").rsplit("/", 1)[1])
    wait_for(lambda: len(booking_events(live_google, booking_id)) == 1)
    [event] = booking_events(live_google, booking_id)
    assert datetime.fromisoformat(event["start"]["dateTime"].replace("Z", "+00:00")) == start

    member_page.get_by_role("link", name="Cancel session…").click()
    member_page.get_by_label("Reason").fill("Something came up")
    member_page.get_by_role("button", name="Yes, cancel the session").click()
    expect(member_page.get_by_text("Cancelled by Sam Member")).to_be_visible()
    wait_for(lambda: booking_events(live_google, booking_id) == [])
