"""Calendar exports of confirmed sessions: an .ics file (RFC 5545, via icalendar), an
"Add to Google Calendar" link, and a private feed URL a calendar app subscribes to."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from icalendar import Calendar, Event, vDuration
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import Booking, BookingStatus, User
from .links import site_host
from .meetings import link_visible_to

# The feed shows the last month too (so a past session is still in the calendar), and keeps a
# cancelled session that long as STATUS:CANCELLED: a subscribed calendar then removes it
# instead of keeping a stale copy.
FEED_PAST = timedelta(days=30)
FEED_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.COMPLETED, BookingStatus.CANCELLED)
FEED_REFRESH = timedelta(hours=1)  # a hint only: Google refreshes on its own schedule (hours)


def session_title(booking: Booking, as_trainer: bool = False) -> str:
    other = booking.member.name if as_trainer else booking.trainer.display_name
    return f"FitTribe session with {other}"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _calendar() -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", "-//FitTribe//Sessions//EN")
    calendar.add("version", "2.0")
    return calendar


def _event(booking: Booking, viewer: User, as_trainer: bool = False) -> Event:
    cancelled = booking.status is BookingStatus.CANCELLED
    event = Event()
    event.add("uid", f"booking-{booking.id}@{site_host()}")  # stable: re-importing updates, not duplicates
    event.add("summary", ("Cancelled: " if cancelled else "") + session_title(booking, as_trainer))
    event.add("dtstart", _utc(booking.starts_at))
    event.add("dtend", _utc(booking.ends_at))
    event.add("dtstamp", datetime.now(timezone.utc))
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("sequence", 1 if cancelled else 0)  # clients that track versions see the cancel as newer
    if booking.meeting_url and link_visible_to(booking, viewer):
        event.add("url", booking.meeting_url)
        event.add("location", booking.meeting_url)
        event.add("description", f"Join the video session: {booking.meeting_url}")
    return event


def booking_ics(booking: Booking, viewer: User) -> bytes:
    calendar = _calendar()
    calendar.add_component(_event(booking, viewer))
    return calendar.to_ical()


def feed_bookings(user: User, now: datetime | None = None) -> list[Booking]:
    """The user's sessions for the feed: as member, and as trainer when they have a profile."""
    since = (now or datetime.now(timezone.utc)) - FEED_PAST
    mine = Booking.member_id == user.id
    if user.trainer_profile is not None:
        mine = mine | (Booking.trainer_id == user.trainer_profile.id)
    return list(db.session.scalars(
        select(Booking).where(
            mine, Booking.status.in_(FEED_STATUSES), Booking.ends_at >= since,
            (Booking.status != BookingStatus.CANCELLED)
            | (func.coalesce(Booking.cancelled_at, Booking.created_at) >= since),
        ).order_by(Booking.starts_at).options(selectinload(Booking.trainer), selectinload(Booking.member))
    ))


def feed_ics(user: User, now: datetime | None = None) -> bytes:
    calendar = _calendar()
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", "FitTribe sessions")
    calendar.add("refresh-interval", FEED_REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(FEED_REFRESH).to_ical().decode())  # Outlook's older name
    trainer_id = user.trainer_profile.id if user.trainer_profile is not None else None
    for booking in feed_bookings(user, now):
        calendar.add_component(_event(booking, user, as_trainer=booking.trainer_id == trainer_id))
    return calendar.to_ical()


def issue_feed_token(user: User) -> str:
    """A new secret feed URL; the old one (if any) stops working at once."""
    user.calendar_token = secrets.token_urlsafe(32)
    db.session.commit()
    return user.calendar_token


def revoke_feed_token(user: User) -> None:
    user.calendar_token = None
    db.session.commit()


def user_for_feed_token(token: str) -> User | None:
    """The active account this feed token belongs to, or None."""
    if not token or len(token) > 64:
        return None
    user = db.session.scalar(select(User).where(User.calendar_token == token))
    return user if user is not None and user.is_active else None


def google_calendar_link(booking: Booking, viewer: User) -> str:
    stamp = "%Y%m%dT%H%M%SZ"
    dates = f"{_utc(booking.starts_at).strftime(stamp)}/{_utc(booking.ends_at).strftime(stamp)}"
    shown = booking.meeting_url and link_visible_to(booking, viewer)
    details = f"Join the video session: {booking.meeting_url}" if shown else ""
    return "https://calendar.google.com/calendar/render?" + urlencode(
        {"action": "TEMPLATE", "text": session_title(booking), "dates": dates, "details": details})
