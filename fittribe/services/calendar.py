"""Calendar exports of confirmed sessions: an .ics file (RFC 5545, via icalendar) and an
"Add to Google Calendar" link."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlencode

from icalendar import Calendar, Event

from ..models import Booking


def _title(booking: Booking) -> str:
    return f"FitTribe session with {booking.trainer.display_name}"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def booking_ics(booking: Booking, host: str) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//FitTribe//Sessions//EN")
    calendar.add("version", "2.0")
    event = Event()
    event.add("uid", f"booking-{booking.id}@{host}")  # stable: re-importing updates, not duplicates
    event.add("summary", _title(booking))
    event.add("dtstart", _utc(booking.starts_at))
    event.add("dtend", _utc(booking.ends_at))
    event.add("dtstamp", datetime.now(timezone.utc))
    if booking.meeting_url:
        event.add("url", booking.meeting_url)
        event.add("location", booking.meeting_url)
        event.add("description", f"Join the video session: {booking.meeting_url}")
    calendar.add_component(event)
    return calendar.to_ical()


def google_calendar_link(booking: Booking) -> str:
    stamp = "%Y%m%dT%H%M%SZ"
    dates = f"{_utc(booking.starts_at).strftime(stamp)}/{_utc(booking.ends_at).strftime(stamp)}"
    details = f"Join the video session: {booking.meeting_url}" if booking.meeting_url else ""
    return "https://calendar.google.com/calendar/render?" + urlencode(
        {"action": "TEMPLATE", "text": _title(booking), "dates": dates, "details": details})
