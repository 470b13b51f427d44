"""The live status of a session as both people see it on their dashboards: confirmed → starting
in N min → live now → completed. It moves by itself: the worker announces every change (and each
minute of the countdown) on both people's channels, and their dashboards re-fetch the list.

The "Join" button opens JOIN_OPENS before the start; the trainer's click is recorded, which turns
the member's status to "live now" at once."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import clock
from ..extensions import db
from ..models import Booking, BookingStatus, TrainerProfile, User
from ..realtime.connection import redis_client, redis_key
from .booking import announce_sessions_changed

JOIN_OPENS = timedelta(minutes=10)
STARTING_SOON = timedelta(minutes=60)
PAST_SHOWN = 5


@dataclass(frozen=True)
class SessionStatus:
    phase: str  # held | confirmed | starting | live | completed | cancelled | expired | no_show
    label: str
    can_join: bool = False


def status_of(booking: Booking, now: datetime) -> SessionStatus:
    start, end = booking.starts_at, booking.ends_at
    if booking.status is BookingStatus.HELD:
        return SessionStatus("held", "Held — pay to confirm")
    if booking.status is BookingStatus.COMPLETED or (booking.status is BookingStatus.CONFIRMED and now >= end):
        return SessionStatus("completed", "Completed")
    if booking.status is BookingStatus.NO_SHOW:
        absent = "member" if booking.cancelled_by_id == booking.trainer.user_id else "trainer"
        return SessionStatus("no_show", f"No-show ({absent})")
    if booking.status is not BookingStatus.CONFIRMED:
        return SessionStatus(booking.status.value, booking.status.value.replace("_", " ").capitalize())
    can_join = bool(booking.meeting_url) and now >= start - JOIN_OPENS
    if now >= start or (booking.trainer_joined_at and can_join):
        return SessionStatus("live", "Live now", can_join)
    if start - now <= STARTING_SOON:
        minutes = max(1, int((start - now).total_seconds() + 59) // 60)
        return SessionStatus("starting", f"Starting in {minutes} min", can_join)
    return SessionStatus("confirmed", "Confirmed")


def sessions_for(user: User, now: datetime | None = None) -> tuple[list[Booking], list[Booking]]:
    """(upcoming, recent past) sessions of a member, or the ones a trainer teaches."""
    now = now or clock.now()
    trainer = user.trainer_profile
    mine = Booking.trainer_id == trainer.id if trainer is not None else Booking.member_id == user.id
    upcoming_statuses = [BookingStatus.CONFIRMED] if trainer is not None else [BookingStatus.CONFIRMED,
                                                                                BookingStatus.HELD]
    # The rows show the other person and the review state: load them with the list, not per row.
    related = (selectinload(Booking.trainer), selectinload(Booking.member), selectinload(Booking.review))
    upcoming = db.session.scalars(select(Booking).options(*related).where(
        mine, Booking.ends_at > now, Booking.status.in_(upcoming_statuses),
        (Booking.status != BookingStatus.HELD) | (Booking.hold_expires_at > now),
    ).order_by(Booking.starts_at)).all()
    past = db.session.scalars(select(Booking).options(*related).where(
        mine, Booking.status.in_([BookingStatus.CONFIRMED, BookingStatus.COMPLETED, BookingStatus.CANCELLED,
                                  BookingStatus.NO_SHOW]),
        # A no-show is recent as soon as it is reported; a cancelled session only once its time has passed
        # (a cancelled future session is not something that happened).
        (Booking.ends_at <= now) | (Booking.status == BookingStatus.NO_SHOW),
    ).order_by(Booking.starts_at.desc()).limit(PAST_SHOWN)).all()
    return list(upcoming), list(past)


def trainer_joined(booking: Booking, user: User, now: datetime | None = None) -> None:
    """The trainer opened the meeting: the member's dashboard shows "live now" straight away."""
    if user.id != booking.trainer.user_id or booking.trainer_joined_at is not None:
        return
    booking.trainer_joined_at = now or clock.now()
    announce_sessions_changed(booking.member_id, user.id)
    db.session.commit()


def _phase_key() -> str:
    return redis_key("session-phases")


def announce_phase_changes(now: datetime | None = None) -> int:
    """Worker job: sessions whose shown status changed since the last run (including each minute
    of the countdown) get both dashboards refreshed. What each session showed last is kept in a
    Redis hash, so several workers and restarts announce each change once."""
    now = now or clock.now()
    rows = db.session.execute(
        select(Booking, TrainerProfile.user_id).join(TrainerProfile, TrainerProfile.id == Booking.trainer_id)
        .where(Booking.status == BookingStatus.CONFIRMED, Booking.starts_at <= now + STARTING_SOON,
               Booking.ends_at > now - timedelta(minutes=5))).all()
    client = redis_client()
    shown = {key.decode(): value.decode() for key, value in (client.hgetall(_phase_key()) if client else {}).items()}
    current = {str(booking.id): status_of(booking, now).label for booking, _ in rows}
    changed = [(booking, trainer_user) for booking, trainer_user in rows
               if shown.get(str(booking.id)) != current[str(booking.id)]]
    for booking, trainer_user in changed:
        announce_sessions_changed(booking.member_id, trainer_user)
    db.session.commit()
    if client is not None:
        with client.pipeline() as pipe:
            pipe.delete(_phase_key())
            if current:
                pipe.hset(_phase_key(), mapping=current)
            pipe.execute()
    return len(changed)
