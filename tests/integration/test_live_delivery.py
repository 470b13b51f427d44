"""The live promise on the real gunicorn: every page gets every event of its channels exactly once
and in publication order, across reconnects and concurrent writers; a page resumes from the
position it was rendered at; dropped streams free their slot at once; a revoked user's streams
end; pushed fragments are rendered per viewer variant and carry nothing private."""
from __future__ import annotations

import random
import re
import socket
import threading
import time
from zoneinfo import ZoneInfo

import redis as redis_lib
import requests
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import Booking, Event, TrainerProfile, User
from fittribe.realtime import live, outbox
from fittribe.realtime.connection import redis_key
from fittribe.services import user_admin
from fittribe.services.notify import notify
from tests.helpers import SSEClient, csrf_token_from, demo_hold, live_login


def _user(app, email: str) -> int:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.email == email))


def _render_position(html: str) -> int:
    return int(re.search(r'hx-sse:connect="[^"]*last_event_id=(\d+)', html).group(1))


def _stream_url(html: str) -> str:
    return re.search(r'hx-sse:connect="([^"]+)"', html).group(1).replace("&amp;", "&")


def test_concurrent_writers_reach_a_reconnecting_page_exactly_once_in_order(app, live_server, demo):
    """Writers whose transactions take their outbox row early and commit late (in another order)
    while the page reconnects every ~0.2 s with Last-Event-ID: nothing lost, nothing twice."""
    member = _user(app, "member@fittribe.example")
    session = requests.Session()
    live_login(session, live_server, "member@fittribe.example")
    start = _render_position(session.get(live_server + "/notifications/").text)
    stop = threading.Event()
    received: list[int] = []
    errors: list[BaseException] = []

    def page() -> None:
        last = str(start)
        while not stop.is_set():
            stream = SSEClient(session, live_server + "/stream", headers={"Last-Event-ID": last})
            try:
                until = time.monotonic() + random.uniform(0.05, 0.3)
                while time.monotonic() < until:
                    try:
                        item = stream.next(timeout=max(0.01, until - time.monotonic()))
                    except AssertionError:
                        break  # nothing more in this connection's time
                    if item is None:
                        break
                    if item.get("id"):
                        received.append(int(item["id"]))
                        last = item["id"]
            finally:
                stream.close()

    def writer(n: int) -> None:
        try:
            with app.app_context():
                notify(member, "test", f"message {n}")  # the row (and its id) is written here…
                time.sleep(random.uniform(0, 0.15))  # …and committed later, after others
                db.session.commit()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    reader = threading.Thread(target=page)
    reader.start()
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(60)]
    for thread in writers:
        thread.start()
        time.sleep(random.uniform(0, 0.02))
    for thread in writers:
        thread.join()
    with app.app_context():
        expected = list(db.session.scalars(select(Event.position).where(
            Event.channel == f"user:{member}", Event.position > start).order_by(Event.position)))
    deadline = time.monotonic() + 10
    while set(received) != set(expected) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    reader.join(timeout=10)
    assert errors == []
    assert len(expected) == 60
    assert sorted(set(expected) - set(received)) == []  # none lost
    assert len(received) == len(set(received))  # none twice
    assert received == sorted(received)  # in publication order


def _notify_now(app, user_id: int, message: str) -> None:
    with app.app_context():
        notify(user_id, "test", message)
        db.session.commit()


def _first_event_data(session, url: str) -> str:
    stream = SSEClient(session, url)
    try:
        return stream.next()["data"]
    finally:
        stream.close()


def test_a_page_resumes_from_the_position_it_was_rendered_at(app, live_server, demo):
    member = _user(app, "member@fittribe.example")
    session = requests.Session()
    live_login(session, live_server, "member@fittribe.example")
    url = live_server + _stream_url(session.get(live_server + "/dashboard/").text)
    _notify_now(app, member, "between render and connect")  # before the stream's first connect
    assert "between render and connect" in _first_event_data(session, url)

    # A stream reset before it received anything reconnects with the same URL: it still resumes.
    fresh_url = live_server + _stream_url(session.get(live_server + "/dashboard/").text)
    stream = SSEClient(session, fresh_url)
    stream.next(comments=True)
    stream.close()
    _notify_now(app, member, "while the first connection was down")
    assert "while the first connection was down" in _first_event_data(session, fresh_url)


def test_a_dropped_stream_frees_its_slot_at_once(app, live_server, demo):
    """The hub watches each socket it holds: a page that closes its connection is gone within
    milliseconds, not at the next heartbeat, so its member is not locked out by stale leases."""
    session = requests.Session()
    live_login(session, live_server, "member@fittribe.example")
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    port = int(live_server.rsplit(":", 1)[1])
    with app.app_context():
        key = redis_key("streams", f"user:{_user(app, 'member@fittribe.example')}")
    leases = redis_lib.Redis.from_url(app.config["REDIS_URL"])
    socks = []
    for _ in range(12):  # the cap
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n".encode())
        received = b""
        while b": connected" not in received:
            received += sock.recv(4096)
        socks.append(sock)
    assert leases.zcard(key) == 12
    time.sleep(0.1)  # every stream handed to the hub
    for sock in socks:
        sock.close()  # twelve pages gone without a goodbye
    deadline = time.monotonic() + 0.8  # well under one heartbeat (1 s in tests)
    while leases.zcard(key):
        assert time.monotonic() < deadline, f"{leases.zcard(key)} stale leases left"
        time.sleep(0.02)
    stream = session.get(live_server + "/stream", stream=True, timeout=5)
    assert stream.status_code == 200
    stream.close()


