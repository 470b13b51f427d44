"""Each trainer's next free start (trainer_profiles.next_available_at): kept current by every
change to their time and by the worker as time passes; the search sorts by it and shows it."""
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import Event, TrainerProfile, User
from fittribe.realtime.channels import PUBLIC
from fittribe.services import booking
from fittribe.worker import JOBS
from tests.helpers import HTMX, text_of

UTC = timezone.utc


def trainer(session, slug: str) -> TrainerProfile:
    return session.scalar(select(TrainerProfile).where(TrainerProfile.slug == slug))


def first_free(trainer: TrainerProfile) -> datetime | None:
    slots = booking.slots_for(trainer)
    return slots[0].starts_at if slots else None


def stored(session, slug: str) -> datetime | None:
    session.expire_all()  # another session (a request, the worker) may have changed it
    return trainer(session, slug).next_available_at


def names(response) -> list[str]:
    return re.findall(r'id="trainer-\d+-name"><a href="[^"]+">([^<]+)</a>', text_of(response))


def test_seeding_leaves_every_demo_trainer_with_their_first_free_slot(db_session, demo):
    trainers = db_session.scalars(select(TrainerProfile)).all()
    assert len(trainers) == 6
    for each in trainers:
        assert each.next_available_at == first_free(each), each.slug
    assert trainer(db_session, "jordan-pending").next_available_at is None  # no hours yet
    assert all(t.next_available_at for t in trainers if t.slug != "jordan-pending")


def test_holding_the_first_slot_moves_it_on_and_releasing_moves_it_back(db_session, demo):
    maya = trainer(db_session, "maya-chen")
    first = maya.next_available_at
    member = db_session.scalar(select(User).where(User.email == "member@fittribe.example"))
    held = booking.hold(member, maya, first, min(maya.session_lengths))
    after_hold = stored(db_session, "maya-chen")
    assert after_hold > first and after_hold == first_free(maya)
    booking.release(held)
    assert stored(db_session, "maya-chen") == first


def test_the_availability_editor_updates_it(app, visitor, db_session, demo):
    first = trainer(db_session, "maya-chen").next_available_at
    day = first.astimezone(ZoneInfo("America/Los_Angeles")).date()
    db_session.commit()  # end the test's transaction: the request locks Maya's row
    visitor.login("trainer@fittribe.example")
    response = visitor.post_form("/dashboard/availability",
                                 {"date-day": day.isoformat(), "date-start": "", "date-end": ""},
                                 post_url="/dashboard/availability/overrides")
    assert response.status_code == 303
    moved = stored(db_session, "maya-chen")
    assert moved.astimezone(ZoneInfo("America/Los_Angeles")).date() > day
    assert moved == first_free(trainer(db_session, "maya-chen"))


def test_soonest_available_sort_puts_nothing_free_last_and_ties_by_rating(client, db_session, demo):
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    times = {"lucia-fernandez": soon, "anna-kowalski": soon + timedelta(hours=2),
             "kwame-mensah": soon + timedelta(hours=2), "maya-chen": soon + timedelta(days=3), "diego-santos": None}
    for slug, at in times.items():
        trainer(db_session, slug).next_available_at = at
    db_session.commit()
    # Anna and Kwame are free at the same moment: Anna ranks higher. Diego has nothing free.
    assert names(client.get("/trainers?sort=available")) == [
        "Lucía Fernández", "Anna Kowalski", "Kwame Mensah", "Maya Chen", "Diego Santos"]
    html = text_of(client.get("/trainers?sort=available"))
    assert "Soonest available" in html and "sorted by rating until" not in html


def test_the_card_shows_it_on_the_viewers_clock(app, visitor, db_session, demo):
    maya = trainer(db_session, "maya-chen")
    maya.next_available_at = datetime(2026, 12, 7, 17, 30, tzinfo=UTC)  # a Monday
    trainer(db_session, "diego-santos").next_available_at = None
    db_session.commit()
    # Not logged in: the trainer's own clock, labelled as hers.
    html = text_of(visitor.get("/trainers?q=maya"))
    assert '<time datetime="2026-12-07T09:30:00-08:00">Mon 7 Dec, 09:30</time>' in html
    assert "America/Los Angeles (trainer's time)" in html
    assert "No free times in the next 60 days" in text_of(visitor.get("/trainers?q=diego"))
    # The member in London sees London time.
    visitor.login("member@fittribe.example")
    html = text_of(visitor.get("/trainers?q=maya"))
    assert '<time datetime="2026-12-07T17:30:00+00:00">Mon 7 Dec, 17:30</time>' in html
    assert "Europe/London" in html and "trainer's time" not in html


def next_available_events(session, trainer_id: int) -> int:
    return sum(1 for payload in session.scalars(select(Event.payload).where(Event.channel == PUBLIC))
               if payload.get("fragment") == "next-available" and payload.get("key") == trainer_id)


