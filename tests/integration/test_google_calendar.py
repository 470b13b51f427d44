"""Google Calendar both ways, with Authlib + requests against a local fake Google (tests/fake_google.py):
connect (PKCE, offline access, encrypted tokens), busy times in (free/busy, push notifications,
the worker), bookings out (insert, patch, delete, idempotent, retried), and every failure the
issue names: revoked grant, 401 then refresh, 429/5xx, a forged notification, busy time over a hold."""
from __future__ import annotations

import json
import time
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from fittribe.extensions import db
from fittribe.models import (Booking, BookingStatus, CalendarBusy, ConnectionStatus, Event, GoogleConnection,
                             GoogleEventSync, GoogleWatchChannel, Notification, TrainerProfile, User)
from fittribe.services import booking as booking_service
from fittribe.services import booking_changes, google_calendar
from fittribe.worker import JOBS
from tests.fake_google import FakeGoogle
from tests.helpers import Browser, demo_hold, demo_paid_session, text_of

TRAINER = "trainer@fittribe.example"
MEMBER = "member@fittribe.example"
ACCOUNT = "coach@gmail.test"


@pytest.fixture
def google(app, monkeypatch):
    fake = FakeGoogle()
    for name, value in fake.app_config(GOOGLE_WEBHOOK_URL="https://fittribe.test/webhooks/google/calendar").items():
        monkeypatch.setitem(app.config, name, value)
    yield fake
    fake.close()


def connect(visitor, google: FakeGoogle, email: str = TRAINER, account: str = ACCOUNT, decision: str = "allow"):
    """Log in, follow Connect to the fake consent screen, answer it, and come back to the callback."""
    visitor.login(email)
    start = visitor.get("/account/google/connect")
    assert start.status_code == 303
    consent = requests.get(start.headers["Location"], timeout=5)
    assert consent.status_code == 200 and "wants to access your Google Account" in consent.text
    params = {**dict(parse_qsl(urlsplit(start.headers["Location"]).query)), "account": account, "decision": decision}
    answer = requests.get(google.url + "/o/oauth2/v2/auth/decide", params=params, allow_redirects=False, timeout=5)
    back = urlsplit(answer.headers["Location"])
    return visitor.get(f"{back.path}?{back.query}")


def events_of(google: FakeGoogle, calendar_id: str, booking_id: int) -> list[dict]:
    """The calendar's events for one booking (connecting also adds the seeded demo session)."""
    return [e for e in google.events_in(calendar_id)
            if e.get("extendedProperties", {}).get("private", {}).get("fittribeBookingId") == str(booking_id)]


def deliver(client, google: FakeGoogle) -> list[int]:
    return google.deliver(lambda headers: client.post("/webhooks/google/calendar", headers=headers).status_code)


def trainer(slug: str = "maya-chen") -> TrainerProfile:
    return db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == slug))


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def connection(email: str = TRAINER) -> GoogleConnection:
    db.session.expire_all()
    return google_calendar.connection_of(user(email).id)


def run_job(app, name: str) -> None:
    with app.app_context():
        next(job for job in JOBS if job.name == name).run()


def notifications(email: str, kind: str) -> list[str]:
    return list(db.session.scalars(select(Notification.message).where(
        Notification.user_id == user(email).id, Notification.kind == kind)))


def first_free(app):
    with app.app_context():
        return booking_service.slots_for(trainer(), 60)[0]


# --- connect --------------------------------------------------------------------------------

