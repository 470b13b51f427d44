"""Holds on a trainer's time: the first step of a booking (payment and confirmation follow).

A hold is a Booking row in status `held` with `hold_expires_at`. No two active bookings of a
trainer may overlap: an exclusion constraint guarantees it even when requests race.
Buffers (a session may not start inside another's before/after buffer) cannot be a constraint
(they depend on the trainer's settings), so every change to a trainer's booked time takes the
trainer's row lock first (`lock_trainers`): holds, moves, late payments and expiries of one trainer
run one after another, each checking the buffers with the previous one committed. Locks are always
taken trainer first, then bookings, so two changes never wait on each other in a circle."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import exists, func, or_, select, union_all, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..extensions import db
from ..models import (AvailabilityOverride, Booking, BookingStatus, CalendarBusy, TrainerProfile, User,
                      WeeklyAvailability)
from ..realtime import live
from . import analytics
from .availability import Busy, DateOverride, Policy, Slot, WeeklyHours, free_slots
from .notify import notify
from .time_zones import on_clock


class BookingError(ValueError):
    """A booking rule was broken; the message is for the member."""


class SlotTaken(BookingError):
    def __init__(self):
        super().__init__("Sorry, this time was just taken. Please pick another one.")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def lock_trainers(trainer_ids: Iterable[int], skip_locked: bool = False) -> list[TrainerProfile]:
    """Lock these trainers' rows, in id order, for the rest of the transaction (see the module's
    docstring). FOR NO KEY UPDATE: a new booking's foreign key takes KEY SHARE on the row, which
    a plain FOR UPDATE would conflict with."""
    ids = sorted(set(trainer_ids))
    if not ids:
        return []
    return list(db.session.scalars(select(TrainerProfile).where(TrainerProfile.id.in_(ids))
                                   .order_by(TrainerProfile.id).with_for_update(key_share=True, skip_locked=skip_locked)
                                   .execution_options(populate_existing=True)))  # settings as committed


# PostgreSQL's deadlock_detected, serialization_failure and lock_not_available: the transaction lost
# a race it could not win, and nothing of it was stored.
LOST_RACE_CODES = frozenset({"40P01", "40001", "55P03"})


def lost_race(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) in LOST_RACE_CODES


def policy_for(trainer: TrainerProfile, length_minutes: int) -> Policy:
    return Policy(
        time_zone=trainer.time_zone, length=timedelta(minutes=length_minutes),
        step=timedelta(minutes=30), buffer_before=timedelta(minutes=trainer.buffer_before_minutes),
        buffer_after=timedelta(minutes=trainer.buffer_after_minutes),
        min_notice=timedelta(minutes=trainer.min_notice_minutes), horizon=timedelta(days=trainer.horizon_days),
    )


def _active_busy(trainer_id: int, now: datetime, ignore_booking_id: int | None = None,
                 until: datetime | None = None) -> list[Busy]:
    """Held and booked times, and busy times from the trainer's connected calendar, that end
    after `now` (and start before `until`, when given)."""
    bookings = select(Booking.starts_at, Booking.ends_at).where(
        Booking.trainer_id == trainer_id, Booking.ends_at > now, Booking.id != (ignore_booking_id or 0),
        (Booking.status == BookingStatus.CONFIRMED)
        | ((Booking.status == BookingStatus.HELD) & (Booking.hold_expires_at > now)))
    calendar = select(CalendarBusy.starts_at, CalendarBusy.ends_at).where(
        CalendarBusy.trainer_id == trainer_id, CalendarBusy.ends_at > now)
    if until is not None:
        bookings, calendar = bookings.where(Booking.starts_at < until), calendar.where(CalendarBusy.starts_at < until)
    return [Busy(start, end) for start, end in db.session.execute(union_all(bookings, calendar))]


def announce_slots_changed(trainer_id: int, *spans: tuple[datetime, datetime]) -> None:
    """The trainer's free time changed (around `spans`, the booked times that came or went; all of
    it without them): the search's next free start follows in the same transaction, and every
    open profile of this trainer gets its new calendar (pushed: the days around `spans`, or all);
    when the next free start moved, so does every open card of the trainer (search, homepage)."""
    refresh_next_available([trainer_id], announce=True)
    live.announce(live.CALENDAR, trainer_id, spans)


def announce_sessions_changed(*user_ids: int) -> None:
    """These people's open dashboards get their new session lists (pushed)."""
    for user_id in sorted(set(user_ids)):
        live.announce(live.SESSIONS, user_id)


