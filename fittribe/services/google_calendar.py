"""Google Calendar, both ways, for people who connect it (trainers; members too, for their sessions).

Connect: OAuth 2.0 authorization code with PKCE and offline access, through Authlib's client on
requests. The token (access + refresh) is stored Fernet-encrypted (GOOGLE_TOKEN_KEYS); Authlib
refreshes it a minute before it expires, and a 401 anyway (access revoked early) refreshes once
and retries. Google refusing the refresh (`invalid_grant`: access removed in the Google account)
marks the connection revoked: the person is asked to reconnect and admins are alerted, once;
pages never fail because of it, and pending calendar changes wait for the reconnection.

Busy time in: a free/busy query over the trainer's chosen calendars, from today to the end of the
booking horizon, replaces the stored intervals (CalendarBusy), which the slot engine subtracts like
bookings (buffers apply). Read on connect, on each push notification (one watch channel per busy
calendar, its secret token checked, renewed before it ends) and by the worker every
GOOGLE_BUSY_REFRESH_MINUTES. A change re-renders every open profile of the trainer.

Conflict rule: busy time appearing over a time already held or booked does not undo it — a hold
may still be paid and a booking stands; the trainer is told once per session, to move or cancel
it if they can't make it. FitTribe's own session events (which count as busy in the trainer's
calendar) are left out of the stored busy time, so a session never conflicts with itself; a
private event laid exactly over a session is therefore not reported (it was laid over it in view).

Bookings out: a confirmed session becomes an event in the chosen calendar of the trainer and of
the member, whoever is connected, carrying our booking id in extendedProperties.private so that a
retry finds the event instead of adding a second; moving the session patches it, cancelling
deletes it. Each change is recorded in the booking's own transaction (GoogleEventSync.pending) and
sent after the commit; when Google is down the worker sends it later. A booking never waits for
Google nor fails because of it."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from sqlalchemy import delete, select

from ..extensions import db
from ..models import (Booking, BookingStatus, CalendarBusy, ConnectionStatus, GoogleConnection, GoogleEventSync,
                      GoogleWatchChannel, TrainerProfile, User)
from .booking import BookingError, announce_slots_changed
from .calendar import session_title
from .notify import notify, notify_admins
from .time_zones import on_clock

SCOPES = ("https://www.googleapis.com/auth/calendar.readonly", "https://www.googleapis.com/auth/calendar.events")
TIMEOUT = (3.05, 10)  # seconds to connect, to read
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TOKEN_LEEWAY_SECONDS = 60  # refresh the access token this long before it expires
BOOKING_PROPERTY = "fittribeBookingId"  # our key in an event's extendedProperties.private
ALERT_AFTER_ATTEMPTS = 10  # failed sends of one event change after which admins are told
ACCOUNT_LINK = "/account/google"


class GoogleError(RuntimeError):
    """Google could not do what we asked (outage, refusal); the message is for logs."""


class GrantRevoked(GoogleError):
    """Google no longer accepts this connection's refresh token."""


class NotificationRefused(ValueError):
    """A push notification for no channel of ours, or with the wrong channel token."""


def configured() -> bool:
    config = current_app.config
    return bool(config.get("GOOGLE_CLIENT_ID") and config.get("GOOGLE_CLIENT_SECRET") and config.get("GOOGLE_TOKEN_KEYS"))


def connection_of(user_id: int) -> GoogleConnection | None:
    return db.session.scalar(select(GoogleConnection).where(GoogleConnection.user_id == user_id))


# --- tokens -------------------------------------------------------------------------------------

def _fernet() -> MultiFernet:
    keys = [key.strip() for key in current_app.config["GOOGLE_TOKEN_KEYS"].split(",") if key.strip()]
    return MultiFernet([Fernet(key) for key in keys])


def _seal(token: dict) -> str:
    return _fernet().encrypt(json.dumps(dict(token)).encode()).decode()