def test_connect_with_pkce_and_offline_access_stores_the_token_encrypted(app, demo, visitor, google):
    response = connect(visitor, google)
    assert response.status_code == 303 and response.headers["Location"].endswith("/account/google")
    [authorize] = [r for r in google.calls("GET", "/o/oauth2/v2/auth") if r["path"] == "/o/oauth2/v2/auth"]
    assert authorize["query"]["code_challenge_method"] == "S256" and authorize["query"]["access_type"] == "offline"
    assert "calendar.events" in authorize["query"]["scope"]
    [exchange] = google.calls("POST", "/token")
    assert exchange["body"]["grant_type"] == "authorization_code" and exchange["body"]["code_verifier"]
    with app.app_context():
        stored = connection()
        refresh_token = next(iter(google.grants))
        assert refresh_token not in stored.token_encrypted and "access_token" not in stored.token_encrypted
        token = json.loads(Fernet(app.config["GOOGLE_TOKEN_KEYS"]).decrypt(stored.token_encrypted.encode()))
        assert token["refresh_token"] == refresh_token and token["expires_at"] > time.time()
        assert stored.account == ACCOUNT and stored.busy_calendar_ids == [ACCOUNT]
        assert stored.target_calendar_id == ACCOUNT and stored.busy_synced_at is not None
        [channel] = stored.channels
        assert channel.calendar_id == ACCOUNT and google.channels[channel.channel_id]["address"].endswith(
            "/webhooks/google/calendar")
    page = text_of(visitor.get("/account/google"))
    assert f"Connected: {ACCOUNT}" in page and "Calendars that make you busy" in page


@pytest.mark.parametrize("method, url, anonymous, logged_in", [
    ("GET", "/account/google", 302, 200),
    ("POST", "/account/google", 302, 303),  # not connected: back to the page
    ("GET", "/account/google/connect", 302, 303),  # to Google's consent screen
    ("GET", "/account/google/callback?state=x&code=y", 302, 400),  # no flow started in this session
    ("POST", "/account/google/disconnect", 302, 303),
    ("POST", "/webhooks/google/calendar", 403, 403),  # no channel: refused for everyone
])
def test_who_may_use_each_google_route(app, demo, google, method, url, anonymous, logged_in):
    for email, want in ((None, anonymous), (MEMBER, logged_in), (TRAINER, logged_in), ("admin@fittribe.example", logged_in)):
        browser = Browser(app.test_client())
        if email:
            browser.login(email)
        page = "/notifications/" if email else "/login"  # where the CSRF token is read from
        response = browser.get(url) if method == "GET" else browser.post_form(page, {}, post_url=url)
        assert response.status_code == want, (email, url, response.status_code)
        if want == 302:
            assert "/login?next=" in response.headers["Location"]


def test_the_feature_is_hidden_when_google_is_not_configured(app, demo, visitor):
    visitor.login(TRAINER)
    assert visitor.get("/account/google").status_code == 404
    assert visitor.get("/account/google/connect").status_code == 404
    assert visitor.client.post("/webhooks/google/calendar").status_code == 404
    dashboard = text_of(visitor.get("/dashboard/"))
    assert "Google Calendar connected" not in dashboard and "Connect Google Calendar" not in dashboard
    # The feed and the "add" links stay for everyone.
    assert "Add the sessions you teach to Google or Apple Calendar" in dashboard
    assert visitor.get("/account/calendar").status_code == 200


def test_declined_consent_or_a_forged_callback_stores_nothing(app, demo, visitor, google):
    response = connect(visitor, google, decision="deny")
    assert response.status_code == 303
    assert "access was not allowed" in text_of(visitor.get("/account/google"))
    visitor.get("/account/google/connect")
    assert visitor.get("/account/google/callback?code=stolen&state=not-ours").status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(GoogleConnection.id))) == 0


def test_a_partial_grant_is_refused_with_a_clear_message(app, demo, visitor, google):
    google.granted_scopes = "https://www.googleapis.com/auth/calendar.readonly"
    connect(visitor, google)
    assert "Please allow FitTribe both to see your calendars and to add events" in text_of(visitor.get("/account/google"))
    with app.app_context():
        assert connection() is None


def test_calendar_choices_are_checked_and_a_new_busy_calendar_is_watched(app, demo, visitor, google):
    connect(visitor, google)
    bad = visitor.post_form("/account/google", {"busy": ["someone-else@gmail.test"], "target": ACCOUNT})
    assert bad.status_code == 422 and "Choose calendars from the list" in text_of(bad)
    read_only = visitor.post_form("/account/google", {"busy": [ACCOUNT], "target": f"holidays.{ACCOUNT}"})
    assert read_only.status_code == 422
    ok = visitor.post_form("/account/google", {"busy": [f"work.{ACCOUNT}"], "target": ACCOUNT})
    assert ok.status_code == 303
    with app.app_context():
        stored = connection()
        assert stored.busy_calendar_ids == [f"work.{ACCOUNT}"]
        assert [c.calendar_id for c in stored.channels] == [f"work.{ACCOUNT}"]
    assert len(google.channels) == 1  # the primary calendar's channel was stopped


