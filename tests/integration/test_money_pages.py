"""A member's payment history and a trainer's earnings: own figures only, refunds shown, the
platform fee taken off, and each person sees only their own money."""
from datetime import timedelta

from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, Payment, TrainerProfile, User
from fittribe.services import booking_changes, earnings
from tests.helpers import demo_paid_session, text_of


def test_member_sees_their_payments_with_refunds(app, visitor, demo):
    refunded = demo_paid_session(app, days_ahead=3)
    with app.app_context():
        booking = db.session.get(Booking, refunded)
        booking_changes.cancel(booking, db.session.get(User, booking.member_id), "Travelling")
    visitor.login("member@fittribe.example")
    page = text_of(visitor.get("/dashboard/payments"))
    assert "Refunded" in page and "Succeeded" in page and "$65" in page and "(test mode)" in page
    visitor.logout()
    visitor.login("lucia@fittribe.example")  # another person: sees none of it
    assert "No payments yet" in text_of(visitor.get("/dashboard/payments"))


def test_trainer_earnings_split_pending_earned_and_fee(app, visitor, demo):
    demo_paid_session(app, days_ahead=3)
    with app.app_context():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
        seeded = db.session.scalar(select(Booking).where(Booking.trainer_id == trainer.id,
                                                         Booking.status == BookingStatus.CONFIRMED)
                                   .order_by(Booking.starts_at))
        seeded.status = BookingStatus.COMPLETED  # as if the seeded session had taken place
        db.session.commit()
        completed_amount = db.session.scalar(select(Payment.amount_cents).where(Payment.booking_id == seeded.id))
        figures = earnings.trainer_earnings(trainer, seeded.starts_at + timedelta(hours=2))
        assert figures.earned_cents == completed_amount and figures.pending_cents == 6500
        assert figures.net(10000) == 8500  # 15% platform fee
        assert sum(week.gross_cents for week in figures.weeks) == completed_amount
    visitor.login("trainer@fittribe.example")
    page = text_of(visitor.get("/dashboard/earnings"))
    assert "Earned" in page and "Pending" in page and "15% platform fee" in page
    visitor.logout()
    visitor.login("member@fittribe.example")
    assert visitor.get("/dashboard/earnings").status_code == 403