def _unseal(sealed: str) -> dict:
    try:
        return json.loads(_fernet().decrypt(sealed.encode()))
    except InvalidToken as error:  # the key was replaced without keeping the old one
        raise GrantRevoked("stored token can't be decrypted with GOOGLE_TOKEN_KEYS") from error


def _oauth(**kwargs) -> OAuth2Session:
    config = current_app.config
    return OAuth2Session(config["GOOGLE_CLIENT_ID"], config["GOOGLE_CLIENT_SECRET"], code_challenge_method="S256",
                         token_endpoint=config["GOOGLE_TOKEN_URL"], leeway=TOKEN_LEEWAY_SECONDS,
                         default_timeout=TIMEOUT, **kwargs)


def authorization_url(redirect_uri: str) -> tuple[str, str, str]:
    """Where to send the browser for consent: (url, state, PKCE code verifier). The caller keeps
    state and verifier in the session until Google redirects back."""
    verifier = generate_token(64)
    url, state = _oauth(redirect_uri=redirect_uri).create_authorization_url(
        current_app.config["GOOGLE_AUTH_URL"], code_verifier=verifier, scope=" ".join(SCOPES),
        access_type="offline", prompt="consent", include_granted_scopes="true")
    return url, state, verifier


class _Api:
    """Calendar API calls as one connection, storing each refreshed token (the caller commits)."""

    def __init__(self, connection: GoogleConnection, retries: int | None = None):
        self.connection = connection
        self.retries = current_app.config["GOOGLE_RETRIES"] if retries is None else retries
        self.session = _oauth(token=_unseal(connection.token_encrypted), update_token=self._store)

    def _store(self, token, **_) -> None:
        self.connection.token_encrypted = _seal(token)

    def call(self, method: str, path: str, ok: tuple[int, ...] = (), **kwargs) -> requests.Response:
        """The response if it succeeded (2xx, or a status in `ok`); GoogleError otherwise."""
        url = current_app.config["GOOGLE_API_BASE"].rstrip("/") + "/calendar/v3" + path
        try:
            response = self._send(method, url, **kwargs)
            if response.status_code == 401:  # access revoked before its expiry: one refresh, one retry
                self.session.refresh_token(current_app.config["GOOGLE_TOKEN_URL"])
                response = self._send(method, url, **kwargs)
        except OAuthError as error:
            if error.error == "invalid_grant":
                raise GrantRevoked(error.description or "invalid_grant") from error
            raise GoogleError(f"token refresh refused: {error.error}") from error
        except requests.RequestException as error:
            raise GoogleError(f"{method} {path}: {error!r}") from error
        if not (response.ok or response.status_code in ok):
            raise GoogleError(f"{method} {path} answered {response.status_code}: {response.text[:200]}")
        return response

    def _send(self, method: str, url: str, **kwargs) -> requests.Response:
        """Retried after rate limits, server errors and failed connections, with doubling pauses."""
        backoff = current_app.config["GOOGLE_RETRY_BACKOFF"]
        for attempt in range(self.retries):
            try:
                response = self.session.request(method, url, **kwargs)
                if response.status_code not in RETRY_STATUSES:
                    return response
            except requests.ConnectionError:
                pass
            time.sleep(backoff * 2 ** attempt)
        return self.session.request(method, url, **kwargs)  # the last try: its answer or error stands


def _revoked(connection: GoogleConnection) -> None:
    """Google refused the grant: ask the person to reconnect and tell admins, once (not committed)."""
    if connection.status is ConnectionStatus.REVOKED:
        return
    connection.status = ConnectionStatus.REVOKED
    notify(connection.user_id, "calendar", "Google Calendar stopped accepting FitTribe's access. Please reconnect "
                                           "it so busy times and sessions keep syncing.", ACCOUNT_LINK)
    notify_admins("alert", f"Google Calendar access of {connection.user.name} (user #{connection.user_id}) was "
                           "revoked; they were asked to reconnect.", f"/admin/users?q={quote(connection.user.email)}")