# --- busy time in -----------------------------------------------------------------------------

def test_a_busy_event_blocks_its_time_and_the_buffer_after_it_live(app, demo, visitor, google):
    connect(visitor, google)
    slot = first_free(app)
    with app.app_context():
        gap = timedelta(minutes=trainer().buffer_after_minutes)
        assert gap > timedelta(0)
        before = {s.starts_at for s in booking_service.slots_for(trainer(), 60)}
    assert slot.ends_at in before  # the next hour is free now
    google.add_event(ACCOUNT, slot.starts_at, slot.ends_at)
    assert set(deliver(visitor.client, google)) == {204}
    with app.app_context():
        after = {s.starts_at for s in booking_service.slots_for(trainer(), 60)}
        assert slot.starts_at not in after
        assert slot.ends_at not in after  # within the trainer's buffer after the busy time
        assert [(b.starts_at, b.ends_at) for b in db.session.scalars(select(CalendarBusy))] == [
            (slot.starts_at, slot.ends_at)]
        # Open profiles get the new calendar pushed (the live layer's event, same transaction).
        assert any(payload.get("fragment") == "availability" for payload in db.session.scalars(
            select(Event.payload).where(Event.channel == f"trainer:{trainer().id}")))
        assert trainer().next_available_at != slot.starts_at


def test_a_notification_with_a_wrong_channel_token_is_refused(app, demo, visitor, google):
    connect(visitor, google)
    [channel_id] = google.channels
    google.add_event(ACCOUNT, *(lambda s: (s.starts_at, s.ends_at))(first_free(app)))
    google.notifications.clear()
    reads = len(google.calls("POST", "/freeBusy"))
    forged = {"X-Goog-Channel-ID": channel_id, "X-Goog-Channel-Token": "guessed", "X-Goog-Resource-State": "exists"}
    assert visitor.client.post("/webhooks/google/calendar", headers=forged).status_code == 403
    unknown = {**forged, "X-Goog-Channel-ID": "not-a-channel"}
    assert visitor.client.post("/webhooks/google/calendar", headers=unknown).status_code == 403
    assert len(google.calls("POST", "/freeBusy")) == reads
    with app.app_context():
        assert db.session.scalar(select(func.count(CalendarBusy.id))) == 0


def test_busy_time_over_a_hold_keeps_the_hold_and_tells_the_trainer_once(app, demo, visitor, google):
    connect(visitor, google)
    held = demo_hold(app)
    with app.app_context():
        booking = db.session.get(Booking, held)
        google.add_event(ACCOUNT, booking.starts_at + timedelta(minutes=15), booking.ends_at + timedelta(minutes=15))
    deliver(visitor.client, google)
    with app.app_context():
        assert db.session.get(Booking, held).status is BookingStatus.HELD
        [message] = notifications(TRAINER, "calendar-conflict")
        assert "held time with Sam Member" in message and "It stays booked" in message
        assert google_calendar.refresh_busy(trainer().id)  # read again: the same conflict is not told twice
        assert len(notifications(TRAINER, "calendar-conflict")) == 1
    # The hold is honoured: the member can still pay for it.
    from fittribe.services import payments

    with app.app_context():
        assert payments.simulated_charge(db.session.get(Booking, held), "4242424242424242")["outcome"] == "confirmed"


def test_the_worker_reads_busy_times_on_a_schedule(app, demo, visitor, google):
    connect(visitor, google)
    slot = first_free(app)
    google.add_event(ACCOUNT, slot.starts_at, slot.ends_at)
    google.notifications.clear()  # the notification is lost
    run_job(app, "maintain_google_calendars")
    with app.app_context():
        assert db.session.scalar(select(func.count(CalendarBusy.id))) == 0  # read moments ago: not yet stale
        connection().busy_synced_at -= timedelta(minutes=app.config["GOOGLE_BUSY_REFRESH_MINUTES"] + 1)
        db.session.commit()
    run_job(app, "maintain_google_calendars")
    with app.app_context():
        assert db.session.scalar(select(func.count(CalendarBusy.id))) == 1


