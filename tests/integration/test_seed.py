"""Demo data: idempotent, complete, and the bulk generator for benchmarks."""
from sqlalchemy import func, select

from fittribe.extensions import db
from fittribe.models import Role, TrainerProfile, User
from fittribe.seed import DEMO_ACCOUNTS, DEMO_PASSWORD, seed_bulk_trainers


def counts():
    return (db.session.scalar(select(func.count(User.id))), db.session.scalar(select(func.count(TrainerProfile.id))))


def test_flask_seed_is_idempotent_and_prints_demo_logins(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed"])
    assert first.exit_code == 0, first.output
    for role, (email, _, _) in DEMO_ACCOUNTS.items():
        assert email in first.output
    assert DEMO_PASSWORD in first.output
    with app.app_context():
        after_first = counts()
        assert after_first == (14, 6)  # one account per role, 6 trainers and the 6 regulars of seed_history()
        listed = db.session.scalars(select(TrainerProfile).where(TrainerProfile.is_approved.is_(True))).all()
        assert len(listed) == 5
        assert len({t.time_zone for t in listed}) == 5 and len({t.price_cents for t in listed}) == 5
        assert all(t.specialties and t.languages and t.bio and t.rating_count for t in listed)
        admin = db.session.scalar(select(User).where(User.role == Role.ADMIN))
        assert admin.check_password(DEMO_PASSWORD)
        # The demo member has one upcoming confirmed, paid session with a video link.
        from fittribe.models import Booking, BookingStatus, Payment

        session = db.session.scalar(select(Booking).where(Booking.status == BookingStatus.CONFIRMED))
        assert session.member.email == "member@fittribe.example" and session.meeting_url
        assert db.session.scalar(select(func.count(Booking.id)).where(Booking.status != BookingStatus.COMPLETED)) == 1
        # Every booking is paid (the history's completed sessions too).
        assert db.session.scalar(select(func.count(Payment.id))) == db.session.scalar(select(func.count(Booking.id)))
        bookings_after_first = db.session.scalar(select(func.count(Booking.id)))
    second = runner.invoke(args=["seed"])
    assert second.exit_code == 0 and "0 users and 0 trainers added" in second.output
    with app.app_context():
        assert counts() == after_first
        from fittribe.models import Booking

        assert db.session.scalar(select(func.count(Booking.id))) == bookings_after_first


def test_bulk_trainers_top_up_to_the_requested_number(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed", "--trainers", "30"]).exit_code == 0
    assert runner.invoke(args=["seed", "--trainers", "30"]).exit_code == 0
    with app.app_context():
        bulk = db.session.scalar(select(func.count(User.id)).where(User.email.like("bulk-%")))
        assert bulk == 30
        slugs = db.session.scalars(select(TrainerProfile.slug).where(TrainerProfile.slug.like("bulk-%"))).all()
        assert len(set(slugs)) == 30
        assert seed_bulk_trainers(10) == 0


def test_seed_history_adds_paid_completed_sessions_and_reviews_with_open_reports(app):
    """seed_history(): past completed, paid sessions reviewed mostly 4-5 stars, 2-3 of the reviews
    reported, every demo trainer's rating recomputed from its reviews; the demo member's upcoming
    session stays as it was and one of their finished sessions is still open for a review."""
    from decimal import Decimal

    from fittribe.models import Booking, BookingStatus, Payment, PaymentStatus, Review, ReviewFlag
    from fittribe.seed import seed_history
    from fittribe.services import reviews as review_service

    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    with app.app_context():
        reviews = db.session.scalars(select(Review)).all()
        assert len(reviews) >= 20 and sum(r.rating >= 4 for r in reviews) / len(reviews) >= 0.7
        assert any(r.rating <= 2 for r in reviews) and any(r.reply for r in reviews)
        completed = db.session.scalars(select(Booking).where(Booking.status == BookingStatus.COMPLETED)).all()
        by_id = {b.id: b for b in completed}
        assert all(by_id[r.booking_id].member_id == r.member_id for r in reviews)  # reviews of completed sessions
        assert len(completed) > len(reviews)
        paid = db.session.scalars(select(Payment).where(Payment.booking_id.in_([b.id for b in completed]))).all()
        assert len(paid) == len(completed)
        assert all(p.status is PaymentStatus.SUCCEEDED and p.provider == "simulated" for p in paid)
        flagged = {f.review_id for f in db.session.scalars(select(ReviewFlag).where(ReviewFlag.resolved_at.is_(None)))}
        assert 2 <= len(flagged) <= 3
        assert len(review_service.moderation_queue()) == len(flagged)
        for trainer in db.session.scalars(select(TrainerProfile).where(TrainerProfile.is_approved.is_(True))):
            stars = [r.rating for r in reviews if r.trainer_id == trainer.id]
            assert trainer.rating_count == len(stars) > 0
            assert trainer.rating_avg == (Decimal(sum(stars)) / len(stars)).quantize(Decimal("0.01"))
        member = db.session.scalar(select(User).where(User.email == "member@fittribe.example"))
        upcoming = db.session.scalar(select(Booking).where(Booking.member_id == member.id,
                                                           Booking.status == BookingStatus.CONFIRMED))
        assert upcoming is not None
        reviewable = [b for b in completed if b.member_id == member.id
                      and review_service.review_state(b, member).may_write]
        assert len(reviewable) == 1 and reviewable[0].trainer.slug == "maya-chen"
        assert seed_history() == {"sessions": 0, "reviews": 0, "flags": 0}  # idempotent