def test_suspending_or_logging_out_ends_the_users_open_streams(app, live_server, demo):
    member = _user(app, "member@fittribe.example")
    session = requests.Session()
    live_login(session, live_server, "member@fittribe.example")
    stream = SSEClient(session, live_server + "/stream")
    stream.next(comments=True)
    session.post(live_server + "/logout", data={"csrf_token": csrf_token_from(session.get(live_server + "/").text)})
    assert _ends(stream)

    session = requests.Session()
    live_login(session, live_server, "member@fittribe.example")
    stream = SSEClient(session, live_server + "/stream")
    stream.next(comments=True)
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.email == "admin@fittribe.example"))
        user_admin.suspend(db.session.get(User, member), admin, "testing")
        notify(member, "test", "private: after the suspension")
        db.session.commit()
    assert _ends(stream, never_seeing="after the suspension")


def _ends(stream: SSEClient, never_seeing: str = "\0", within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        item = stream.next(timeout=within, comments=True)
        if item is None:
            return True
        assert never_seeing not in item.get("data", "")
    return False


def test_a_push_is_rendered_per_viewer_and_carries_nothing_private(app, live_server, demo):
    """A hold on Maya: a member in Tokyo and a visitor each get the days of the calendar it touched
    pushed (no page comes back for it; not the whole two weeks), on their own clock, without any
    CSRF token, email or meeting link."""
    with app.app_context():
        maya = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
        maya_zone = maya.time_zone
        db.session.get(User, _user(app, "member@fittribe.example")).time_zone = "Asia/Tokyo"
        db.session.commit()
    member = requests.Session()
    live_login(member, live_server, "member@fittribe.example")
    visitor = requests.Session()
    streams = {who: SSEClient(s, live_server + _stream_url(s.get(f"{live_server}/trainers/maya-chen").text))
               for who, s in (("member", member), ("visitor", visitor))}
    try:
        for stream in streams.values():
            stream.next(comments=True)
        held = demo_hold(app)
        pushes = {who: stream.events_until(lambda e: 'id="times-' in e.get("data", ""))[-1]
                  for who, stream in streams.items()}
    finally:
        for stream in streams.values():
            stream.close()
    for who, push in pushes.items():
        html = push["data"]
        assert "event" not in push and 'hx-swap-oob="outerHTML"' in html
        assert re.findall(r'name="csrf_token" value="([^"]*)"', html) in ([], [""] * html.count('name="csrf_token"'))
        assert "@" not in html and "meet.jit.si" not in html and "zoom" not in html.lower()
        assert 'id="availability"' not in html and html.count('hx-swap-oob="outerHTML"') <= 3 * 2 * 2  # days, lengths, kinds
    with app.app_context():
        start = db.session.get(Booking, held).starts_at
    on_clock = {"member": start.astimezone(ZoneInfo("Asia/Tokyo")), "visitor": start.astimezone(ZoneInfo(maya_zone))}
    for who, local in on_clock.items():
        assert f'id="times-60-{local.date()}"' in pushes[who]["data"]  # the held time's day, on their clock
        assert local.isoformat() not in pushes[who]["data"]  # the held time is gone
        assert re.search(r'<time datetime="[^"]*' + re.escape(local.isoformat()[-6:]) + '"', pushes[who]["data"])
    assert 'class="slot-button"' in pushes["member"]["data"] and "slot-button" not in pushes["visitor"]["data"]


def test_every_live_fragment_has_a_sender_a_listening_template_and_an_endpoint(app):
    """The live contract: each declared fragment is announced by some service, marked in some
    template with the live() macro, and has a route that renders it alone."""
    from pathlib import Path

    from tests.helpers import ROOT

    python = "\n".join(p.read_text() for p in Path(ROOT, "fittribe").rglob("*.py"))
    templates = "\n".join(p.read_text() for p in Path(ROOT, "templates").rglob("*.html"))
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    constants = {value.name: name for name, value in vars(live).items() if isinstance(value, live.LiveFragment)}
    for name, fragment in live.FRAGMENTS.items():
        same_event = [constants[other.name] for other in live.FRAGMENTS.values() if other.event_name == fragment.event_name]
        assert any(re.search(rf"announce\(\w+\.{constant}\b", python) for constant in same_event), \
            f"nothing announces {name}"
        assert f"live('{name}'" in templates, f"no template marks {name}"
        assert fragment.endpoint in endpoints, f"{name}: no route {fragment.endpoint}"
        assert Path(ROOT, "templates", fragment.partial).exists()
        if fragment.delivery == live.PUSH:
            assert fragment.context and fragment.load_context  # the hub can render it
    with app.app_context():
        assert outbox.latest_position() >= 0


def test_a_replay_renders_a_fragment_once_and_still_names_every_position(app, live_server, demo):
    """Two changes of Maya's calendar while a page was away: the replay sends the first as its id
    alone (the page keeps it for its next Last-Event-ID) and the latest calendar once, in order."""
    with app.app_context():
        maya = db.session.scalar(select(TrainerProfile.id).where(TrainerProfile.slug == "maya-chen"))
        start = outbox.latest_position()
        positions = []
        for _ in range(2):
            live.announce(live.CALENDAR, maya)
            db.session.commit()
            positions.append(outbox.latest_position())
    stream = SSEClient(requests.Session(), f"{live_server}/stream?trainer={maya}&last_event_id={start}")
    try:
        first, second = stream.next(), stream.next()
    finally:
        stream.close()
    assert first == {"id": str(positions[0]), "data": ""}
    assert second["id"] == str(positions[1]) and 'id="availability"' in second["data"]
