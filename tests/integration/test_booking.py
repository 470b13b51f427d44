"""Holds: the slot engine applied to a trainer's stored hours, and no double booking, ever."""
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, Event, Notification, TrainerProfile, User
from fittribe.services import booking
from fittribe.services.booking import BookingError, SlotTaken

UTC = timezone.utc
# Maya (America/Los_Angeles) is open Monday-Friday 06:00-10:00: Monday 6 July 2026, 06:00 PDT = 13:00 UTC.
MONDAY_6AM = datetime(2026, 7, 6, 13, tzinfo=UTC)
NOW = datetime(2026, 7, 5, 12, tzinfo=UTC)


def maya(session) -> TrainerProfile:
    return session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))


def user(session, email: str) -> User:
    return session.scalar(select(User).where(User.email == email))


def new_member(session, n: int) -> User:
    member = User(email=f"racer{n}@example.com", name=f"Racer {n}", password_hash="x")
    session.add(member)
    return member


def test_demo_trainers_have_weekly_hours(db_session, demo):
    slots = booking.slots_for(maya(db_session), 60, now=NOW, days=3)
    assert slots and slots[0].starts_at == MONDAY_6AM
    assert all(s.ends_at - s.starts_at == timedelta(hours=1) for s in slots)


def test_hold_takes_the_slot_and_announces_it(db_session, demo):
    trainer, member = maya(db_session), user(db_session, "member@fittribe.example")
    held = booking.hold(member, trainer, MONDAY_6AM, 60, now=NOW)
    assert held.status is BookingStatus.HELD and held.price_cents == 6500
    assert held.hold_expires_at == NOW + timedelta(minutes=10)
    assert MONDAY_6AM not in [s.starts_at for s in booking.slots_for(trainer, 60, now=NOW, days=3)]
    events = db_session.scalars(select(Event).order_by(Event.id.desc()).limit(2)).all()
    # Pushed to open pages: the trainer's calendar and the member's session list.
    assert {(e.channel, e.payload.get("fragment")) for e in events} == {(f"trainer:{trainer.id}", "availability"),
                                                                        (f"user:{member.id}", "upcoming")}
    with pytest.raises(SlotTaken, match="just taken"):
        booking.hold(user(db_session, "admin@fittribe.example"), trainer, MONDAY_6AM, 60, now=NOW)


@pytest.mark.parametrize("starts_at, length, message", [
    (MONDAY_6AM - timedelta(days=2), 60, "just taken"),        # in the past
    (MONDAY_6AM - timedelta(hours=3), 60, "just taken"),       # before opening hours
    (MONDAY_6AM + timedelta(minutes=10), 60, "just taken"),    # not on the 30-minute grid
    (MONDAY_6AM, 45, "session lengths"),                        # not one of her lengths
])
def test_bad_holds_change_nothing(db_session, demo, starts_at, length, message):
    trainer, member = maya(db_session), user(db_session, "member@fittribe.example")
    with pytest.raises(BookingError, match=message):
        booking.hold(member, trainer, starts_at, length, now=NOW)
    assert db_session.scalar(select(func.count(Booking.id)).where(Booking.status == BookingStatus.HELD)) == 0


def test_a_member_may_hold_only_a_few_slots(db_session, demo):
    trainer, member = maya(db_session), user(db_session, "member@fittribe.example")
    for n in range(3):  # 06:00, 07:30, 09:00: her 15 minutes after each session kept free
        booking.hold(member, trainer, MONDAY_6AM + timedelta(minutes=90 * n), 60, now=NOW)
    with pytest.raises(BookingError, match="already hold"):
        booking.hold(member, trainer, MONDAY_6AM + timedelta(days=1), 60, now=NOW)


def test_an_expired_hold_frees_the_slot_in_the_same_transaction(db_session, demo):
    trainer = maya(db_session)
    first = booking.hold(user(db_session, "member@fittribe.example"), trainer, MONDAY_6AM, 60, now=NOW)
    later = NOW + timedelta(minutes=11)
    second = booking.hold(user(db_session, "admin@fittribe.example"), trainer, MONDAY_6AM, 60, now=later)
    db_session.refresh(first)
    assert first.status is BookingStatus.EXPIRED and second.status is BookingStatus.HELD


def _insert(session, trainer_id, member_id, start, minutes, status="held"):
    session.execute(insert(Booking).values(
        trainer_id=trainer_id, member_id=member_id, starts_at=start, ends_at=start + timedelta(minutes=minutes),
        status=BookingStatus(status), price_cents=1, currency="USD"))
    session.flush()


