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
        assert after_first == (8, 6)
        listed = db.session.scalars(select(TrainerProfile).where(TrainerProfile.is_approved.is_(True))).all()
        assert len(listed) == 5
        assert len({t.time_zone for t in listed}) == 5 and len({t.price_cents for t in listed}) == 5
        assert all(t.specialties and t.languages and t.bio and t.rating_count for t in listed)
        admin = db.session.scalar(select(User).where(User.role == Role.ADMIN))
        assert admin.check_password(DEMO_PASSWORD)
        # The demo member has one upcoming confirmed, paid session with a video link.
        from fittribe.models import Booking, BookingStatus, Payment

        session = db.session.scalar(select(Booking))
        assert session.status is BookingStatus.CONFIRMED and session.meeting_url
        assert db.session.scalar(select(func.count(Payment.id))) == 1
    second = runner.invoke(args=["seed"])
    assert second.exit_code == 0 and "0 users and 0 trainers added" in second.output
    with app.app_context():
        assert counts() == after_first
        from fittribe.models import Booking

        assert db.session.scalar(select(func.count(Booking.id))) == 1


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
