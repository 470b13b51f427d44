"""Live session status on the dashboards: announced once per change as time passes, the Join
button from 10 minutes before the start (for the two people only), the trainer's join recorded."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fittribe import clock
from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, Event
from fittribe.services import session_status
from tests.helpers import text_of


@pytest.fixture
def seeded(app, demo):
    """The demo member's confirmed, paid session with Maya: (id, start)."""
    with app.app_context():
        booking = db.session.scalar(select(Booking).where(Booking.status == BookingStatus.CONFIRMED))
        return booking.id, booking.starts_at


def _move_clock_to(app, moment) -> None:
    with app.app_context():
        clock.set_offset(moment - datetime.now(timezone.utc))


def _announced(app) -> int:
    with app.app_context():
        return sum(1 for payload in db.session.scalars(select(Event.payload)) if payload.get("fragment") == "upcoming")


def test_each_status_change_is_announced_once_to_both_people(app, seeded):
    booking_id, start = seeded
    with app.app_context():
        assert session_status.announce_phase_changes(now=start - timedelta(minutes=30)) == 1
        assert session_status.announce_phase_changes(now=start - timedelta(minutes=30)) == 0  # nothing new
        assert session_status.announce_phase_changes(now=start - timedelta(minutes=29)) == 1  # the countdown
        assert session_status.announce_phase_changes(now=start + timedelta(minutes=1)) == 1  # live
        assert session_status.announce_phase_changes(now=start + timedelta(minutes=61)) == 1  # completed
    assert _announced(app) == 8  # 4 changes × member and trainer


def test_join_opens_ten_minutes_before_and_records_the_trainer(app, visitor, seeded):
    booking_id, start = seeded
    visitor.login("member@fittribe.example")
    assert "Join" not in text_of(visitor.get("/dashboard/sessions"))
    early = visitor.post_form("/dashboard/", {}, post_url=f"/bookings/{booking_id}/join")
    assert early.status_code == 409 and "opens 10 minutes before" in text_of(early)

    _move_clock_to(app, start - timedelta(minutes=9))
    fragment = visitor.get("/dashboard/sessions")
    assert "Starting in 9 min" in text_of(fragment) and "Join" in text_of(fragment)
    assert len(fragment.data) <= 10_000  # dashboard fragments stay small
    joined = visitor.post_form("/dashboard/", {}, post_url=f"/bookings/{booking_id}/join")
    assert joined.status_code == 303 and joined.headers["Location"].startswith("https://meet.jit.si/FitTribe-")
    with app.app_context():
        assert db.session.get(Booking, booking_id).trainer_joined_at is None  # a member's join isn't the trainer's

    visitor.logout()
    visitor.login("trainer@fittribe.example")
    visitor.post_form("/dashboard/", {}, post_url=f"/bookings/{booking_id}/join")
    with app.app_context():
        assert db.session.get(Booking, booking_id).trainer_joined_at is not None
    visitor.logout()
    visitor.login("member@fittribe.example")
    assert "Live now" in text_of(visitor.get("/dashboard/sessions"))


def test_only_the_two_people_can_join(app, visitor, seeded):
    booking_id, start = seeded
    _move_clock_to(app, start - timedelta(minutes=5))
    visitor.login("admin@fittribe.example")
    assert visitor.post_form("/admin/trainers", {}, post_url=f"/bookings/{booking_id}/join").status_code == 403
    visitor.logout()
    visitor.login("lucia@fittribe.example")
    assert visitor.post_form("/dashboard/", {}, post_url=f"/bookings/{booking_id}/join").status_code == 404


def test_finished_sessions_move_to_recent_sessions(app, visitor, seeded):
    booking_id, start = seeded
    _move_clock_to(app, start + timedelta(hours=2))
    visitor.login("trainer@fittribe.example")
    page = visitor.get("/dashboard/")
    assert "Recent sessions" in text_of(page) and "Completed" in text_of(page)


def test_a_finished_session_offers_the_member_a_review(app, visitor, seeded):
    booking_id, start = seeded
    _move_clock_to(app, start + timedelta(hours=2))
    with app.app_context():
        from fittribe.services import booking as booking_service

        booking_service.complete_finished(now=start + timedelta(hours=2))
    visitor.login("member@fittribe.example")
    assert f"/bookings/{booking_id}/review" in visitor.get("/dashboard/sessions").get_data(as_text=True)