def test_database_refuses_overlapping_active_bookings(db_session, demo):
    trainer, member = maya(db_session), user(db_session, "member@fittribe.example")
    _insert(db_session, trainer.id, member.id, MONDAY_6AM, 60)
    _insert(db_session, trainer.id, member.id, MONDAY_6AM + timedelta(hours=1), 60)  # adjacent: fine
    _insert(db_session, trainer.id, member.id, MONDAY_6AM - timedelta(hours=1), 60, "confirmed")
    _insert(db_session, trainer.id, member.id, MONDAY_6AM + timedelta(minutes=30), 60, "cancelled")  # inactive
    db_session.commit()
    for start, minutes in ((MONDAY_6AM + timedelta(minutes=30), 60), (MONDAY_6AM - timedelta(minutes=15), 30),
                           (MONDAY_6AM + timedelta(minutes=10), 20)):
        with pytest.raises(IntegrityError):
            _insert(db_session, trainer.id, member.id, start, minutes, "confirmed")
        db_session.rollback()
    # Cancelling frees the time for the constraint too.
    db_session.execute(update(Booking).where(Booking.starts_at == MONDAY_6AM).values(status=BookingStatus.CANCELLED))
    _insert(db_session, trainer.id, member.id, MONDAY_6AM + timedelta(minutes=15), 30)


def test_fifty_concurrent_holds_on_one_slot_exactly_one_wins(app, demo):
    with app.app_context():
        trainer_id = maya(db.session).id
        racers = [new_member(db.session, n) for n in range(50)]
        db.session.commit()
        racer_ids = [r.id for r in racers]
    start = threading.Barrier(50, timeout=30)
    outcomes: list[str] = []

    def attempt(member_id: int) -> None:
        start.wait()  # before touching the pool: 50 threads share 15 connections
        with app.app_context():  # its own session and connection
            trainer, member = db.session.get(TrainerProfile, trainer_id), db.session.get(User, member_id)
            try:
                booking.hold(member, trainer, MONDAY_6AM, 60, now=NOW)
                outcomes.append("held")
            except SlotTaken:
                outcomes.append("taken")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(member_id,)) for member_id in racer_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["held"] + ["taken"] * 49
    with app.app_context():
        assert db.session.scalar(select(func.count(Booking.id)).where(Booking.status == BookingStatus.HELD)) == 1


def test_profile_calendar_shows_free_times_on_the_viewers_clock_and_drops_held_ones(app, client, visitor, demo):
    page = client.get("/trainers/maya-chen").get_data(as_text=True)
    assert 'id="availability" data-live hx-get="/trainers/maya-chen/availability"' in page
    assert "America/Los Angeles (the trainer's time zone" in page
    fragment = client.get("/trainers/maya-chen/calendar", headers={"HX-Request": "true", "HX-Request-Type": "partial"})
    html = fragment.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="calendar"') and "<html" not in html
    first_time = html.split('<time datetime="', 1)[1].split('"', 1)[0]
    times = client.get("/trainers/maya-chen/availability", headers={"HX-Request": "true", "HX-Request-Type": "partial"})
    assert times.get_data(as_text=True).lstrip().startswith('<div id="availability" data-live')

    with app.app_context():
        trainer, member = maya(db.session), user(db.session, "member@fittribe.example")
        shortest = min(trainer.session_lengths)  # the calendar opens on her shortest session
        slot = booking.slots_for(trainer, shortest, days=7)[0]
        assert slot.local(trainer.time_zone)[0].isoformat() == first_time
        booking.hold(member, trainer, slot.starts_at, shortest)
    assert first_time not in client.get("/trainers/maya-chen/calendar").get_data(as_text=True)

    visitor.login("member@fittribe.example")  # Sam lives in Europe/London
    mine = visitor.get("/trainers/maya-chen/calendar").get_data(as_text=True)
    assert "Europe/London" in mine
    assert "+00:00" in mine or "+01:00" in mine  # London offsets, not Los Angeles ones


def _first_slot_form(html: str) -> dict:
    form = html.split('action="/trainers/maya-chen/hold"', 1)[1]
    return {"starts_at": form.split('name="starts_at" value="', 1)[1].split('"', 1)[0],
            "length": form.split('name="length" value="', 1)[1].split('"', 1)[0]}


