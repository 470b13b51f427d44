"""Findings of the outside review (issue #13), one test per defect: links from SITE_URL and trusted
hosts only, booking under concurrency (deadlocks, buffers), per-member limits, late payment events,
aggregated admin alerts, reset mail timing, body limit, secrets out of logs, caching headers and
the meeting-link rule."""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
import requests
from sqlalchemy import func, select, text, update

from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, Notification, Payment, Role, TrainerProfile, User
from tests.helpers import Browser, demo_hold, demo_paid_session, text_of

MEMBER = "member@fittribe.example"


def _admin_alerts(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Notification.message).join(User, User.id == Notification.user_id)
                                       .where(User.role == Role.ADMIN, Notification.kind == "alert")))


# --- 1. links from SITE_URL, unknown hosts refused ------------------------------------------

def test_a_forged_host_header_is_refused_and_reset_links_use_the_site_url(app, demo):
    from fittribe.services import accounts

    client = app.test_client()
    page = client.get("/password/forgot")
    forged = client.post("/password/forgot", data={"email": MEMBER}, headers={"Host": "evil.example"})
    assert forged.status_code == 400 and "evil.example" not in forged.get_data(as_text=True)
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
    # A trusted alias (localhost) still works, and the mailed link is SITE_URL's all the same.
    assert page.status_code == 200
    Browser(client).post_form("/password/forgot", {"email": MEMBER})
    with app.app_context():
        assert accounts.send_queued_reset_mails() == 1
    mail = sorted(Path(app.config["MAIL_OUTBOX_DIR"]).glob("*.eml"))[-1].read_text()
    assert app.config["SITE_URL"] + "/password/reset/" in mail and "localhost" not in mail


def test_trusted_hosts_default_to_the_site_url_host_in_production(monkeypatch):
    import importlib

    import config

    monkeypatch.setenv("SITE_URL", "https://fittribe.example")
    monkeypatch.delenv("TRUSTED_HOSTS", raising=False)
    reloaded = importlib.reload(config)
    try:
        assert reloaded.ProductionConfig.TRUSTED_HOSTS == ["fittribe.example"]
        assert reloaded.DevelopmentConfig.TRUSTED_HOSTS == ["fittribe.example", "localhost", "127.0.0.1"]
        monkeypatch.setenv("TRUSTED_HOSTS", "fittribe.example, .fittribe.example")
        assert importlib.reload(config).ProductionConfig.TRUSTED_HOSTS == ["fittribe.example", ".fittribe.example"]
    finally:
        monkeypatch.undo()
        importlib.reload(config)


def _second_member(app) -> str:
    with app.app_context():
        user = User(email="second@example.com", name="Second Member", role=Role.MEMBER)
        user.set_password("fittribe-demo")
        db.session.add(user)
        db.session.commit()
    return "second@example.com"


# --- 4/5. booking under concurrency ---------------------------------------------------------------

def _members(app, count: int) -> list[int]:
    with app.app_context():
        users = [User(email=f"racer{n}@example.com", name=f"Racer {n}", role=Role.MEMBER, password_hash="!")
                 for n in range(count)]
        db.session.add_all(users)
        db.session.commit()
        return [user.id for user in users]


BUFFER_VIOLATIONS = """
SELECT count(*) FROM bookings a JOIN bookings b ON a.trainer_id = b.trainer_id AND a.id <> b.id
  JOIN trainer_profiles t ON t.id = a.trainer_id
 WHERE a.status IN ('held', 'confirmed') AND b.status IN ('held', 'confirmed') AND a.starts_at <= b.starts_at
   AND b.starts_at < a.ends_at + make_interval(mins => greatest(t.buffer_after_minutes, t.buffer_before_minutes))
"""


