"""Changing a confirmed session: cancel (refund per the cancellation policy), move it to another
free time, or report afterwards that the other person did not show up. Each needs a reason and
tells both people.

Policy (CANCEL_FULL_REFUND_HOURS, default 24): a member cancelling at least that long before the
start gets a full refund, later none, and may move the session only while that window is open; a
trainer (or an admin) may cancel or move any time before the start, and their cancellation always
refunds in full.

No-shows (from NO_SHOW_AFTER_START_MINUTES after the start until NO_SHOW_REPORT_HOURS after the
end, before any review): the trainer may report that the member did not come — the payment is kept,
as for a late cancellation; the member may report that the trainer did not come — refunded in full
and FitTribe's admins are told — unless the trainer opened the session (then it is for support)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Booking, BookingStatus, Payment, Role, User
from . import analytics, google_calendar, meetings, payments
from .availability import Slot
from .booking import (BookingError, SlotTaken, announce_sessions_changed, announce_slots_changed,
                      is_free, lock_trainers, slots_for)
from .notify import alert_admins, notify
from .terms import free_cancel_open
from .time_zones import on_clock

REASON_MAX = 500


@dataclass(frozen=True)
class ChangeTerms:
    """What cancelling (or reporting a no-show) now means for this person, shown before they
    confirm and then enforced."""
    allowed: bool
    refund: Payment | None
    explanation: str


def _by_member(booking: Booking, user: User) -> bool:
    return user.id == booking.member_id and not user.has_role(Role.ADMIN)


def _refund_window_open(booking: Booking, now: datetime) -> bool:
    return free_cancel_open(booking.starts_at, now)


def cancel_terms(booking: Booking, user: User, now: datetime | None = None) -> ChangeTerms:
    now = now or datetime.now(timezone.utc)
    if booking.status is not BookingStatus.CONFIRMED or booking.starts_at <= now:
        return ChangeTerms(False, None, "Only a confirmed session that has not started can be cancelled.")
    payment = payments.succeeded_payment(booking)
    hours = current_app.config["CANCEL_FULL_REFUND_HOURS"]
    if _by_member(booking, user) and not _refund_window_open(booking, now):
        return ChangeTerms(True, None, f"It starts in less than {hours:g} hours, so there is no refund.")
    if payment is None:
        return ChangeTerms(True, None, "No payment was taken, so there is nothing to refund.")
    if _by_member(booking, user):
        return ChangeTerms(True, payment, f"You cancel at least {hours:g} hours ahead, so the full payment is refunded.")
    return ChangeTerms(True, payment, "A cancellation by the trainer or FitTribe always refunds the member in full.")


def _clean_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise BookingError("Please give a short reason: the other person will see it.")
    if len(reason) > REASON_MAX:
        raise BookingError(f"Please keep the reason under {REASON_MAX} characters.")
    return reason


def _end(booking: Booking, user: User, reason: str, now: datetime, terms_for, status: BookingStatus
         ) -> tuple[ChangeTerms, str]:
    """End the session as `status` if the terms allow it now, refunding what they say; the
    person and their reason are recorded in cancelled_by_id / cancel_reason. Not committed."""
    reason = _clean_reason(reason)
    lock_trainers([booking.trainer_id])  # the lock order: trainer, then booking
    db.session.refresh(booking, with_for_update=True)  # a double submit waits, then finds it ended
    terms = terms_for(booking, user, now)
    if not terms.allowed:
        db.session.rollback()
        raise BookingError(terms.explanation)
    if terms.refund is not None:
        payments.refund(payments.provider_for(terms.refund), terms.refund)  # PaymentError: nothing changes
    booking.status, booking.cancelled_by_id = status, user.id
    booking.cancel_reason, booking.cancelled_at = reason, now
    analytics.announce_changed()
    announce_sessions_changed(booking.member_id, booking.trainer.user_id)
    return terms, reason


def cancel(booking: Booking, user: User, reason: str, now: datetime | None = None) -> ChangeTerms:
    now = now or datetime.now(timezone.utc)
    terms, reason = _end(booking, user, reason, now, cancel_terms, BookingStatus.CANCELLED)
    announce_slots_changed(booking.trainer_id)
    google_calendar.booking_changed(booking)
    refund_note = " Your payment is refunded in full." if terms.refund else ""
    link = f"/bookings/{booking.id}"
    member, trainer = booking.member, booking.trainer.user
    notify(member.id, "cancelled", f"Your session with {booking.trainer.display_name} on {_when(booking, member)} "
                                   f"is cancelled: {reason}.{refund_note}", link)
    notify(trainer.id, "cancelled", f"The session with {member.name} on {_when(booking, trainer)} is "
                                    f"cancelled: {reason}.", link)
    db.session.commit()
    meetings.detach(booking)  # after the commit: a rolled-back cancellation keeps its meeting
    google_calendar.push_pending(booking.id, retries=0)
    return terms


def can_reschedule(booking: Booking, user: User, now: datetime | None = None) -> bool:
    now = now or datetime.now(timezone.utc)
    if booking.status is not BookingStatus.CONFIRMED or booking.starts_at <= now:
        return False
    return not _by_member(booking, user) or _refund_window_open(booking, now)


def reschedule_options(booking: Booking, now: datetime | None = None, days: int = 14) -> list[Slot]:
    return slots_for(booking.trainer, _length(booking), now, days=days, ignore_booking_id=booking.id)


def reschedule(booking: Booking, user: User, new_start: datetime, reason: str, now: datetime | None = None) -> None:
    now = now or datetime.now(timezone.utc)
    reason = _clean_reason(reason)
    # The trainer's other holds and moves wait from here: the new time's buffers are checked
    # against every one of them committed.
    lock_trainers([booking.trainer_id])
    db.session.refresh(booking, with_for_update=True)
    if not can_reschedule(booking, user, now):
        db.session.rollback()
        hours = current_app.config["CANCEL_FULL_REFUND_HOURS"]
        raise BookingError(f"This session can no longer be moved (members can move it up to {hours:g} hours before "
                           "the start).")
    wanted = Slot(new_start, new_start + timedelta(minutes=_length(booking)))
    if wanted.starts_at == booking.starts_at:
        db.session.rollback()
        raise BookingError("That is the session's current time: pick another one.")
    if not is_free(booking.trainer, wanted, now, ignore_booking_id=booking.id):
        db.session.rollback()
        raise SlotTaken()
    member, trainer = booking.member, booking.trainer.user
    old_start = booking.starts_at
    booking.starts_at, booking.ends_at = wanted.starts_at, wanted.ends_at
    booking.reminded_24h_at = booking.reminded_15m_at = None
    try:
        db.session.flush()  # the exclusion constraint: someone took the new time meanwhile
    except IntegrityError as error:
        db.session.rollback()
        raise SlotTaken() from error
    announce_slots_changed(booking.trainer_id)
    announce_sessions_changed(member.id, trainer.id)
    google_calendar.booking_changed(booking)
    link = f"/bookings/{booking.id}"
    for person, opening in ((member, f"Your session with {booking.trainer.display_name}"),
                            (trainer, f"The session with {member.name}")):
        notify(person.id, "rescheduled", f"{opening} moved from {_when(booking, person, old_start)} to "
                                         f"{_when(booking, person)}: {reason}.", link)
    db.session.commit()
    if booking.meeting_ref:  # a Zoom meeting has a start time: replace it (a Jitsi room has none)
        meetings.detach(booking)
        booking.meeting_url = booking.meeting_ref = None
        meetings.attach(booking)
        google_calendar.booking_changed(booking)  # the event's link too
        db.session.commit()
    google_calendar.push_pending(booking.id, retries=0)


def _length(booking: Booking) -> int:
    return int((booking.ends_at - booking.starts_at).total_seconds() // 60)


def _when(booking: Booking, reader: User, start: datetime | None = None) -> str:
    """The start on the reader's own clock, zone named (notification texts are stored as written)."""
    return on_clock(start or booking.starts_at, reader.time_zone)