def test_push_channels_are_renewed_before_they_expire(app, demo, visitor, google):
    connect(visitor, google)
    [old_id] = google.channels
    with app.app_context():
        channel = db.session.scalar(select(GoogleWatchChannel))
        channel.expires_at = soon = google_calendar.datetime.now(google_calendar.timezone.utc) + timedelta(hours=1)
        db.session.commit()
    run_job(app, "maintain_google_calendars")
    with app.app_context():
        [renewed] = db.session.scalars(select(GoogleWatchChannel)).all()
        assert renewed.channel_id != old_id and renewed.expires_at > soon + timedelta(days=5)
    assert list(google.channels) == [renewed.channel_id] and google.calls("POST", "/channels/stop")


# --- token failures -------------------------------------------------------------------------

def test_the_access_token_is_refreshed_before_it_expires(app, demo, visitor, google):
    connect(visitor, google)
    with app.app_context():
        stored = connection()
        token = google_calendar._unseal(stored.token_encrypted)
        stored.token_encrypted = google_calendar._seal({**token, "expires_at": int(time.time()) + 30})
        db.session.commit()
        google.requests.clear()
        assert google_calendar.refresh_busy(trainer().id)
        assert google_calendar._unseal(connection().token_encrypted)["access_token"] != token["access_token"]
    assert [(r["method"], r["path"]) for r in google.requests] == [("POST", "/token"), ("POST", "/calendar/v3/freeBusy")]


def test_a_401_refreshes_the_token_and_retries_once(app, demo, visitor, google):
    connect(visitor, google)
    google.expire_access_tokens()  # still valid by its expiry, refused by Google
    google.requests.clear()
    with app.app_context():
        assert google_calendar.refresh_busy(trainer().id)
    assert [(r["method"], r["path"]) for r in google.requests] == [
        ("POST", "/calendar/v3/freeBusy"), ("POST", "/token"), ("POST", "/calendar/v3/freeBusy")]


def test_rate_limits_and_server_errors_are_retried(app, demo, visitor, google):
    connect(visitor, google)
    google.failures = [429, 503]
    google.requests.clear()
    with app.app_context():
        assert google_calendar.refresh_busy(trainer().id)
    assert len(google.calls("POST", "/freeBusy")) == 3
    google.failures = [500] * 3  # more than GOOGLE_RETRIES: given up, the stored times stay, nothing raises
    with app.app_context():
        assert not google_calendar.refresh_busy(trainer().id)
        assert connection().status is ConnectionStatus.ACTIVE


def test_a_revoked_grant_asks_to_reconnect_alerts_admins_once_and_loses_nothing(app, demo, visitor, google):
    connect(visitor, google)
    google.revoke_account(ACCOUNT)
    google.expire_access_tokens()
    booking_id = demo_paid_session(app)  # confirmed while access is gone: never fails, waits
    with app.app_context():
        assert db.session.get(Booking, booking_id).status is BookingStatus.CONFIRMED
        assert connection().status is ConnectionStatus.REVOKED
        [told] = notifications(TRAINER, "calendar")
        assert "reconnect" in told
        assert len(notifications("admin@fittribe.example", "alert")) == 1
        connection().busy_synced_at = None
        db.session.commit()
    run_job(app, "maintain_google_calendars")
    run_job(app, "push_google_events")
    with app.app_context():
        assert len(notifications("admin@fittribe.example", "alert")) == 1
        assert db.session.scalar(select(GoogleEventSync.pending).where(GoogleEventSync.booking_id == booking_id))
    dashboard = visitor.get("/dashboard/")
    assert dashboard.status_code == 200 and "Reconnect Google Calendar" in text_of(dashboard)
    assert "Reconnect needed" in text_of(visitor.get("/account/google"))
    # Reconnecting sends the session that waited.
    visitor.logout()
    connect(visitor, google)
    assert len(events_of(google, ACCOUNT, booking_id)) == 1


