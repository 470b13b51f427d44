"""Video meetings for confirmed bookings: Zoom (Server-to-Server OAuth) when ZOOM_ACCOUNT_ID,
ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET are set, otherwise an unguessable Jitsi room.

A provider failure never undoes a paid confirmation: the booking stays confirmed without a link,
admins are alerted once, and the worker tries again (`retry_missing`) until it works or gives up."""
from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, timezone

import requests
from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import Booking, BookingStatus, User
from . import google_calendar
from .notify import notify, notify_admins

TIMEOUT = (3.05, 10)  # seconds to connect, to read
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ATTEMPTS = 20  # failed attempts after which the worker stops trying (admins are told)
TOKEN_MARGIN_SECONDS = 60  # renew a token this long before Zoom says it expires

# Access tokens per (OAuth URL, account, client): one per process, shared by its threads.
_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


class MeetingError(RuntimeError):
    """The video provider refused or answered something unusable."""


def link_visible_to(booking: Booking, user: User | None) -> bool:
    """The one rule for who sees a session's video link, wherever it appears (booking page, join,
    .ics file, calendar feed, Google Calendar link): its member and its trainer. Admins see the
    session, not the room."""
    return user is not None and user.is_authenticated and user.id in (booking.member_id, booking.trainer.user_id)


def attach(booking: Booking) -> bool:
    """Give a just-confirmed booking its meeting. Never raises: on failure the attempt is counted,
    logged and (the first time) admins are alerted; the caller commits either way."""
    if booking.meeting_url:
        return True
    try:
        if _zoom_configured():
            booking.meeting_url, booking.meeting_ref = _zoom_create(booking)
        else:
            booking.meeting_url = _jitsi_room()
        return True
    except Exception:  # whatever went wrong, the paid confirmation must still be committed
        booking.meeting_attempts = (booking.meeting_attempts or 0) + 1
        current_app.logger.exception("Video meeting for booking %s failed (attempt %s)",
                                     booking.id, booking.meeting_attempts)
    link = f"/bookings/{booking.id}"
    if booking.meeting_attempts == 1:
        notify_admins("alert", f"Booking #{booking.id} is confirmed but its video meeting could not be created; "
                               f"the worker keeps retrying (details in the log).", link)
    elif booking.meeting_attempts == MAX_ATTEMPTS:
        notify_admins("alert", f"Gave up creating the video meeting of booking #{booking.id} after "
                               f"{MAX_ATTEMPTS} attempts: send both parties a link by hand.", link)
    return False


def detach(booking: Booking) -> None:
    """On cancellation, delete the booking's Zoom meeting (Jitsi rooms need nothing). Never raises."""
    if not booking.meeting_ref:
        return
    if not _zoom_configured():
        current_app.logger.warning("Zoom meeting %s of booking %s left in place: Zoom is not configured",
                                   booking.meeting_ref, booking.id)
        return
    try:
        response = _zoom("DELETE", f"/meetings/{booking.meeting_ref}")
        if not (response.ok or response.status_code == 404):  # 404: already gone, which is the goal
            raise MeetingError(f"Zoom answered {response.status_code}: {response.text[:200]}")
    except Exception:  # a leftover meeting is harmless (waiting room, no host): never block a cancellation
        current_app.logger.exception("Could not delete Zoom meeting %s of booking %s", booking.meeting_ref, booking.id)


def retry_missing(now: datetime | None = None) -> int:
    """Worker job: try again for confirmed, upcoming bookings still without a meeting, committing
    each one; tells both parties when a link appears. Returns how many got one."""
    now = now or datetime.now(timezone.utc)
    pending = (Booking.status == BookingStatus.CONFIRMED, Booking.meeting_url.is_(None),
               Booking.ends_at > now, Booking.meeting_attempts < MAX_ATTEMPTS)
    made = 0
    for booking_id in db.session.scalars(select(Booking.id).where(*pending).order_by(Booking.starts_at)).all():
        # Lock the row (skipping one another worker holds) so a booking never gets two meetings.
        booking = db.session.scalar(select(Booking).where(Booking.id == booking_id, *pending)
                                    .with_for_update(skip_locked=True).execution_options(populate_existing=True))
        if booking is not None and attach(booking):
            made += 1
            link = f"/bookings/{booking.id}"
            notify(booking.member_id, "meeting",
                   f"Your video link is ready for your session with {booking.trainer.display_name}.", link)
            notify(booking.trainer.user_id, "meeting",
                   f"Your video link is ready for your session with {booking.member.name}.", link)
            google_calendar.booking_changed(booking)  # calendar events get the link (the worker sends it)
        db.session.commit()
    return made


