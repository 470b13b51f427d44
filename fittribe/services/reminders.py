"""What the worker tells people outside requests: every in-app notification also goes out by
e-mail (after its transaction committed, retried until sent), and confirmed sessions get a
reminder 24 hours and 15 minutes before they start."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import Booking, BookingStatus, Notification, User
from .links import site_url
from .mailer import send_mail
from .notify import notify
from .time_zones import zone_name

SUBJECTS = {"confirmed": "Your FitTribe session is booked", "cancelled": "A FitTribe session was cancelled",
            "rescheduled": "A FitTribe session moved", "refund": "Your FitTribe refund",
            "reminder": "Your FitTribe session is coming up", "meeting": "Your FitTribe video link is ready",
            "alert": "FitTribe admin alert",
            "hold-expired": "A held FitTribe time ran out", "no_show": "A FitTribe session was reported as a no-show"}


def mail_notifications(batch_size: int = 50) -> int:
    """Mail notifications not mailed yet; rows are locked so two workers never send one twice."""
    rows = db.session.execute(
        select(Notification, User.email).join(User, User.id == Notification.user_id)
        .where(Notification.emailed_at.is_(None)).order_by(Notification.id).limit(batch_size)
        .with_for_update(of=Notification, skip_locked=True)).all()
    sent = 0
    for notification, email in rows:
        link = f"\n\n{site_url(notification.link)}" if notification.link else ""
        try:
            send_mail(email, SUBJECTS.get(notification.kind, "News from FitTribe"),
                      f"{notification.message}{link}\n\nYou get this because you have a FitTribe account.")
        except OSError:  # SMTP down: keep it unmailed, the next round tries again
            current_app.logger.exception("Could not mail notification %s", notification.id)
            break
        notification.emailed_at = datetime.now(timezone.utc)
        sent += 1
    db.session.commit()
    return sent


def send_reminders(now: datetime | None = None) -> int:
    """Remind both people of confirmed sessions 24 h and 15 min ahead, once each (the marks are
    reset when a session moves). A session booked less than a day ahead gets only the 15-minute one."""
    now = now or datetime.now(timezone.utc)
    sent = 0
    for booking in _due(Booking.reminded_15m_at, now, timedelta(minutes=15)):
        booking.reminded_15m_at = now
        booking.reminded_24h_at = booking.reminded_24h_at or now  # the day-ahead one is moot now
        _remind(booking, soon=True)
        sent += 1
    for booking in _due(Booking.reminded_24h_at, now, timedelta(hours=24)):
        booking.reminded_24h_at = now
        if booking.created_at <= booking.starts_at - timedelta(hours=24):
            _remind(booking, soon=False)  # (booked within the day: the confirmation just said when)
            sent += 1
    db.session.commit()
    return sent


def _due(mark, now: datetime, ahead: timedelta) -> list[Booking]:
    return list(db.session.scalars(select(Booking).where(
        Booking.status == BookingStatus.CONFIRMED, mark.is_(None),
        Booking.starts_at > now, Booking.starts_at <= now + ahead,
    ).order_by(Booking.id).with_for_update(skip_locked=True)))


def _remind(booking: Booking, soon: bool) -> None:
    link = f"/bookings/{booking.id}"
    join = " The video link is on the session page." if booking.meeting_url else ""
    for person, other in ((booking.member, booking.trainer.display_name), (booking.trainer.user, booking.member.name)):
        start = booking.starts_at.astimezone(ZoneInfo(person.time_zone))
        when = f"in 15 minutes, at {start:%H:%M}" if soon else f"on {start:%A %-d %B at %H:%M}"
        notify(person.id, "reminder", f"Reminder: your session with {other} starts {when} "
                                      f"(your time, {zone_name(person.time_zone)}).{join}", link)