def test_disconnect_revokes_the_grant_and_forgets_busy_times(app, demo, visitor, google):
    connect(visitor, google)
    slot = first_free(app)
    google.add_event(ACCOUNT, slot.starts_at, slot.ends_at)
    deliver(visitor.client, google)
    response = visitor.post_form("/account/google", {}, post_url="/account/google/disconnect")
    assert response.status_code == 303
    assert all(grant["revoked"] for grant in google.grants.values()) and not google.channels
    with app.app_context():
        assert connection() is None and db.session.scalar(select(func.count(CalendarBusy.id))) == 0
        assert booking_service.slots_for(trainer(), 60)[0] == slot
    assert "Connect Google Calendar" in text_of(visitor.get("/account/google"))


# --- bookings out ---------------------------------------------------------------------------

def test_a_booking_is_added_moved_and_deleted_in_the_trainers_calendar(app, demo, visitor, google):
    connect(visitor, google)
    booking_id = demo_paid_session(app, days_ahead=3)
    [event] = events_of(google, ACCOUNT, booking_id)
    assert event["extendedProperties"]["private"] == {"fittribeBookingId": str(booking_id)}
    assert event["summary"] == "FitTribe session with Sam Member"
    assert f"/bookings/{booking_id}" in event["description"] and "meet.jit.si" in event["location"]
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        assert event["start"]["dateTime"] == google_calendar._iso(booking.starts_at)
        # Our own event is busy in the calendar, yet it is neither stored as busy nor a conflict.
        assert google_calendar.refresh_busy(trainer().id)
        assert db.session.scalar(select(func.count(CalendarBusy.id))) == 0
        assert notifications(TRAINER, "calendar-conflict") == []
        new_start = next(s.starts_at for s in booking_changes.reschedule_options(booking) if s.starts_at != booking.starts_at)
        booking_changes.reschedule(booking, user(TRAINER), new_start, "Clash")
    [moved] = events_of(google, ACCOUNT, booking_id)
    assert moved["id"] == event["id"] and moved["start"]["dateTime"] == google_calendar._iso(new_start)
    assert len(google.calls("PATCH", "/events/")) == 1
    with app.app_context():
        booking_changes.cancel(db.session.get(Booking, booking_id), user(TRAINER), "Ill")
    assert events_of(google, ACCOUNT, booking_id) == [] and len(google.calls("DELETE", "/events/")) == 1


def test_a_connected_members_calendar_gets_the_session_too(app, demo, visitor, google):
    connect(visitor, google, email=MEMBER, account="sam@gmail.test")
    page = text_of(visitor.get("/account/google"))
    assert "Calendars that make you busy" not in page  # busy times only matter for trainers
    booking_id = demo_paid_session(app, days_ahead=2)
    [event] = events_of(google, "sam@gmail.test", booking_id)
    assert event["summary"] == "FitTribe session with Maya Chen"
    assert google.events_in(ACCOUNT) == []  # the trainer has not connected


def test_google_down_never_blocks_a_booking_and_the_worker_sends_it_once(app, demo, visitor, google):
    connect(visitor, google)
    google.failures = [503] * 10
    booking_id = demo_paid_session(app, days_ahead=2)
    with app.app_context():
        assert db.session.get(Booking, booking_id).status is BookingStatus.CONFIRMED
    assert events_of(google, ACCOUNT, booking_id) == []
    google.failures = []
    inserts = len(google.calls("POST", "/calendars/coach%40gmail.test/events"))
    run_job(app, "push_google_events")
    run_job(app, "push_google_events")
    assert len(events_of(google, ACCOUNT, booking_id)) == 1
    assert len(google.calls("POST", "/calendars/coach%40gmail.test/events")) == inserts + 1


def test_a_retry_after_a_lost_answer_finds_the_event_instead_of_adding_another(app, demo, visitor, google):
    connect(visitor, google)
    booking_id = demo_paid_session(app, days_ahead=2)
    with app.app_context():
        sync = db.session.scalar(select(GoogleEventSync).where(GoogleEventSync.booking_id == booking_id))
        sync.event_id = sync.calendar_id = None  # as if Google made it but its answer never came
        sync.pending = True
        db.session.commit()
        inserts = len(google.calls("POST", "/calendars/coach%40gmail.test/events"))
        assert google_calendar.push_pending(booking_id) == 1
    assert len(events_of(google, ACCOUNT, booking_id)) == 1
    assert len(google.calls("POST", "/calendars/coach%40gmail.test/events")) == inserts
