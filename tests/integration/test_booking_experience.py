"""The booking experience (issue 15): the hold's countdown and the summary carried through hold →
checkout → "You're booked", numbers from the settings that enforce them, recent sessions, /search,
the rating's accessible name and the unread badge."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from fittribe import clock
from fittribe.extensions import db
from fittribe.models import Booking, User
from fittribe.services import booking_changes
from tests.helpers import demo_hold, demo_paid_session, text_of

MEMBER = "member@fittribe.example"


def test_the_hold_counts_down_from_the_setting_with_pay_and_release_apart(app, visitor, demo, monkeypatch):
    monkeypatch.setitem(app.config, "HOLD_MINUTES", 15)
    held = demo_hold(app, days_ahead=3)
    visitor.login(MEMBER)
    page = text_of(visitor.get(f"/bookings/{held}"))
    assert "Your time is held" in page
    # Server time is the truth: the minutes left are text (all a page without JS shows), and the
    # script only ticks them down from the seconds the server counted.
    assert "15 minutes left" in page and 'data-seconds-left="' in page and "we hold a time for 15 minutes" in page
    assert "js/countdown" in page
    actions = page.split('class="hold-actions"', 1)[1].split("</div>", 1)[0]
    assert "Pay $" in actions and "Release this time" in actions
    # The summary: the trainer, the date and time on the member's clock, length, price, policy.
    summary = page.split('class="summary"', 1)[1]
    assert "Maya Chen" in summary and "60 minutes" in summary and "$" in summary
    assert "Free cancellation until" in summary and "(24 hours before the start)" in summary


def test_a_time_inside_the_refund_window_does_not_promise_free_cancellation(app, visitor, demo, monkeypatch):
    # The session is 3 days away and the window 5 days: the deadline has passed before the hold.
    monkeypatch.setitem(app.config, "CANCEL_FULL_REFUND_HOURS", 120)
    held = demo_hold(app, days_ahead=3)
    visitor.login(MEMBER)
    for path in (f"/bookings/{held}", f"/bookings/{held}/pay"):
        summary = text_of(visitor.get(path)).split('class="summary"', 1)[1]
        assert "Free cancellation until" not in summary
        assert "It starts in less than 120 hours: once paid, cancelling does not refund the payment." in summary


def test_checkout_says_when_the_session_is_and_how_long_the_hold_lasts(app, visitor, demo):
    held = demo_hold(app, days_ahead=3)
    visitor.login(MEMBER)
    page = text_of(visitor.get(f"/bookings/{held}/pay"))
    with app.app_context():
        booking = db.session.get(Booking, held)
        member = db.session.scalar(select(User).where(User.email == MEMBER))
        start = booking.starts_at.astimezone(ZoneInfo(member.time_zone))
    assert start.strftime("%A %-d %B %Y") in page and start.strftime("%H:%M") in page
    assert "minutes left" in page and "Free cancellation until" in page


def test_you_are_booked_page_offers_join_and_calendars_not_a_raw_link(app, visitor, demo):
    paid = demo_paid_session(app, days_ahead=3)
    visitor.login(MEMBER)
    page = text_of(visitor.get(f"/bookings/{paid}"))
    assert "You're booked" in page and "Add to Google Calendar" in page and f"/bookings/{paid}/calendar.ics" in page
    assert ">https://meet.jit.si" not in page
    assert "The Join button appears here 10 minutes before the start" in page
    assert f'action="/bookings/{paid}/join"' not in page
    with app.app_context():
        start = db.session.get(Booking, paid).starts_at
        clock.set_offset(start - timedelta(minutes=5) - datetime.now(timezone.utc))  # reset after each test
    opened = text_of(visitor.get(f"/bookings/{paid}"))
    assert f'action="/bookings/{paid}/join"' in opened and "Join the video session" in opened


def test_a_cancelled_future_session_is_not_a_recent_session(app, visitor, demo):
    paid = demo_paid_session(app, days_ahead=3)
    with app.app_context():
        booking = db.session.get(Booking, paid)
        member = db.session.scalar(select(User).where(User.email == MEMBER))
        booking_changes.cancel(booking, member, "Plans changed")
    visitor.login(MEMBER)
    dashboard = text_of(visitor.get("/dashboard/"))
    recent = dashboard.split("Recent sessions", 1)[1] if "Recent sessions" in dashboard else ""
    assert "Cancelled" not in recent


def test_numbers_on_pages_follow_the_settings(app, visitor, demo, monkeypatch):
    monkeypatch.setitem(app.config, "CANCEL_FULL_REFUND_HOURS", 48)
    assert "free cancellation up to 48 hours" in text_of(visitor.get("/"))
    monkeypatch.setitem(app.config, "CANCEL_FULL_REFUND_HOURS", 1)
    assert "free cancellation up to 1 hour before" in text_of(visitor.get("/"))


def test_search_path_redirects_to_the_search_with_its_filters(client):
    response = client.get("/search?q=yoga&specialty=yoga")
    assert response.status_code == 301
    assert response.headers["Location"] == "/trainers?q=yoga&specialty=yoga"


def test_search_headings_do_not_skip_a_level(client, demo):
    page = client.get("/trainers").get_data(as_text=True)
    levels = [int(page[i + 2]) for i in range(len(page)) if page.startswith("<h", i) and page[i + 2:i + 3].isdigit()]
    assert levels[0] == 1 and all(b - a <= 1 for a, b in zip(levels, levels[1:])), levels


def test_rating_is_an_image_with_a_name(client, demo):
    page = client.get("/trainers").get_data(as_text=True)
    assert '<span class="rating" role="img" aria-label="Rated ' in page
    assert 'class="rating" aria-label' not in page


def test_no_unread_badge_when_nothing_is_unread(visitor, demo):
    visitor.login(MEMBER)
    page = visitor.get("/dashboard/").get_data(as_text=True)
    badge = page.split('id="unread-count"', 1)[1].split(">", 1)[0]
    assert "hidden" in badge
