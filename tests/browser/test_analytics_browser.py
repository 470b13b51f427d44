"""Admin analytics in Chromium against the live gunicorn server: an admin's open analytics page
updates its revenue and booking figures (and charts) live when a member's booking is paid, without
reloading; and the page, its period form and its figures work with JavaScript switched off."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import TrainerProfile, User
from fittribe.services import analytics
from fittribe.services import booking as booking_service
from fittribe.services import payments
from tests.browser.pages import assert_same_document, log_in, open_live_page

pytestmark = pytest.mark.browser

PUSH_TIMEOUT_MS = 8_000  # the charts re-fetch at most every 5 s (throttle), the figures every 2 s


def book_and_pay(app) -> None:
    """What the member's checkout does, through the same services (the test's app and the live
    server share the database and Redis): hold a time with Lucía, then pay with the test card."""
    with app.app_context():
        try:
            trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "lucia-fernandez"))
            member = db.session.scalar(select(User).where(User.email == "member@fittribe.example"))
            slot = booking_service.slots_for(trainer, 60, days=7)[0]
            held = booking_service.hold(member, trainer, slot.starts_at, 60)
            assert payments.simulated_charge(held, "4242424242424242")["outcome"] == "confirmed"
        finally:
            db.session.remove()



def test_open_analytics_page_updates_live_when_a_booking_is_paid(app, live_server, demo, new_context):
    page = new_context().new_page()
    log_in(page, live_server, "admin@fittribe.example", lands_on="/admin/trainers")
    open_live_page(page, f"{live_server}/admin/analytics")
    # The demo: one confirmed session with Maya, paid today (65 USD).
    expect(page.locator("#bookings-total")).to_have_text("1")
    expect(page.locator("#revenue-today")).to_have_text("65.00 USD")
    expect(page.locator("#conversion")).to_have_text("100.0%")
    today = page.locator("#daily tbody tr").last

    book_and_pay(app)  # Lucía, 45 USD

    expect(page.locator("#bookings-total")).to_have_text("2", timeout=PUSH_TIMEOUT_MS)
    expect(page.locator("#revenue-today")).to_have_text("110.00 USD", timeout=PUSH_TIMEOUT_MS)
    expect(page.locator("#revenue-30d")).to_have_text("110.00 USD")
    expect(page.locator("#top-trainers")).to_contain_text("Lucía Fernández")
    expect(page.locator("#bookings-by-status tr[data-status=confirmed] td")).to_have_text("2")
    # The charts fragment follows (its own, slower throttle): today's row of the data table.
    expect(today.locator("td").first).to_have_text("2", timeout=PUSH_TIMEOUT_MS)
    expect(today.locator("td").last).to_have_text("110.00", timeout=PUSH_TIMEOUT_MS)
    assert page.locator("#revenue-chart path").count() == 30
    assert_same_document(page)
    # The period survived the re-fetches: still the default 30 days ending today.
    assert page.locator("#analytics-figures").get_attribute("hx-get").endswith(
        f"to={datetime.now(timezone.utc).date().isoformat()}")


def test_a_burst_of_changes_does_not_cause_a_storm_of_requests(app, live_server, demo, new_context):
    page = new_context().new_page()
    log_in(page, live_server, "admin@fittribe.example", lands_on="/admin/trainers")
    open_live_page(page, f"{live_server}/admin/analytics")
    fetched = []
    page.on("request", lambda request: fetched.append(request.url.split("?")[0].rsplit("/", 1)[-1])
            if "/admin/analytics/" in request.url else None)
    with app.app_context():
        try:
            for _ in range(20):  # twenty separate transactions, as twenty bookings would be
                analytics.announce_changed()
                db.session.commit()
        finally:
            db.session.remove()
    page.wait_for_timeout(3_000)
    # throttle:2s: one request at once and one at the end of the window; charts (5 s): one so far.
    assert 1 <= fetched.count("figures") <= 2, fetched
    assert fetched.count("charts") == 1, fetched
    assert_same_document(page)


def test_analytics_work_with_javascript_off(live_server, demo, new_context):
    page = new_context(java_script_enabled=False).new_page()
    log_in(page, live_server, "admin@fittribe.example", lands_on="/admin/trainers")
    page.get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Analytics", exact=True)).to_be_visible()
    expect(page.locator("#revenue-30d")).to_have_text("65.00 USD")
    expect(page.get_by_role("img", name="Net revenue per day (USD)")).to_be_visible()

    # A period with nothing in it, through the plain GET form.
    old = datetime.now(timezone.utc).date() - timedelta(days=60)
    page.get_by_label("From", exact=True).fill((old - timedelta(days=6)).isoformat())
    page.get_by_label("To", exact=True).fill(old.isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(f"{live_server}/admin/analytics?from={old - timedelta(days=6)}&to={old}")
    expect(page.locator("#bookings-total")).to_have_text("0")
    expect(page.locator("#revenue-period")).to_have_text("0.00 USD")
    expect(page.locator("#revenue-chart path")).to_have_count(7)

    # A backwards range comes back as a 400 with the message next to the form.
    page.get_by_label("From", exact=True).fill(old.isoformat())
    page.get_by_label("To", exact=True).fill((old - timedelta(days=1)).isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("alert")).to_contain_text("The “from” date is after the “to” date")