def no_show_terms(booking: Booking, user: User, now: datetime | None = None) -> ChangeTerms:
    now = now or datetime.now(timezone.utc)
    config = current_app.config
    opens = booking.starts_at + timedelta(minutes=config["NO_SHOW_AFTER_START_MINUTES"])
    closes = booking.ends_at + timedelta(hours=config["NO_SHOW_REPORT_HOURS"])
    if user.id not in (booking.member_id, booking.trainer.user_id):
        return ChangeTerms(False, None, "Only the member or the trainer of a session can report a no-show.")
    if booking.status not in (BookingStatus.CONFIRMED, BookingStatus.COMPLETED) or booking.review is not None:
        return ChangeTerms(False, None, "A no-show can be reported only for a confirmed session that has not been "
                                        "reviewed.")
    if not opens <= now <= closes:
        return ChangeTerms(False, None, f"A no-show can be reported from {config['NO_SHOW_AFTER_START_MINUTES']:g} "
                                        f"minutes after the start until {config['NO_SHOW_REPORT_HOURS']:g} hours "
                                        "after the end.")
    if user.id == booking.trainer.user_id:
        return ChangeTerms(True, None, f"{booking.member.name} is told, and the payment is kept, as for a "
                                       "cancellation at short notice.")
    if booking.trainer_joined_at is not None:
        return ChangeTerms(False, None, f"{booking.trainer.display_name} opened the session at "
                                        f"{_when(booking, user, booking.trainer_joined_at)}. If something went "
                                        "wrong, please write to support.")
    payment = payments.succeeded_payment(booking)
    return ChangeTerms(True, payment, f"{booking.trainer.display_name} and FitTribe are told"
                                      + (", and your payment is refunded in full." if payment else "."))


def report_no_show(booking: Booking, user: User, reason: str, now: datetime | None = None) -> ChangeTerms:
    now = now or datetime.now(timezone.utc)
    terms, reason = _end(booking, user, reason, now, no_show_terms, BookingStatus.NO_SHOW)
    member, trainer = booking.member, booking.trainer.user
    link = f"/bookings/{booking.id}"
    if user.id == trainer.id:
        notify(member.id, "no_show", f"{booking.trainer.display_name} reported that you did not join the session "
                                     f"on {_when(booking, member)}: {reason}.", link)
    else:
        refund_note = " Your payment is refunded in full." if terms.refund else ""
        notify(member.id, "no_show", f"Your report that {booking.trainer.display_name} did not join the session on "
                                     f"{_when(booking, member)} is recorded.{refund_note}", link)
        notify(trainer.id, "no_show", f"{member.name} reported that you did not join the session on "
                                      f"{_when(booking, trainer)}: {reason}.", link)
        alert_admins("trainer-no-show", f"Trainer no-show reported: {booking.trainer.display_name}, session "
                                 f"{booking.id} with {member.name}: {reason}", link)
    db.session.commit()
    return terms