def _jitsi_room() -> str:
    # 18 random bytes in the name: the room's only protection is that nobody can guess it.
    return f"{current_app.config['JITSI_BASE_URL'].rstrip('/')}/FitTribe-{secrets.token_urlsafe(18)}"


# --- Zoom ---------------------------------------------------------------------------------------

def _zoom_configured() -> bool:
    config = current_app.config
    return all(config.get(name) for name in ("ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET"))


def _zoom_create(booking: Booking) -> tuple[str, str]:
    """A scheduled Zoom meeting for the booking: (join URL, meeting id)."""
    trainer = booking.trainer
    response = _zoom("POST", "/users/me/meetings", json={
        "topic": f"FitTribe session #{booking.id} with {trainer.display_name}"[:200],
        "type": 2,  # scheduled meeting
        # UTC ("Z"); `timezone` is how Zoom shows it to the host.
        "start_time": booking.starts_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration": int((booking.ends_at - booking.starts_at).total_seconds() // 60),
        "timezone": trainer.time_zone,
        "settings": {"join_before_host": False, "waiting_room": True},
    })
    if not response.ok:
        raise MeetingError(f"Zoom answered {response.status_code}: {response.text[:200]}")
    meeting = response.json()
    if not meeting.get("join_url") or not meeting.get("id"):
        raise MeetingError(f"Zoom's meeting has no join_url or id: {response.text[:200]}")
    return meeting["join_url"], str(meeting["id"])


def _zoom(method: str, path: str, **kwargs) -> requests.Response:
    """A Zoom API call with a cached token; a 401 (token revoked early) is tried once with a fresh one."""
    url = current_app.config["ZOOM_API_BASE"].rstrip("/") + path
    token = _token()
    response = _send(method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    if response.status_code == 401:
        _forget(token)
        response = _send(method, url, headers={"Authorization": f"Bearer {_token()}"}, **kwargs)
    return response


def _token_key() -> tuple[str, str, str]:
    config = current_app.config
    return config["ZOOM_OAUTH_URL"], config["ZOOM_ACCOUNT_ID"], config["ZOOM_CLIENT_ID"]


def _token() -> str:
    config = current_app.config
    key = _token_key()
    # Fetched under the lock, so concurrent callers wait for one token instead of each asking Zoom.
    with _tokens_lock:
        cached = _tokens.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        response = _send("POST", config["ZOOM_OAUTH_URL"],
                         params={"grant_type": "account_credentials", "account_id": config["ZOOM_ACCOUNT_ID"]},
                         auth=(config["ZOOM_CLIENT_ID"], config["ZOOM_CLIENT_SECRET"]))
        if not response.ok:
            raise MeetingError(f"Zoom refused an access token ({response.status_code}): {response.text[:200]}")
        data = response.json()
        lifetime = float(data.get("expires_in", 3600)) - TOKEN_MARGIN_SECONDS
        _tokens[key] = (data["access_token"], time.monotonic() + max(lifetime, 0))
        return data["access_token"]


def _forget(token: str) -> None:
    key = _token_key()
    with _tokens_lock:
        cached = _tokens.get(key)
        if cached and cached[0] == token:  # unless another thread has already renewed it
            del _tokens[key]


def _send(method: str, url: str, **kwargs) -> requests.Response:
    """An HTTP call retried after rate limits, server errors and failed connections, with doubling
    pauses. Read timeouts are not retried: Zoom may have made the meeting, and a retry would make two."""
    config = current_app.config
    for attempt in range(config["ZOOM_RETRIES"]):
        try:
            response = requests.request(method, url, timeout=TIMEOUT, **kwargs)
            if response.status_code not in RETRY_STATUSES:
                return response
        except requests.ConnectionError:
            pass
        time.sleep(config["ZOOM_RETRY_BACKOFF"] * 2 ** attempt)
    return requests.request(method, url, timeout=TIMEOUT, **kwargs)  # the last try: its answer or error stands