def test_open_cards_are_told_when_the_next_free_start_moves_and_only_then(db_session, demo):
    maya = trainer(db_session, "maya-chen")
    member = db_session.scalar(select(User).where(User.email == "member@fittribe.example"))
    first, shortest = maya.next_available_at, min(maya.session_lengths)
    later = booking.slots_for(maya, shortest)[-1].starts_at  # her last free time: the first stays first
    booking.hold(member, maya, later, shortest)
    assert next_available_events(db_session, maya.id) == 0
    booking.hold(member, maya, first, shortest)
    assert stored(db_session, "maya-chen") > first
    assert next_available_events(db_session, maya.id) == 1  # every open card of hers re-fetches it

    # Time passing is not announced: many trainers' starts move at the same half hour.
    maya.next_available_at = datetime.now(UTC) - timedelta(hours=1)
    db_session.commit()
    assert booking.refresh_stale_next_available() >= 1
    assert next_available_events(db_session, maya.id) == 1


def test_the_card_fragment_is_on_the_viewers_clock_and_the_profile_without_htmx(visitor, db_session, demo):
    maya = trainer(db_session, "maya-chen")
    maya.next_available_at = datetime(2026, 12, 7, 17, 30, tzinfo=UTC)
    db_session.commit()
    fragment = text_of(visitor.get("/trainers/maya-chen/next-available", headers=HTMX))
    assert fragment.lstrip().startswith(f'<span id="next-available-{maya.id}"') and "Mon 7 Dec, 09:30" in fragment
    visitor.login("member@fittribe.example")
    assert "Mon 7 Dec, 17:30" in text_of(visitor.get("/trainers/maya-chen/next-available", headers=HTMX))
    plain = visitor.get("/trainers/maya-chen/next-available")
    assert plain.status_code == 302 and plain.headers["Location"].endswith("/trainers/maya-chen")
    assert visitor.get("/trainers/jordan-pending/next-available", headers=HTMX).status_code == 404  # not listed
    search = text_of(visitor.get("/trainers?q=maya"))
    assert f'id="next-available-{maya.id}" data-live' in search  # pushed into place when it moves


def test_the_worker_refreshes_stale_values_in_batches(db_session, demo):
    now = datetime.now(UTC)
    right = {t.slug: t.next_available_at for t in db_session.scalars(select(TrainerProfile))}
    trainer(db_session, "maya-chen").next_available_at = now - timedelta(hours=1)  # that slot has begun
    trainer(db_session, "anna-kowalski").next_available_at = now + timedelta(minutes=30)  # within her notice
    trainer(db_session, "lucia-fernandez").next_available_at = None  # has hours, so it is stale
    kwame_wrong_but_not_stale = right["kwame-mensah"] + timedelta(days=1)
    trainer(db_session, "kwame-mensah").next_available_at = kwame_wrong_but_not_stale
    db_session.commit()

    assert booking.refresh_stale_next_available(batch_size=2) == 3  # Jordan has no hours: skipped
    for slug in ("maya-chen", "anna-kowalski", "lucia-fernandez", "diego-santos", "jordan-pending"):
        assert stored(db_session, slug) == right[slug], slug
    assert stored(db_session, "kwame-mensah") == kwame_wrong_but_not_stale  # only stale rows are recomputed

    trainer(db_session, "maya-chen").next_available_at = now - timedelta(hours=1)
    db_session.commit()
    job = next(job for job in JOBS if job.name == "refresh_next_available")
    assert job.every_seconds == 60
    job.run()
    assert stored(db_session, "maya-chen") == right["maya-chen"]


def test_concurrent_holds_of_one_trainer_leave_the_right_value(app, demo):
    """Each hold computes the next free time in its own transaction; the row lock makes the last
    to commit see every other hold, so the stored value is never a time just taken."""
    import threading

    with app.app_context():
        maya = trainer(db.session, "maya-chen")
        taken_until, wanted = None, []
        for slot in booking.slots_for(maya, 30):  # early slots that do not touch (15-minute buffer after)
            if taken_until is None or slot.starts_at >= taken_until:
                wanted.append(slot.starts_at)
                taken_until = slot.ends_at + timedelta(minutes=maya.buffer_after_minutes)
            if len(wanted) == 8:
                break
        racers = [User(email=f"racer{n}@example.com", name=f"Racer {n}", password_hash="x") for n in range(8)]
        db.session.add_all(racers)
        db.session.commit()
        maya_id, racer_ids = maya.id, [r.id for r in racers]
    start = threading.Barrier(len(wanted), timeout=30)
    errors = []

    def attempt(member_id: int, starts_at: datetime) -> None:
        start.wait()
        with app.app_context():
            try:
                booking.hold(db.session.get(User, member_id), db.session.get(TrainerProfile, maya_id), starts_at, 30)
            except Exception as error:  # reported below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=pair) for pair in zip(racer_ids, wanted)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    with app.app_context():
        maya = trainer(db.session, "maya-chen")
        assert maya.next_available_at == first_free(maya) and maya.next_available_at not in wanted
