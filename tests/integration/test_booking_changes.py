"""Cancelling and moving confirmed sessions: the refund policy is enforced, reasons are required,
the old time is freed, both people are told, and strangers get nothing."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, Notification, Payment, PaymentStatus, User
from fittribe.services import booking as booking_service
from fittribe.services import booking_changes
from tests.helpers import demo_paid_session, text_of


@pytest.fixture
def far(app, demo):
    return demo_paid_session(app, days_ahead=3)


def _state(app, booking_id: int):
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        paid = db.session.scalars(select(Payment.status).where(Payment.booking_id == booking_id)).all()
        return booking.status, paid, booking.starts_at


def _is_free(app, booking_id: int, start: datetime) -> bool:
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        return any(s.starts_at == start for s in booking_service.slots_for(booking.trainer, 60))


def _messages(app, kind: str) -> list[str]:
    with app.app_context():
        return db.session.scalars(select(Notification.message).where(Notification.kind == kind)).all()


def test_member_cancelling_early_gets_a_full_refund_and_the_time_is_freed(app, visitor, far):
    visitor.login("member@fittribe.example")
    page = visitor.get(f"/bookings/{far}/cancel")
    assert page.status_code == 200 and "full payment is refunded" in text_of(page)
    # No reason: a clear 422, nothing changed.
    response = visitor.post_form(f"/bookings/{far}/cancel", {"reason": "  "})
    assert response.status_code == 422 and "give a short reason" in text_of(response)
    assert _state(app, far)[:2] == (BookingStatus.CONFIRMED, [PaymentStatus.SUCCEEDED])
    response = visitor.post_form(f"/bookings/{far}/cancel", {"reason": "Sprained ankle"})
    assert response.status_code == 303
    status, paid, start = _state(app, far)
    assert status is BookingStatus.CANCELLED and paid == [PaymentStatus.REFUNDED]
    assert _is_free(app, far, start.replace(tzinfo=timezone.utc) if start.tzinfo is None else start)
    told = _messages(app, "cancelled")
    assert len(told) == 2 and all("Sprained ankle" in message for message in told)
    assert any("refunded in full" in message for message in told)
    page = text_of(visitor.get(f"/bookings/{far}"))
    assert "Cancelled by" in page and "Refunded" in page
    # A second submit (double click) changes nothing more.
    again = visitor.post_form(f"/bookings/{far}", {"reason": "again"}, post_url=f"/bookings/{far}/cancel")
    assert again.status_code == 422 and len(_messages(app, "cancelled")) == 2


def test_member_cancelling_late_gets_no_refund(app, far):
    with app.app_context():
        booking = db.session.get(Booking, far)
        member = db.session.get(User, booking.member_id)
        late = booking.starts_at - timedelta(hours=2)
        terms = booking_changes.cancel(booking, member, "Overslept", now=late)
        assert terms.refund is None
    assert _state(app, far)[:2] == (BookingStatus.CANCELLED, [PaymentStatus.SUCCEEDED])


def test_trainer_cancelling_late_still_refunds_in_full(app, far):
    with app.app_context():
        booking = db.session.get(Booking, far)
        trainer = db.session.get(User, booking.trainer.user_id)
        late = booking.starts_at - timedelta(hours=2)
        assert "always refunds" in booking_changes.cancel_terms(booking, trainer, late).explanation
        booking_changes.cancel(booking, trainer, "Family emergency", now=late)
    assert _state(app, far)[:2] == (BookingStatus.CANCELLED, [PaymentStatus.REFUNDED])


def test_a_started_session_cannot_be_cancelled(app, far):
    with app.app_context():
        booking = db.session.get(Booking, far)
        member = db.session.get(User, booking.member_id)
        with pytest.raises(booking_service.BookingError):
            booking_changes.cancel(booking, member, "Too late", now=booking.starts_at)
    assert _state(app, far)[0] is BookingStatus.CONFIRMED


def test_strangers_cannot_see_cancel_or_move_a_session(app, visitor, far):
    visitor.login("lucia@fittribe.example")  # another trainer
    assert visitor.get(f"/bookings/{far}/cancel").status_code == 404
    assert visitor.get(f"/bookings/{far}/reschedule").status_code == 404
    assert _state(app, far)[0] is BookingStatus.CONFIRMED


def test_member_moves_the_session_to_another_free_time(app, visitor, far):
    old_start = _state(app, far)[2]
    visitor.login("member@fittribe.example")
    page = visitor.get(f"/bookings/{far}/reschedule")
    assert page.status_code == 200
    with app.app_context():
        booking = db.session.get(Booking, far)
        new_start = next(s.starts_at for s in booking_changes.reschedule_options(booking)
                         if s.starts_at > booking.starts_at + timedelta(hours=3))
    assert new_start.isoformat() in page.get_data(as_text=True)
    missing_reason = visitor.post_form(f"/bookings/{far}/reschedule", {"starts_at": new_start.isoformat(), "reason": ""})
    assert missing_reason.status_code == 422 and _state(app, far)[2] == old_start
    response = visitor.post_form(f"/bookings/{far}/reschedule", {"starts_at": new_start.isoformat(),
                                                                 "reason": "Work meeting moved"})
    assert response.status_code == 303
    status, paid, start = _state(app, far)
    assert status is BookingStatus.CONFIRMED and paid == [PaymentStatus.SUCCEEDED]
    assert start == new_start
    assert _is_free(app, far, old_start) and not _is_free(app, far, new_start)
    assert len(_messages(app, "rescheduled")) == 2


def test_moving_to_a_taken_or_invented_time_is_refused(app, visitor, far):
    other = demo_paid_session(app, days_ahead=4)
    taken = (_state(app, other)[2])
    visitor.login("member@fittribe.example")
    for start in (taken.isoformat(), "2020-01-01T10:00:00+00:00", "not a time"):
        response = visitor.post_form(f"/bookings/{far}/reschedule", {"starts_at": start, "reason": "Why not"})
        assert response.status_code == 422
    assert _state(app, far)[0] is BookingStatus.CONFIRMED and len(_messages(app, "rescheduled")) == 0


def test_member_cannot_move_a_session_inside_the_policy_window(app, far):
    with app.app_context():
        booking = db.session.get(Booking, far)
        member = db.session.get(User, booking.member_id)
        trainer = db.session.get(User, booking.trainer.user_id)
        late = booking.starts_at - timedelta(hours=5)
        assert not booking_changes.can_reschedule(booking, member, late)
        assert booking_changes.can_reschedule(booking, trainer, late)


# --- no-shows ---------------------------------------------------------------------------------

def _started(app, booking_id: int, minutes_ago: int) -> None:
    """Move the paid session so it started `minutes_ago` (an hour long)."""
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        booking.starts_at = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
        booking.ends_at = booking.starts_at + timedelta(hours=1)
        db.session.commit()


def test_member_reports_that_the_trainer_did_not_come_and_is_refunded(app, visitor, far):
    _started(app, far, 20)
    visitor.login("member@fittribe.example")
    assert "The trainer did not come" in text_of(visitor.get(f"/bookings/{far}"))
    page = visitor.get(f"/bookings/{far}/no-show")
    assert page.status_code == 200 and "your payment is refunded in full" in text_of(page)
    empty = visitor.post_form(f"/bookings/{far}/no-show", {"reason": " "})
    assert empty.status_code == 422 and "give a short reason" in text_of(empty)
    assert _state(app, far)[:2] == (BookingStatus.CONFIRMED, [PaymentStatus.SUCCEEDED])

    response = visitor.post_form(f"/bookings/{far}/no-show", {"reason": "Waited 20 minutes, nobody joined"})
    assert response.status_code == 303
    assert _state(app, far)[:2] == (BookingStatus.NO_SHOW, [PaymentStatus.REFUNDED])
    told = _messages(app, "no_show")
    assert len(told) == 2 and any("refunded in full" in m for m in told)
    assert any("Sam Member reported that you did not join" in m and "Waited 20 minutes" in m for m in told)
    assert any("Trainer no-show reported: Maya Chen" in m for m in _messages(app, "alert"))  # admins follow up
    recent = text_of(visitor.get("/dashboard/"))  # listed at once, though its hour is not over
    assert "No-show (trainer)" in recent
    shown = text_of(visitor.get(f"/bookings/{far}"))
    assert "Sam Member reported that Maya Chen did not come:" in shown and "Waited 20 minutes, nobody joined" in shown
    again = visitor.post_form(f"/bookings/{far}", {"reason": "again"}, post_url=f"/bookings/{far}/no-show")
    assert again.status_code == 422 and len(_messages(app, "no_show")) == 2  # a double submit changes nothing


def test_trainer_reports_that_the_member_did_not_come_and_the_payment_is_kept(app, far):
    from fittribe.services.session_status import status_of

    with app.app_context():
        booking = db.session.get(Booking, far)
        trainer = db.session.get(User, booking.trainer.user_id)
        after = booking.ends_at + timedelta(hours=1)
        booking.status = BookingStatus.COMPLETED  # the worker completed it at the end
        db.session.commit()
        terms = booking_changes.report_no_show(booking, trainer, "Never showed up", now=after)
        assert terms.refund is None
        assert status_of(booking, after).label == "No-show (member)"
    assert _state(app, far)[:2] == (BookingStatus.NO_SHOW, [PaymentStatus.SUCCEEDED])
    [told] = _messages(app, "no_show")
    assert "Maya Chen reported that you did not join" in told and "Never showed up" in told


def test_a_no_show_is_reported_only_in_its_window_by_the_two_people_and_not_once_the_trainer_joined(app, far):
    with app.app_context():
        booking = db.session.get(Booking, far)
        member = db.session.get(User, booking.member_id)
        trainer = db.session.get(User, booking.trainer.user_id)
        admin = db.session.scalar(select(User).where(User.email == "admin@fittribe.example"))
        start, end = booking.starts_at, booking.ends_at
        terms = booking_changes.no_show_terms
        assert not terms(booking, member, start + timedelta(minutes=5)).allowed  # give them ten minutes
        assert terms(booking, member, start + timedelta(minutes=10)).allowed
        assert terms(booking, trainer, end + timedelta(hours=47)).allowed
        assert not terms(booking, trainer, end + timedelta(hours=49)).allowed  # too late to report
        assert not terms(booking, admin, start + timedelta(minutes=30)).allowed
        booking.trainer_joined_at = start + timedelta(minutes=2)
        db.session.commit()
        refused = terms(booking, member, start + timedelta(minutes=30))
        assert not refused.allowed and "opened the session at" in refused.explanation
        assert terms(booking, trainer, start + timedelta(minutes=30)).allowed  # she can still report the member
        with pytest.raises(booking_service.BookingError, match="opened the session"):
            booking_changes.report_no_show(booking, member, "Nobody came", now=start + timedelta(minutes=30))
    assert _state(app, far)[:2] == (BookingStatus.CONFIRMED, [PaymentStatus.SUCCEEDED])