def _guarded(connection: GoogleConnection, work, retries: int | None = None) -> bool:
    """Run `work(api)`; on failure log it (and mark a revoked grant), never raise. The caller commits."""
    if connection.status is not ConnectionStatus.ACTIVE:
        return False
    try:
        work(_Api(connection, retries))
        return True
    except GrantRevoked:
        current_app.logger.warning("Google grant of user %s revoked", connection.user_id)
        _revoked(connection)
    except GoogleError:
        current_app.logger.exception("Google Calendar call for user %s failed", connection.user_id)
    return False


# --- connect, choose, disconnect ----------------------------------------------------------------

def connect(user: User, code: str, verifier: str, redirect_uri: str) -> GoogleConnection:
    """Trade the authorization code for tokens, list the calendars and store the connection; a
    trainer's busy times are read and watched at once. BookingError (message for the person) if
    Google refuses or access was only partly granted."""
    config = current_app.config
    try:
        token = _oauth(redirect_uri=redirect_uri).fetch_token(
            config["GOOGLE_TOKEN_URL"], grant_type="authorization_code", code=code, code_verifier=verifier)
    except (OAuthError, requests.RequestException, ValueError) as error:
        current_app.logger.warning("Google refused the authorization code: %r", error)
        raise BookingError("Google did not accept the connection. Please try again.") from error
    if not set(SCOPES) <= set(token.get("scope", "").split()) or not token.get("refresh_token"):
        raise BookingError("Please allow FitTribe both to see your calendars and to add events, then try again.")
    connection = connection_of(user.id) or GoogleConnection(user_id=user.id)
    connection.token_encrypted, connection.status = _seal(token), ConnectionStatus.ACTIVE
    connection.channels = []  # channels of an earlier grant: new ones are made below
    db.session.add(connection)
    db.session.flush()
    try:
        calendars = _Api(connection).call("GET", "/users/me/calendarList").json().get("items", [])
    except GoogleError as error:
        db.session.rollback()
        current_app.logger.exception("Listing Google calendars failed")
        raise BookingError("Google is not answering right now. Please try again in a few minutes.") from error
    connection.calendars = [{"id": c["id"], "summary": c.get("summary", c["id"]), "primary": bool(c.get("primary")),
                             "writable": c.get("accessRole") in ("owner", "writer")} for c in calendars]
    ids = {c["id"] for c in connection.calendars}
    primary = next((c["id"] for c in connection.calendars if c["primary"]), None)
    connection.account = primary
    connection.busy_calendar_ids = [i for i in connection.busy_calendar_ids or [] if i in ids] or (
        [primary] if primary and user.trainer_profile is not None else [])
    if connection.target_calendar_id not in ids:
        connection.target_calendar_id = primary
    _queue_upcoming(user)
    db.session.commit()
    _after_settings_change(connection)
    return connection


def choose(connection: GoogleConnection, busy_ids: list[str], target_id: str) -> None:
    """Which calendars count as busy (trainers) and which receives sessions. BookingError on ids
    that are not this account's (or a target it can't write to)."""
    known = {c["id"]: c for c in connection.calendars}
    if any(i not in known for i in busy_ids) or not known.get(target_id, {}).get("writable"):
        raise BookingError("Choose calendars from the list.")
    if connection.user.trainer_profile is None:
        busy_ids = []
    moved = target_id != connection.target_calendar_id
    connection.busy_calendar_ids, connection.target_calendar_id = sorted(set(busy_ids)), target_id
    if moved:  # upcoming sessions move to the new calendar
        _queue_upcoming(connection.user)
    db.session.commit()
    _after_settings_change(connection)


def _after_settings_change(connection: GoogleConnection) -> None:
    trainer = connection.user.trainer_profile
    if trainer is not None:
        refresh_busy(trainer.id)
        _guarded(connection, lambda api: _sync_watches(api, connection))
        db.session.commit()
    push_pending(user_id=connection.user_id, retries=0)