def slots_for(trainer: TrainerProfile, length_minutes: int | None = None, now: datetime | None = None,
              days: int | None = None, limit: int | None = None, ignore_booking_id: int | None = None) -> list[Slot]:
    """Free times; `ignore_booking_id` treats that booking's own time as free (rescheduling it)."""
    length = length_minutes or trainer.session_lengths[0]
    return slots_by_length(trainer, [length], now, days, limit, ignore_booking_id)[length]


def slots_by_length(trainer: TrainerProfile, lengths: Iterable[int], now: datetime | None = None,
                    days: int | None = None, limit: int | None = None,
                    ignore_booking_id: int | None = None) -> dict[int, list[Slot]]:
    """Free times for each of these session lengths, from one read of the trainer's hours and
    busy times (a time free for 30 minutes may not fit 60: each length is laid out on its own)."""
    now = now or _now()
    weekly = [WeeklyHours(r.weekday, r.start_time, r.end_time) for r in db.session.scalars(
        select(WeeklyAvailability).where(WeeklyAvailability.trainer_id == trainer.id))]
    by_day: dict = {}
    for row in db.session.scalars(select(AvailabilityOverride).where(AvailabilityOverride.trainer_id == trainer.id)):
        ranges = by_day.setdefault(row.day, [])
        if row.start_time is not None and row.end_time is not None:
            ranges.append((row.start_time, row.end_time))
    overrides = [DateOverride(day, tuple(ranges)) for day, ranges in by_day.items()]
    # Only `days` local days are laid out: busy times starting after them (and their buffers) can't matter.
    until = now + timedelta(days=days + 2) if days is not None else None
    busy = _active_busy(trainer.id, now, ignore_booking_id, until)
    return {length: free_slots(weekly, overrides, busy, policy_for(trainer, length), now, days, limit)
            for length in lengths}


def refresh_next_available(trainer_ids: Iterable[int], now: datetime | None = None, skip_locked: bool = False,
                           announce: bool = False) -> None:
    """Store each trainer's next free start (the search sorts and shows it), in the caller's
    transaction: the first slot of the shortest session, which fits wherever a longer one does.

    The trainer rows are locked (if the caller has not yet), so two changes to one trainer's time
    (two holds, a hold and an hours edit) apply one after the other and the later one computes with
    the earlier one committed; otherwise the last to commit could store a time the other has just
    taken.

    With `announce`, a changed start is pushed to open cards (on each viewer's clock). The worker's refresh as time passes does not announce:
    many trainers' starts move at the same half hour, and every open card would re-fetch at once."""
    now = now or _now()
    for trainer in lock_trainers(trainer_ids, skip_locked):
        first = slots_for(trainer, min(trainer.session_lengths), now, limit=1)
        next_at = first[0].starts_at if first else None
        if announce and next_at != trainer.next_available_at:
            live.announce(live.NEXT_AVAILABLE, trainer.id)
        trainer.next_available_at = next_at


