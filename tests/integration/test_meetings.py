"""Video meetings for confirmed bookings, against a real (local, fake) Zoom HTTP server: OAuth token
and its cache, meeting creation and deletion, retries, alerts, the worker's second chance, and the
Jitsi default."""
from __future__ import annotations

import base64
import json
import logging
import threading
from datetime import timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, Notification, TrainerProfile, User
from fittribe.services import booking as booking_service
from fittribe.services import meetings


class FakeZoom(ThreadingHTTPServer):
    """Zoom's token endpoint and meeting API, recording every request it gets.

    `create_failures` are statuses answered (in order) to meeting creations before one succeeds;
    `down` answers 500 to every creation."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ZoomHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[dict] = []
        self.tokens: set[str] = set()
        self.meetings: dict[str, dict] = {}
        self.create_failures: list[int] = []
        self.down = False
        self.lock = threading.Lock()

    def of(self, method: str, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and r["path"] == path]


class ZoomHandler(BaseHTTPRequestHandler):
    server: FakeZoom

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _answer(self, status: int, body: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> dict:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        request = {"method": self.command, "path": parts.path, "query": parse_qs(parts.query),
                   "headers": dict(self.headers), "json": json.loads(raw) if raw else None}
        with self.server.lock:
            self.server.requests.append(request)
        return request

    def _authorized(self, request: dict) -> bool:
        return request["headers"].get("Authorization", "").removeprefix("Bearer ") in self.server.tokens

    def do_POST(self) -> None:
        request = self._record()
        zoom = self.server
        if request["path"] == "/oauth/token":
            with zoom.lock:
                token = f"token-{len(zoom.of('POST', '/oauth/token'))}"
                zoom.tokens.add(token)
            return self._answer(200, {"access_token": token, "token_type": "bearer", "expires_in": 3599})
        if request["path"] == "/v2/users/me/meetings":
            if not self._authorized(request):
                return self._answer(401, {"code": 124, "message": "Invalid access token."})
            with zoom.lock:
                failure = 500 if zoom.down else (zoom.create_failures.pop(0) if zoom.create_failures else None)
                if failure is None:
                    meeting_id = 85_000_000_000 + len(zoom.meetings) + 1
                    zoom.meetings[str(meeting_id)] = request["json"]
            if failure:
                return self._answer(failure, {"code": failure, "message": "Try again later."})
            return self._answer(201, {"id": meeting_id, "join_url": f"https://zoom.example/j/{meeting_id}",
                                      **request["json"]})
        self._answer(404, {"code": 404, "message": "No such endpoint."})

    def do_DELETE(self) -> None:
        request = self._record()
        if not self._authorized(request):
            return self._answer(401, {"code": 124, "message": "Invalid access token."})
        meeting_id = request["path"].removeprefix("/v2/meetings/")
        with self.server.lock:
            existed = self.server.meetings.pop(meeting_id, None) is not None
        if existed:
            return self._answer(204)
        self._answer(404, {"code": 3001, "message": "Meeting does not exist."})


@pytest.fixture
def zoom(app, monkeypatch):
    server = FakeZoom()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # A new port per test: the token cache (keyed by OAuth URL and account) starts empty for each.
    for name, value in {"ZOOM_ACCOUNT_ID": "acct-1", "ZOOM_CLIENT_ID": "client-1", "ZOOM_CLIENT_SECRET": "s3cret",
                        "ZOOM_API_BASE": f"{server.url}/v2", "ZOOM_OAUTH_URL": f"{server.url}/oauth/token",
                        "ZOOM_RETRIES": 2, "ZOOM_RETRY_BACKOFF": 0.0}.items():
        monkeypatch.setitem(app.config, name, value)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_zoom(app, monkeypatch):
    for name in ("ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET"):
        monkeypatch.setitem(app.config, name, None)


def confirmed(app, count: int = 1) -> list[int]:
    """Confirmed bookings (held the normal way, then marked paid) of the demo member with Maya."""
    with app.app_context():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
        member = db.session.scalar(select(User).where(User.email == "member@fittribe.example"))
        ids = []
        for _ in range(count):
            slot = booking_service.slots_for(trainer, 60, days=7)[0]
            booking = booking_service.hold(member, trainer, slot.starts_at, 60)
            booking.status = BookingStatus.CONFIRMED
            db.session.commit()
            ids.append(booking.id)
        return ids


def notifications(kind: str) -> list[Notification]:
    return db.session.scalars(select(Notification).where(Notification.kind == kind).order_by(Notification.id)).all()


def user_id(email: str) -> int:
    return db.session.scalar(select(User.id).where(User.email == email))


def test_zoom_meeting_is_created_with_a_cached_token(app, demo, zoom):
    first, second = confirmed(app, 2)
    with app.app_context():
        for booking_id in (first, second):
            booking = db.session.get(Booking, booking_id)
            assert meetings.attach(booking) is True
        db.session.commit()

        token_requests = zoom.of("POST", "/oauth/token")
        assert len(token_requests) == 1  # the second meeting reused the cached token
        token_request = token_requests[0]
        assert token_request["query"] == {"grant_type": ["account_credentials"], "account_id": ["acct-1"]}
        assert token_request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"client-1:s3cret").decode()

        creations = zoom.of("POST", "/v2/users/me/meetings")
        assert [r["headers"]["Authorization"] for r in creations] == ["Bearer token-1"] * 2
        booking = db.session.get(Booking, first)
        body = creations[0]["json"]
        assert body["start_time"] == booking.starts_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert body["duration"] == 60 and body["type"] == 2
        assert body["timezone"] == booking.trainer.time_zone == "America/Los_Angeles"
        assert body["settings"] == {"join_before_host": False, "waiting_room": True}
        assert booking.meeting_ref in zoom.meetings
        assert booking.meeting_url == f"https://zoom.example/j/{booking.meeting_ref}"
        assert booking.meeting_attempts == 0
        assert db.session.get(Booking, second).meeting_ref != booking.meeting_ref


def test_a_revoked_token_is_renewed_once(app, demo, zoom):
    first, second = confirmed(app, 2)
    with app.app_context():
        assert meetings.attach(db.session.get(Booking, first))
        zoom.tokens.clear()  # Zoom forgot the cached token before it expired
        assert meetings.attach(db.session.get(Booking, second))
        assert len(zoom.of("POST", "/oauth/token")) == 2
        assert [r["headers"]["Authorization"] for r in zoom.of("POST", "/v2/users/me/meetings")] == \
            ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


def test_detach_deletes_the_zoom_meeting_and_a_404_counts_as_deleted(app, demo, zoom):
    [booking_id] = confirmed(app)
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        meetings.attach(booking)
        meetings.detach(booking)
        assert zoom.meetings == {}
        assert len(zoom.of("DELETE", f"/v2/meetings/{booking.meeting_ref}")) == 1
        meetings.detach(booking)  # already gone: 404, no error
        assert len(zoom.of("DELETE", f"/v2/meetings/{booking.meeting_ref}")) == 2


def test_detach_never_raises_when_zoom_fails(app, demo, zoom, monkeypatch, caplog):
    [booking_id] = confirmed(app)
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        meetings.attach(booking)
        monkeypatch.setitem(app.config, "ZOOM_OAUTH_URL", "http://127.0.0.1:9/oauth/token")  # nothing listens
        with caplog.at_level(logging.ERROR):
            meetings.detach(booking)
        assert "Could not delete Zoom meeting" in caplog.text


def test_a_server_error_is_retried(app, demo, zoom):
    [booking_id] = confirmed(app)
    zoom.create_failures = [500]
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        assert meetings.attach(booking) is True
        assert len(zoom.of("POST", "/v2/users/me/meetings")) == 2
        assert booking.meeting_ref in zoom.meetings and booking.meeting_attempts == 0


def test_zoom_down_keeps_the_booking_alerts_admins_and_the_worker_catches_up(app, demo, zoom):
    [booking_id] = confirmed(app)
    zoom.down = True
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        assert meetings.attach(booking) is False
        db.session.commit()
        assert len(zoom.of("POST", "/v2/users/me/meetings")) == 3  # first try and two retries
        booking = db.session.get(Booking, booking_id)
        assert booking.status is BookingStatus.CONFIRMED and booking.meeting_url is None
        assert booking.meeting_attempts == 1
        [alert] = notifications("alert")
        assert alert.user_id == user_id("admin@fittribe.example") and alert.link == f"/bookings/{booking_id}"
        assert f"#{booking_id}" in alert.message

        assert meetings.retry_missing() == 0  # still down: counted, but admins are not told again
        assert db.session.get(Booking, booking_id).meeting_attempts == 2 and len(notifications("alert")) == 1

        zoom.down = False
        from fittribe.worker import JOBS

        [job] = [job for job in JOBS if job.name == "retry_meetings"]
        job.run()  # what the worker runs every 30 s: meetings.retry_missing()
        booking = db.session.get(Booking, booking_id)
        assert booking.meeting_ref in zoom.meetings and booking.meeting_url.startswith("https://zoom.example/j/")
        told = notifications("meeting")
        assert sorted(n.user_id for n in told) == sorted(
            [user_id("member@fittribe.example"), user_id("trainer@fittribe.example")])
        assert all("video link is ready" in n.message and n.link == f"/bookings/{booking_id}" for n in told)
        assert meetings.retry_missing() == 0  # nothing left to do


def test_the_worker_gives_up_after_the_cap(app, demo, zoom):
    [booking_id] = confirmed(app)
    zoom.down = True
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        booking.meeting_attempts = meetings.MAX_ATTEMPTS - 1
        db.session.commit()
        assert meetings.retry_missing() == 0
        assert db.session.get(Booking, booking_id).meeting_attempts == meetings.MAX_ATTEMPTS
        assert "Gave up" in notifications("alert")[0].message
        calls = len(zoom.requests)
        assert meetings.retry_missing() == 0 and len(zoom.requests) == calls  # not tried again


def test_unreachable_zoom_never_raises(app, demo, zoom, monkeypatch):
    [booking_id] = confirmed(app)
    monkeypatch.setitem(app.config, "ZOOM_OAUTH_URL", "http://127.0.0.1:9/oauth/token")  # nothing listens
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        assert meetings.attach(booking) is False and booking.meeting_attempts == 1


def test_jitsi_rooms_when_zoom_is_not_configured(app, demo, no_zoom):
    first, second = confirmed(app, 2)
    with app.app_context():
        rooms = []
        for booking_id in (first, second):
            booking = db.session.get(Booking, booking_id)
            assert meetings.attach(booking) is True
            assert booking.meeting_ref is None
            rooms.append(booking.meeting_url)
        prefix = app.config["JITSI_BASE_URL"].rstrip("/") + "/FitTribe-"
        assert all(room.startswith(prefix) and len(room) - len(prefix) >= 24 for room in rooms)
        assert rooms[0] != rooms[1]
        meetings.detach(booking)  # nothing to delete, nothing raised


def test_a_paid_session_gets_a_zoom_meeting_and_cancelling_deletes_it(app, demo, zoom):
    """The whole path: the payment confirms → Zoom meeting; the trainer cancels → Zoom DELETE."""
    from fittribe.services import booking_changes
    from tests.helpers import demo_paid_session

    booking_id = demo_paid_session(app, days_ahead=3)
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        assert booking.meeting_url.startswith("https://zoom.example/j/") and booking.meeting_ref in zoom.meetings
        booking_changes.cancel(booking, booking.trainer.user, "Injured")
        assert len(zoom.of("DELETE", f"/v2/meetings/{booking.meeting_ref}")) == 1 and zoom.meetings == {}