def disconnect(user: User) -> bool:
    """Forget the connection, its busy times and channels, revoking the grant at Google. Returns
    False when Google could not be told (the person may remove access in their Google account)."""
    connection = connection_of(user.id)
    if connection is None:
        return True

    def stop_channels(api: _Api) -> None:
        for channel in connection.channels:
            _stop(api, channel)

    revoked = False
    try:
        token = _unseal(connection.token_encrypted)
        _guarded(connection, stop_channels, retries=0)
        response = _oauth(token=token).revoke_token(current_app.config["GOOGLE_REVOKE_URL"],
                                                    token=token.get("refresh_token") or token.get("access_token"))
        revoked = response.ok or response.status_code == 400  # 400: already revoked
    except (GoogleError, requests.RequestException):
        current_app.logger.exception("Could not revoke the Google grant of user %s", user.id)
    db.session.execute(delete(GoogleEventSync).where(GoogleEventSync.user_id == user.id))
    db.session.delete(connection)
    trainer = user.trainer_profile
    if trainer is not None:
        db.session.execute(delete(CalendarBusy).where(CalendarBusy.trainer_id == trainer.id))
        announce_slots_changed(trainer.id)
    db.session.commit()
    return revoked


# --- busy time in -------------------------------------------------------------------------------

def _window(trainer: TrainerProfile, now: datetime) -> tuple[datetime, datetime]:
    """From midnight UTC (a stable start, so an unchanged calendar reads the same all day) to the
    end of the booking horizon."""
    start = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, now + timedelta(days=trainer.horizon_days + 1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(timezone.utc)


def merge(intervals) -> list[tuple[datetime, datetime]]:
    """Sorted, with overlapping or touching intervals joined."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def subtract(intervals, holes) -> list[tuple[datetime, datetime]]:
    """`intervals` without the time covered by `holes` (both lists of (start, end))."""
    result = []
    for start, end in merge(intervals):
        for hole_start, hole_end in merge(holes):
            if hole_end <= start or hole_start >= end:
                continue
            if hole_start > start:
                result.append((start, hole_start))
            start = max(start, hole_end)
            if start >= end:
                break
        if start < end:
            result.append((start, end))
    return result


def refresh_busy(trainer_id: int, now: datetime | None = None, retries: int | None = None) -> bool:
    """Read the trainer's busy times from Google and store them; when they changed, every open
    profile of the trainer updates and new conflicts are told. Commits; never raises. Returns
    False when there was nothing to read or Google failed (the stored times stay)."""
    now = now or datetime.now(timezone.utc)
    trainer = db.session.get(TrainerProfile, trainer_id)
    connection = connection_of(trainer.user_id) if trainer else None
    if connection is None or connection.status is not ConnectionStatus.ACTIVE:
        return False
    start, end = _window(trainer, now)
    answer: dict = {}

    def read(api: _Api) -> None:
        if connection.busy_calendar_ids:
            answer.update(api.call("POST", "/freeBusy", json={
                "timeMin": _iso(start), "timeMax": _iso(end),
                "items": [{"id": calendar_id} for calendar_id in connection.busy_calendar_ids]}).json())

    if not _guarded(connection, read, retries):
        db.session.commit()  # a refreshed token or the revoked mark
        return False
    busy = []
    for calendar_id, found in (answer.get("calendars") or {}).items():
        if found.get("errors"):
            current_app.logger.warning("Google free/busy of calendar %s for trainer %s: %s", calendar_id,
                                       trainer_id, found["errors"])
        busy += [(_parse(b["start"]), _parse(b["end"])) for b in found.get("busy", [])]
    store_busy(trainer, subtract(busy, _own_event_times(connection)), start, now)
    connection.busy_synced_at = now
    db.session.commit()
    return True


def _own_event_times(connection: GoogleConnection) -> list[tuple[datetime, datetime]]:
    """Where our session events sit in this person's busy calendars (as Google has them)."""
    rows = db.session.execute(select(GoogleEventSync.event_starts_at, GoogleEventSync.event_ends_at).where(
        GoogleEventSync.user_id == connection.user_id, GoogleEventSync.event_id.is_not(None),
        GoogleEventSync.calendar_id.in_(connection.busy_calendar_ids or [""])))
    return [(s, e) for s, e in rows if s and e]


def store_busy(trainer: TrainerProfile, busy: list[tuple[datetime, datetime]], since: datetime,
               now: datetime) -> None:
    """Replace the trainer's stored busy times (in the caller's transaction); announce a change
    and tell the trainer of sessions it newly overlaps."""
    # The connection row's lock serialises two refreshes of one trainer (a notification and the worker).
    db.session.scalar(select(GoogleConnection.id).where(GoogleConnection.user_id == trainer.user_id).with_for_update())
    old = [(s, e) for s, e in db.session.execute(select(CalendarBusy.starts_at, CalendarBusy.ends_at).where(
        CalendarBusy.trainer_id == trainer.id, CalendarBusy.ends_at > since).order_by(CalendarBusy.starts_at))]
    new = merge(busy)
    if old == new:
        return
    db.session.execute(delete(CalendarBusy).where(CalendarBusy.trainer_id == trainer.id))
    db.session.add_all(CalendarBusy(trainer_id=trainer.id, starts_at=s, ends_at=e) for s, e in new)
    sessions = list(db.session.scalars(select(Booking).where(
        Booking.trainer_id == trainer.id, Booking.ends_at > now,
        (Booking.status == BookingStatus.CONFIRMED)
        | ((Booking.status == BookingStatus.HELD) & (Booking.hold_expires_at > now)))))
    for booking in sessions:
        if _overlaps(booking, new) and not _overlaps(booking, old):
            _tell_conflict(trainer, booking)
    announce_slots_changed(trainer.id)


def _overlaps(booking: Booking, intervals) -> bool:
    return any(s < booking.ends_at and booking.starts_at < e for s, e in intervals)


def _tell_conflict(trainer: TrainerProfile, booking: Booking) -> None:
    """The documented rule: the hold or booking stands; the trainer decides."""
    local = on_clock(booking.starts_at, trainer.user.time_zone)
    what = "session" if booking.status is BookingStatus.CONFIRMED else "held time"
    notify(trainer.user_id, "calendar-conflict",
           f"Your Google Calendar now shows you busy during the {what} with {booking.member.name} on {local}. "
           f"It stays booked: if you can't make it, move or cancel it.", f"/bookings/{booking.id}")


def handle_notification(channel_id: str | None, token: str | None, state: str | None) -> str:
    """A push notification from Google: verified by its channel's secret token, then the
    trainer's busy times are read again. NotificationRefused for unknown channels or bad tokens."""
    channel = db.session.scalar(select(GoogleWatchChannel).where(GoogleWatchChannel.channel_id == (channel_id or "")))
    if channel is None:
        raise NotificationRefused("unknown channel")
    if not hmac.compare_digest(_hash(token or ""), channel.token_hash):
        raise NotificationRefused("bad channel token")
    if state == "sync":  # the channel's first message: nothing changed yet
        return "sync"
    trainer = channel.connection.user.trainer_profile
    return "refreshed" if trainer is not None and refresh_busy(trainer.id) else "ignored"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _sync_watches(api: _Api, connection: GoogleConnection, now: datetime | None = None) -> None:
    """One live channel per busy calendar: new ones for new calendars, a replacement (made before
    the old one is stopped, so no change goes unheard) for each that ends soon, none for others."""
    now = now or datetime.now(timezone.utc)
    renew_by = now + timedelta(hours=current_app.config["GOOGLE_WATCH_RENEW_HOURS"])
    wanted = set(connection.busy_calendar_ids or [])
    keep = {c.calendar_id for c in connection.channels if c.calendar_id in wanted and c.expires_at > renew_by}
    old = [c for c in connection.channels if c.calendar_id not in keep]
    for calendar_id in sorted(wanted - keep):
        _watch(api, connection, calendar_id, now)
    for channel in old:
        _stop(api, channel)
        db.session.delete(channel)


def _watch(api: _Api, connection: GoogleConnection, calendar_id: str, now: datetime) -> None:
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(hours=current_app.config["GOOGLE_WATCH_TTL_HOURS"])
    answer = api.call("POST", f"/calendars/{quote(calendar_id, safe='')}/events/watch", json={
        "id": uuid.uuid4().hex, "type": "web_hook", "address": current_app.config["GOOGLE_WEBHOOK_URL"],
        "token": token, "expiration": int(expires.timestamp() * 1000)}).json()
    granted = datetime.fromtimestamp(int(answer.get("expiration", expires.timestamp() * 1000)) / 1000, timezone.utc)
    db.session.add(GoogleWatchChannel(connection=connection, calendar_id=calendar_id, channel_id=answer["id"],
                                      token_hash=_hash(token), resource_id=answer.get("resourceId"),
                                      expires_at=granted))


def _stop(api: _Api, channel: GoogleWatchChannel) -> None:
    try:
        api.call("POST", "/channels/stop", ok=(404,), json={"id": channel.channel_id, "resourceId": channel.resource_id})
    except GoogleError:  # it ends by itself at its expiry; notifications for it are refused meanwhile
        current_app.logger.warning("Could not stop Google channel %s", channel.channel_id)


# --- bookings out -------------------------------------------------------------------------------

def booking_changed(booking: Booking) -> None:
    """In the booking's transaction: its events should now show it (confirmed) or be gone."""
    if not configured():
        return
    present = booking.status is BookingStatus.CONFIRMED
    for user_id in (booking.trainer.user_id, booking.member_id):
        sync = db.session.scalar(select(GoogleEventSync).where(GoogleEventSync.booking_id == booking.id,
                                                               GoogleEventSync.user_id == user_id))
        if sync is None:
            if not present or connection_of(user_id) is None:
                continue
            sync = GoogleEventSync(booking_id=booking.id, user_id=user_id)
            db.session.add(sync)
        sync.present, sync.pending = present, True


def _queue_upcoming(user: User) -> None:
    """A new or changed connection: the person's upcoming sessions go to their chosen calendar."""
    mine = Booking.member_id == user.id
    if user.trainer_profile is not None:
        mine |= Booking.trainer_id == user.trainer_profile.id
    for booking in db.session.scalars(select(Booking).where(mine, Booking.status == BookingStatus.CONFIRMED,
                                                            Booking.ends_at > datetime.now(timezone.utc))):
        booking_changed(booking)


def push_pending(booking_id: int | None = None, user_id: int | None = None, retries: int | None = None) -> int:
    """Send pending event changes (one booking's or person's, or all of them for the worker), one
    transaction each; returns how many were sent. Never raises."""
    if not configured():
        return 0
    query = select(GoogleEventSync.id).where(GoogleEventSync.pending)
    if booking_id is not None:
        query = query.where(GoogleEventSync.booking_id == booking_id)
    if user_id is not None:
        query = query.where(GoogleEventSync.user_id == user_id)
    sent = 0
    for sync_id in db.session.scalars(query.order_by(GoogleEventSync.id)).all():
        # Locked (skipping one another process is sending) so an event is never made twice.
        sync = db.session.scalar(select(GoogleEventSync).where(GoogleEventSync.id == sync_id, GoogleEventSync.pending)
                                 .with_for_update(skip_locked=True).execution_options(populate_existing=True))
        connection = connection_of(sync.user_id) if sync else None
        if sync is None or connection is None:
            db.session.commit()
            continue
        if _guarded(connection, lambda api: _send_event(api, connection, sync), retries):
            sync.pending = False
            sent += 1
        elif connection.status is ConnectionStatus.ACTIVE:
            sync.attempts += 1
            if sync.attempts == ALERT_AFTER_ATTEMPTS:
                notify_admins("alert", f"Booking #{sync.booking_id} could not be written to a Google Calendar after "
                                       f"{ALERT_AFTER_ATTEMPTS} attempts; the worker keeps trying.",
                              f"/bookings/{sync.booking_id}")
        db.session.commit()
    return sent


def _event_path(calendar_id: str, event_id: str | None = None) -> str:
    path = f"/calendars/{quote(calendar_id, safe='')}/events"
    return path + f"/{quote(event_id, safe='')}" if event_id else path


def _send_event(api: _Api, connection: GoogleConnection, sync: GoogleEventSync) -> None:
    booking = sync.booking
    target = connection.target_calendar_id
    if sync.event_id is None and sync.calendar_id is None:
        # Never sent, or sent with the answer lost: find it by our booking id before adding one.
        found = api.call("GET", _event_path(target), params={
            "privateExtendedProperty": f"{BOOKING_PROPERTY}={booking.id}", "showDeleted": "false"}).json()
        if found.get("items"):
            sync.event_id, sync.calendar_id = found["items"][0]["id"], target
    if sync.event_id and (not sync.present or sync.calendar_id != target):
        api.call("DELETE", _event_path(sync.calendar_id, sync.event_id), ok=(404, 410))  # gone already is fine
        sync.event_id = sync.calendar_id = sync.event_starts_at = sync.event_ends_at = None
    if not sync.present:
        return
    body = _event_body(booking, as_trainer=sync.user_id == booking.trainer.user_id)
    response = None
    if sync.event_id:
        response = api.call("PATCH", _event_path(target, sync.event_id), ok=(404, 410), json=body)
        if response.status_code in (404, 410):  # deleted in the calendar by its owner: add it again
            response = None
    if response is None:
        response = api.call("POST", _event_path(target), json=body)
    sync.event_id, sync.calendar_id = response.json()["id"], target
    sync.event_starts_at, sync.event_ends_at = booking.starts_at, booking.ends_at


def _event_body(booking: Booking, as_trainer: bool) -> dict:
    link = current_app.config["SITE_URL"].rstrip("/") + f"/bookings/{booking.id}"
    lines = [f"Join the video session: {booking.meeting_url}"] if booking.meeting_url else []
    return {"summary": session_title(booking, as_trainer),
            "start": {"dateTime": _iso(booking.starts_at), "timeZone": "UTC"},
            "end": {"dateTime": _iso(booking.ends_at), "timeZone": "UTC"},
            "location": booking.meeting_url or "",
            "description": "\n".join([*lines, f"Your booking on FitTribe: {link}"]),
            "source": {"title": "FitTribe", "url": link},
            "extendedProperties": {"private": {BOOKING_PROPERTY: str(booking.id)}}}


# --- the worker ---------------------------------------------------------------------------------

def maintain(now: datetime | None = None) -> None:
    """Worker job: re-read busy times not read for GOOGLE_BUSY_REFRESH_MINUTES (a notification may
    have been lost; a revoked grant shows up here too) and renew push channels that end soon."""
    if not configured():
        return
    now = now or datetime.now(timezone.utc)
    config = current_app.config
    stale_before = now - timedelta(minutes=config["GOOGLE_BUSY_REFRESH_MINUTES"])
    renew_by = now + timedelta(hours=config["GOOGLE_WATCH_RENEW_HOURS"])
    rows = db.session.execute(select(GoogleConnection.id, TrainerProfile.id).join(
        TrainerProfile, TrainerProfile.user_id == GoogleConnection.user_id).where(
        GoogleConnection.status == ConnectionStatus.ACTIVE)).all()
    for connection_id, trainer_id in rows:
        connection = db.session.get(GoogleConnection, connection_id)
        if connection.busy_synced_at is None or connection.busy_synced_at < stale_before:
            refresh_busy(trainer_id, now)
        watched = {c.calendar_id for c in connection.channels if c.expires_at > renew_by}
        if watched != set(connection.busy_calendar_ids or []):
            _guarded(connection, lambda api: _sync_watches(api, connection, now))
            db.session.commit()