def test_concurrent_holds_keep_the_buffers_and_never_crash(app, demo):
    """Neighbouring 60-minute starts on a 30-minute grid with a 15-minute after-buffer, held at once
    by 12 members: whatever wins, no two active sessions sit closer than the buffer, and every
    loser hears "just taken" (no deadlock, no other error)."""
    from fittribe.services import booking

    member_ids = _members(app, 12)  # under the pool's 15 connections: each thread holds one
    with app.app_context():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
        trainer_id, after = trainer.id, trainer.buffer_after_minutes
        assert after >= 15
        day = datetime.now(timezone.utc) + timedelta(days=3)
        starts = [s.starts_at for s in booking.slots_for(trainer, 60) if s.starts_at >= day][:6]
    assert len(starts) == 6
    barrier = threading.Barrier(len(member_ids), timeout=30)
    outcomes: list[str] = []

    def attempt(member_id: int, starts_at: datetime) -> None:
        with app.app_context():
            member, trainer = db.session.get(User, member_id), db.session.get(TrainerProfile, trainer_id)
            barrier.wait()
            try:
                booking.hold(member, trainer, starts_at, 60)
                outcomes.append("held")
            except booking.SlotTaken:
                outcomes.append("taken")
            except Exception as error:  # noqa: BLE001 - a crash is what this test looks for
                outcomes.append(f"error: {type(error).__name__}: {error}")

    threads = [threading.Thread(target=attempt, args=(member_id, starts[n % len(starts)]))
               for n, member_id in enumerate(member_ids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [o for o in outcomes if o.startswith("error")] == [] and len(outcomes) == len(member_ids)
    with app.app_context():
        assert db.session.scalar(text(BUFFER_VIOLATIONS)) == 0
        assert db.session.scalar(select(func.count(Booking.id)).where(Booking.status == BookingStatus.HELD)) \
            == outcomes.count("held") > 0


def test_a_deadlock_during_a_hold_is_just_taken_not_a_500(app, database_url, demo):
    """Another transaction holding a booking of the trainer and then asking for the trainer's row
    (the opposite order) deadlocks with the hold; PostgreSQL aborts the hold, which the member
    hears as "just taken"."""
    stale = demo_hold(app, days_ahead=5)
    with app.app_context():
        db.session.execute(update(Booking).where(Booking.id == stale)
                           .values(hold_expires_at=datetime.now(timezone.utc) - timedelta(minutes=1)))
        db.session.commit()
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
        from fittribe.services import booking

        start = next(s.starts_at for s in booking.slots_for(trainer, 60)
                     if s.starts_at > datetime.now(timezone.utc) + timedelta(days=1))
        trainer_id = trainer.id
    other = psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"))
    other.execute("SET deadlock_timeout = '30s'")  # the hold's own check (1 s) finds the deadlock
    other.execute("SELECT 1 FROM bookings WHERE id = %s FOR UPDATE", (stale,))

    def then_the_trainer() -> None:
        time.sleep(0.5)  # the hold has locked the trainer and waits for the stale booking
        other.execute("SELECT 1 FROM trainer_profiles WHERE id = %s FOR NO KEY UPDATE", (trainer_id,))
        other.commit()

    browser = Browser(app.test_client())
    browser.login(_second_member(app))  # the stale hold is the demo member's
    thread = threading.Thread(target=then_the_trainer)
    thread.start()
    response = browser.post_form("/trainers/maya-chen", {"starts_at": start.isoformat(), "length": "60"},
                                 post_url="/trainers/maya-chen/hold")
    thread.join(30)
    other.close()
    assert response.status_code == 303 and response.headers["Location"].startswith("/trainers/maya-chen?day=")
    assert response.headers["Location"].endswith("&length=60#calendar")  # back to that day's other times
    assert "just taken" in text_of(browser.get("/trainers/maya-chen"))


# --- 6. per-member booking limit ------------------------------------------------------------------------

def test_members_behind_one_address_do_not_share_the_booking_limit(app, demo):
    app.config["RATELIMIT_BOOKING"] = "3 per minute"
    try:
        first, second = Browser(app.test_client()), Browser(app.test_client())
        first.login(MEMBER)
        second.login(_second_member(app))
        token = first.get("/trainers/maya-chen").get_data(as_text=True)
        statuses = [first.post_form("/trainers/maya-chen", {"starts_at": "nope"}, post_url="/trainers/maya-chen/hold")
                    .status_code for _ in range(4)]
        assert statuses == [400, 400, 400, 429]
        assert second.post_form("/trainers/maya-chen", {"starts_at": "nope"},
                                post_url="/trainers/maya-chen/hold").status_code == 400
        assert token
    finally:
        app.config["RATELIMIT_BOOKING"] = "20 per minute"


# --- 7. late payment events ------------------------------------------------------------------------------

def test_a_late_payment_failed_does_not_contradict_a_confirmed_booking(app, client, demo):
    from fittribe.services import payments

    booking_id = demo_paid_session(app, days_ahead=2)
    with app.app_context():
        paid = db.session.scalar(select(Payment).where(Payment.booking_id == booking_id))
        ref, rows_before = paid.provider_ref, db.session.scalar(select(func.count(Payment.id)))
    alerts_before = len(_admin_alerts(app))
    body = json.dumps({"id": "evt_late_failure", "type": "payment_intent.payment_failed", "data": {
        "booking_id": booking_id, "amount": 6500, "currency": "USD", "payment_ref": ref}}).encode()
    with app.app_context():
        header = payments.sign(body)
    response = client.post("/webhooks/simulated", data=body, headers={"Simulated-Signature": header})
    assert response.status_code == 200 and response.get_json()["outcome"] == "ignored"
    with app.app_context():
        assert db.session.scalar(select(func.count(Payment.id))) == rows_before
        assert db.session.get(Booking, booking_id).status is BookingStatus.CONFIRMED
    assert len(_admin_alerts(app)) == alerts_before


# --- 8. alerts cannot be flooded ----------------------------------------------------------------------------

def test_forged_webhooks_make_one_alert_per_window_with_a_count(app, client, demo):
    from fittribe.models import Event

    with app.app_context():
        events_before = db.session.scalar(select(func.count(Event.id)))
        admins = db.session.scalar(select(func.count(User.id)).where(User.role == Role.ADMIN))
    for _ in range(50):
        assert client.post("/webhooks/simulated", data=b"{}", headers={"Simulated-Signature": "t=1,v1=x"}) \
            .status_code == 400
    alerts = _admin_alerts(app)
    assert len(alerts) == admins  # one alert, to each admin
    with app.app_context():
        assert db.session.scalar(select(func.count(Event.id))) - events_before == admins  # their one push each
    # The next window's first alert says how many were held back.
    from fittribe.realtime.connection import redis_client
    from fittribe.services.notify import ALERT_GATE

    with app.app_context():
        redis_client().delete(ALERT_GATE + "webhook-signature-simulated")
    client.post("/webhooks/simulated", data=b"{}", headers={"Simulated-Signature": "t=1,v1=x"})
    assert any("49 more alerts like this" in message for message in _admin_alerts(app))


# --- 9. reset mail timing ---------------------------------------------------------------------------------

def test_forgot_password_sends_nothing_in_the_request_for_any_address(app, visitor, demo):
    from fittribe.realtime.connection import redis_client
    from fittribe.services.accounts import RESET_QUEUE

    outbox = Path(app.config["MAIL_OUTBOX_DIR"])
    before = len(list(outbox.glob("*.eml")))
    for email in (MEMBER, "nobody@example.com"):
        assert visitor.post_form("/password/forgot", {"email": email}).status_code == 303
    assert len(list(outbox.glob("*.eml"))) == before  # neither answer waited for a mail
    with app.app_context():
        assert redis_client().llen(RESET_QUEUE) == 2  # both queued alike


# --- 10. body limit ------------------------------------------------------------------------------------------

def test_a_huge_body_is_a_readable_413(client):
    response = client.post("/login", data={"email": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413 and "too much to send" in text_of(response)
    response = client.post("/webhooks/simulated", data=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert response.status_code == 413


# --- 11. secrets out of every log -----------------------------------------------------------------------------

def test_gunicorn_access_log_redacts_secrets():
    from gunicorn.config import Config

    from fittribe.ops import access_log

    logger = access_log.RedactingLogger(Config())
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/calendar/s3cret.ics?x=1", "PATH_INFO": "/calendar/s3cret.ics",
               "QUERY_STRING": "next=/s3cret", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_REFERER": "https://fittribe.example/password/reset/s3cret", "HTTP_COOKIE": "session=s3cret"}
    response = SimpleNamespace(status="200 OK", headers=[], sent=10)
    request = SimpleNamespace(headers=[("COOKIE", "session=s3cret"), ("AUTHORIZATION", "Bearer s3cret")])
    saved = access_log.secret_prefixes
    for prefixes in (None, ("/calendar/", "/password/reset/")):
        access_log.secret_prefixes = prefixes
        try:
            atoms = logger.atoms(response, request, environ, timedelta(seconds=0.01))
        finally:
            access_log.secret_prefixes = saved
        assert "s3cret" not in repr(atoms)
        assert atoms["r"] == "GET /calendar/[redacted] HTTP/1.1" and atoms["f"] == "https://fittribe.example"


def test_the_file_mailer_logs_no_mail_body(app, caplog):
    from fittribe.services.mailer import send_mail

    with app.app_context(), caplog.at_level(logging.INFO):
        send_mail("someone@example.com", "Reset", "http://127.0.0.1:5000/password/reset/s3cret")
    assert "s3cret" not in caplog.text and "someone@example.com" in caplog.text


# --- 12. caching and disclosure headers -------------------------------------------------------------------------

def test_private_pages_and_the_ics_are_not_stored(app, demo):
    booking_id = demo_paid_session(app, days_ahead=2)
    browser = Browser(app.test_client())
    assert "no-store" not in browser.get("/trainers").headers.get("Cache-Control", "")  # public: cacheable
    browser.login(MEMBER)
    for path in ("/dashboard/", f"/bookings/{booking_id}", f"/bookings/{booking_id}/calendar.ics", "/notifications/",
                 "/account/calendar", "/trainers"):
        response = browser.get(path)
        assert response.status_code == 200 and response.headers["Cache-Control"] == "private, no-store", path


def test_static_files_are_nosniff_and_the_server_is_not_named(live_server):
    css = requests.get(live_server + "/static/css/app.css", timeout=10)
    assert css.status_code == 200 and css.headers["X-Content-Type-Options"] == "nosniff"
    page = requests.get(live_server + "/", timeout=10)
    assert "gunicorn" not in page.headers.get("Server", "").lower()


# --- 13. one rule for the meeting link ----------------------------------------------------------------------------

def test_admins_never_get_the_meeting_link(app, demo):
    booking_id = demo_paid_session(app, days_ahead=2)
    with app.app_context():
        meeting_url = db.session.get(Booking, booking_id).meeting_url
    admin = Browser(app.test_client())
    admin.login("admin@fittribe.example")
    assert meeting_url not in admin.get(f"/bookings/{booking_id}").get_data(as_text=True)
    ics = admin.get(f"/bookings/{booking_id}/calendar.ics")
    assert ics.status_code == 200 and meeting_url not in ics.get_data(as_text=True)
    assert admin.post_form(f"/bookings/{booking_id}", {}, post_url=f"/bookings/{booking_id}/join").status_code == 403
    member = Browser(app.test_client())
    member.login(MEMBER)
    assert meeting_url in member.get(f"/bookings/{booking_id}/calendar.ics").get_data(as_text=True).replace("\r\n ", "")