def refresh_stale_next_available(now: datetime | None = None, batch_size: int = 200) -> int:
    """Time passing changes a next free start with nothing announced: the slot comes within the
    minimum notice, or a new day enters the horizon of a trainer with nothing free. The worker
    refreshes those trainers in batches (one transaction each); returns how many were stale."""
    now = now or _now()
    # Candidates: every start within the longest notice (the index's range); each trainer's own
    # notice decides below.
    longest_notice = timedelta(minutes=db.session.scalar(select(func.max(TrainerProfile.min_notice_minutes))) or 0)
    has_hours = or_(exists().where(WeeklyAvailability.trainer_id == TrainerProfile.id),
                    exists().where(AvailabilityOverride.trainer_id == TrainerProfile.id,
                                   AvailabilityOverride.start_time.is_not(None),
                                   AvailabilityOverride.day >= (now - timedelta(days=1)).date()))
    candidates = or_(TrainerProfile.next_available_at < now + longest_notice,
                     TrainerProfile.next_available_at.is_(None) & has_hours)
    refreshed, after_id = 0, 0
    while rows := db.session.execute(
            select(TrainerProfile.id, TrainerProfile.next_available_at, TrainerProfile.min_notice_minutes)
            .where(candidates, TrainerProfile.id > after_id).order_by(TrainerProfile.id).limit(batch_size)).all():
        after_id = rows[-1].id
        stale = [row.id for row in rows if row.next_available_at is None
                 or row.next_available_at < now + timedelta(minutes=row.min_notice_minutes)]
        # A trainer locked by a change in progress gets its value from that change: skip it.
        refresh_next_available(stale, now, skip_locked=True)
        db.session.commit()
        refreshed += len(stale)
    return refreshed