def test_member_holds_a_time_from_the_profile_without_js(app, visitor, demo):
    anonymous = visitor.get("/trainers/maya-chen").get_data(as_text=True)
    assert 'action="/trainers/maya-chen/hold"' not in anonymous and "to book: a time is held for you" in anonymous
    visitor.login("member@fittribe.example")
    page = visitor.get("/trainers/maya-chen").get_data(as_text=True)
    chosen = _first_slot_form(page)
    response = visitor.post_form("/trainers/maya-chen", chosen, post_url="/trainers/maya-chen/hold")
    assert response.status_code == 303 and response.headers["Location"].startswith("/bookings/")
    held = visitor.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your time is held" in held and "10 minutes left" in held and "Europe/London" in held
    assert chosen["starts_at"] not in visitor.get("/trainers/maya-chen/calendar").get_data(as_text=True)

    again = visitor.post_form("/trainers/maya-chen", chosen, post_url="/trainers/maya-chen/hold")  # double submit
    assert again.status_code == 303 and again.headers["Location"].endswith(f"&length={chosen['length']}#calendar")
    assert "just taken" in visitor.get(again.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Booking.id)).where(Booking.status == BookingStatus.HELD)) == 1

    release = visitor.post_form(response.headers["Location"], {}, post_url=response.headers["Location"] + "/release")
    assert release.status_code == 303
    booking_id = int(response.headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        assert db.session.get(Booking, booking_id).status is BookingStatus.EXPIRED


@pytest.mark.parametrize("data, status", [
    ({"starts_at": "not-a-time", "length": "60"}, 400),
    ({"starts_at": "2026-07-06T06:00:00", "length": "60"}, 400),  # no zone: ambiguous
    ({"starts_at": "2020-01-06T06:00:00+00:00", "length": "60"}, 303),  # in the past: "just taken"
    ({"starts_at": "2026-07-06T06:00:00-07:00", "length": "45"}, 409),  # not one of her lengths
])
def test_bad_hold_requests_change_nothing(app, visitor, demo, data, status):
    visitor.login("member@fittribe.example")
    response = visitor.post_form("/trainers/maya-chen", data, post_url="/trainers/maya-chen/hold")
    assert response.status_code == status
    with app.app_context():
        assert db.session.scalar(select(func.count(Booking.id)).where(Booking.status == BookingStatus.HELD)) == 0


def test_bookings_are_private_and_holds_need_a_member(app, visitor, demo):
    with app.app_context():
        trainer = maya(db.session)
        slot = booking.slots_for(trainer, 60, days=7)[0]
        held = booking.hold(user(db.session, "member@fittribe.example"), trainer, slot.starts_at, 60)
        booking_id = held.id
    assert visitor.get(f"/bookings/{booking_id}").status_code == 302  # log in first
    visitor.login("lucia@fittribe.example")  # another trainer
    assert visitor.get(f"/bookings/{booking_id}").status_code == 404
    assert visitor.post_form("/trainers/maya-chen", {"starts_at": slot.starts_at.isoformat(), "length": "60"},
                             post_url="/trainers/maya-chen/hold").status_code == 403
    visitor.logout()
    visitor.login("trainer@fittribe.example")  # Maya sees her own session
    assert visitor.get(f"/bookings/{booking_id}").status_code == 200
    assert visitor.post_form("/", {}, post_url=f"/bookings/{booking_id}/release").status_code == 404


def test_worker_expires_run_out_holds_and_announces_the_free_time(app, demo):
    from fittribe.worker import JOBS

    with app.app_context():
        trainer = maya(db.session)
        held = booking.hold(user(db.session, "member@fittribe.example"), trainer, MONDAY_6AM, 60, now=NOW)
        held_id = held.id
        assert booking.expire_holds(now=NOW + timedelta(minutes=5)) == []
        last_before = db.session.scalar(select(func.max(Event.id)))
        assert len(booking.expire_holds(now=NOW + timedelta(minutes=10))) == 1
        assert db.session.get(Booking, held_id).status is BookingStatus.EXPIRED
        announced = [(e.channel, e.type or e.payload.get("fragment")) for e in db.session.scalars(
            select(Event).where(Event.id > last_before, Event.channel != "public"))
            if e.type or e.payload.get("fragment")]
        assert sorted(announced) == [("admin", "metrics-changed"),  # open analytics pages refresh
                                     (f"trainer:{trainer.id}", "availability"),  # pushed calendars
                                     (f"user:{held.member_id}", "upcoming")]
        told = db.session.scalars(select(Notification.user_id).where(Notification.kind == "hold-expired")).all()
        assert sorted(told) == sorted([held.member_id, trainer.user_id])  # both people hear it ran out
    assert "expire_holds" in [job.name for job in JOBS]


def test_flask_worker_once_runs_every_job(app, demo):
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output


def test_member_dashboard_lists_upcoming_sessions_on_their_clock(visitor, demo):
    visitor.login("member@fittribe.example")
    page = visitor.get("/dashboard/").get_data(as_text=True)
    assert "with Maya Chen" in page and "Confirmed" in page  # the seeded, paid demo session
    assert "Times in Europe/London" in page


def test_finished_sessions_become_completed_and_dashboards_refresh(app, demo):
    from fittribe.worker import JOBS

    with app.app_context():
        seeded = db.session.scalar(select(Booking).where(Booking.status == BookingStatus.CONFIRMED))
        end = seeded.ends_at
        assert booking.complete_finished(now=end - timedelta(minutes=1)) == 0
        last_before = db.session.scalar(select(func.max(Event.id))) or 0
        assert booking.complete_finished(now=end) == 1
        assert db.session.get(Booking, seeded.id).status is BookingStatus.COMPLETED
        announced = db.session.scalars(select(Event.channel).where(Event.id > last_before)).all()
        assert sorted(announced) == sorted(["admin", f"user:{seeded.member_id}", f"user:{seeded.trainer.user_id}"])
    assert "complete_finished_sessions" in [job.name for job in JOBS]