def is_free(trainer: TrainerProfile, wanted: Slot, now: datetime, ignore_booking_id: int | None = None) -> bool:
    """Is `wanted` one of the trainer's free slots? Only the days up to it are laid out (the
    whole horizon costs ~10× more, and this runs on every hold)."""
    days = max(0, (wanted.starts_at - now).days) + 2
    length = int((wanted.ends_at - wanted.starts_at).total_seconds() // 60)
    return wanted in slots_for(trainer, length, now, days=days, ignore_booking_id=ignore_booking_id)


def hold(member: User, trainer: TrainerProfile, starts_at: datetime, length_minutes: int,
         now: datetime | None = None) -> Booking:
    now = now or _now()
    if length_minutes not in trainer.session_lengths:
        raise BookingError("Choose one of this trainer's session lengths.")
    if member.id == trainer.user_id:
        raise BookingError("You can't book your own sessions.")
    try:
        return _hold(member, trainer, starts_at, length_minutes, now)
    except DBAPIError as error:
        db.session.rollback()
        if lost_race(error):
            raise SlotTaken() from error
        raise


def _hold(member: User, trainer: TrainerProfile, starts_at: datetime, length_minutes: int, now: datetime) -> Booking:
    # This trainer's holds, moves and late payments wait for each other from here to the commit,
    # so the free-time check below sees every one committed before it (buffers included).
    lock_trainers([trainer.id])
    # Stale holds of this trainer end now (the exclusion constraint still counts them).
    db.session.execute(update(Booking).where(
        Booking.trainer_id == trainer.id, Booking.status == BookingStatus.HELD, Booking.hold_expires_at <= now,
    ).values(status=BookingStatus.EXPIRED))
    active_holds = db.session.scalar(select(func.count(Booking.id)).where(
        Booking.member_id == member.id, Booking.status == BookingStatus.HELD, Booking.hold_expires_at > now))
    if active_holds >= current_app.config["MAX_ACTIVE_HOLDS"]:
        db.session.rollback()
        raise BookingError("You already hold several times. Finish or release one before holding another.")
    wanted = Slot(starts_at, starts_at + timedelta(minutes=length_minutes))
    if not is_free(trainer, wanted, now):
        db.session.rollback()
        raise SlotTaken()
    booking = Booking(trainer_id=trainer.id, member_id=member.id, starts_at=wanted.starts_at, ends_at=wanted.ends_at,
                      status=BookingStatus.HELD, price_cents=trainer.price_cents, currency=trainer.currency,
                      hold_expires_at=now + timedelta(minutes=current_app.config["HOLD_MINUTES"]))
    db.session.add(booking)
    try:
        db.session.flush()  # the exclusion constraint speaks here, before the next free time is computed
        analytics.announce_changed()
        announce_slots_changed(trainer.id, (wanted.starts_at, wanted.ends_at))
        announce_sessions_changed(member.id)
        db.session.commit()
    except IntegrityError as error:  # the exclusion constraint: someone else won the race
        db.session.rollback()
        raise SlotTaken() from error
    return booking



def hold_seconds_left(booking: Booking, now: datetime | None = None) -> int:
    """Seconds until a hold ends (0 when it has, or the booking is not a hold): what the hold's
    countdown starts from, on the server's clock."""
    if booking.status is not BookingStatus.HELD or booking.hold_expires_at is None:
        return 0
    return max(0, int((booking.hold_expires_at - (now or _now())).total_seconds()))


def release(booking: Booking) -> None:
    """The member lets a hold go before paying: the time is free again at once."""
    lock_trainers([booking.trainer_id])
    db.session.refresh(booking, with_for_update=True)
    if booking.status is not BookingStatus.HELD:
        db.session.rollback()
        raise BookingError("Only a held time can be released.")
    booking.status = BookingStatus.EXPIRED
    announce_slots_changed(booking.trainer_id, (booking.starts_at, booking.ends_at))
    announce_sessions_changed(booking.member_id)
    analytics.announce_changed()
    db.session.commit()


def expire_holds(now: datetime | None = None) -> list[int]:
    """End holds whose time ran out (the worker runs this every few seconds), tell every open
    profile of those trainers that the time is free again, and return the ended bookings' ids."""
    now = now or _now()
    expiring = (Booking.status == BookingStatus.HELD) & (Booking.hold_expires_at <= now)
    # Trainers first (the lock order): a hold of the same trainer ends its stale holds too.
    lock_trainers(db.session.scalars(select(Booking.trainer_id).where(expiring).distinct()))
    ended = db.session.execute(update(Booking).where(expiring).values(status=BookingStatus.EXPIRED)
                               .returning(Booking.id, Booking.trainer_id, Booking.member_id, Booking.starts_at,
                                          Booking.ends_at)).all()
    for trainer_id in sorted({row.trainer_id for row in ended}):
        spans = [(row.starts_at, row.ends_at) for row in ended if row.trainer_id == trainer_id]
        announce_slots_changed(trainer_id, *spans)
    announce_sessions_changed(*(row.member_id for row in ended))
    for booking in db.session.scalars(select(Booking).where(Booking.id.in_([row.id for row in ended]))):
        _tell_hold_ended(booking)
    if ended:
        analytics.announce_changed()
    db.session.commit()
    return [row.id for row in ended]


def _tell_hold_ended(booking: Booking) -> None:
    """Both people hear that an unpaid hold ran out (the member can hold the time again if free)."""
    for person in (booking.member, booking.trainer.user):
        who = f"with {booking.trainer.display_name}" if person.id == booking.member_id else f"by {booking.member.name}"
        notify(person.id, "hold-expired", f"The unpaid hold on {on_clock(booking.starts_at, person.time_zone)} "
                                          f"{who} ran out; the time is free again.", f"/trainers/{booking.trainer.slug}")


def complete_finished(now: datetime | None = None) -> int:
    """Confirmed sessions whose end has passed become completed (their members may then review
    them); both people's open dashboards refresh. The worker runs this every minute."""
    now = now or _now()
    finished = db.session.execute(update(Booking).where(
        Booking.status == BookingStatus.CONFIRMED, Booking.ends_at <= now,
    ).values(status=BookingStatus.COMPLETED).returning(Booking.member_id, Booking.trainer_id)).all()
    trainer_users = db.session.scalars(select(TrainerProfile.user_id).where(
        TrainerProfile.id.in_({row.trainer_id for row in finished}))).all() if finished else []
    announce_sessions_changed(*(row.member_id for row in finished), *trainer_users)
    if finished:
        analytics.announce_changed()
    db.session.commit()
    return len(finished)
