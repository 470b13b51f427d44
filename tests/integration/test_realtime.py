"""The real-time layer against a real gunicorn + gevent server, PostgreSQL and Redis:
authorized channels, outbox replay, relay, notifications and stream hygiene."""
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis as redis_lib
import requests
from sqlalchemy import func, insert, select, update

from fittribe.extensions import db
from fittribe.models import Event, EventCursor, Notification, TrainerProfile, User
from fittribe.realtime import outbox
from fittribe.realtime.channels import PUBLIC
from fittribe.realtime.connection import redis_key
from fittribe.services.notify import notify
from tests.helpers import ROOT, SSEClient, live_login


def user_id(app, email: str) -> int:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.email == email))


def trainer_id(app, slug: str) -> int:
    with app.app_context():
        return db.session.scalar(select(TrainerProfile.id).where(TrainerProfile.slug == slug))


def send_notification(app, to_user: int, message: str) -> int:
    with app.app_context():
        notify(to_user, "test", message, "/notifications/")
        db.session.commit()  # published at once: the position is its SSE id
        return db.session.scalar(select(Event.position).order_by(Event.id.desc()).limit(1))


def assert_next_is_live(app, stream, member: int) -> None:
    """A notification sent now is the next event the stream gets: nothing replayed before it."""
    live = send_notification(app, member, "live")
    assert [e["id"] for e in stream.events_until(lambda e: e.get("id") == str(live))] == [str(live)]


def public_event(app, text: str) -> int:
    with app.app_context():
        event = outbox.record(PUBLIC, type="ping", data=text)
        db.session.commit()
        return event.position


@pytest.fixture
def member_session(live_server, demo):
    session = requests.Session()
    live_login(session, live_server, "member@fittribe.example")
    return session


def test_stream_headers_and_initial_comment(live_server, demo):
    stream = SSEClient(requests.Session(), live_server + "/stream")
    try:
        assert stream.response.status_code == 200
        headers = stream.response.headers
        assert headers["Content-Type"].startswith("text/event-stream")
        assert headers["Cache-Control"] == "no-cache" and headers["X-Accel-Buffering"] == "no"
        assert "Content-Encoding" not in headers  # never compressed
        assert stream.next(timeout=2, comments=True) == {"comment": "connected"}
        assert stream.next(timeout=3, comments=True) == {"comment": "heartbeat"}  # 1 s heartbeat in tests
    finally:
        stream.close()


def test_member_only_gets_their_own_user_channel(app, live_server, member_session):
    member, trainer = user_id(app, "member@fittribe.example"), user_id(app, "trainer@fittribe.example")
    stream = SSEClient(member_session, live_server + "/stream")
    try:
        stream.next(comments=True)
        send_notification(app, trainer, "for the trainer only")
        mine = send_notification(app, member, "for the member")
        events = stream.events_until(lambda e: e.get("id") == str(mine))
        text = " ".join(e["data"] for e in events)
        assert "for the member" in text and "for the trainer only" not in text
    finally:
        stream.close()


@pytest.mark.parametrize("query", ["channel=user:999", "channel=admin", "channel=public&channel=user:999",
                                   "channel=trainer:1"])
def test_asking_for_a_channel_you_may_not_read_is_403(live_server, member_session, query):
    response = member_session.get(f"{live_server}/stream?{query}", stream=True, timeout=5)
    assert response.status_code == 403
    response.close()


def test_anonymous_stream_gets_public_and_viewed_trainer_only(app, live_server, demo):
    maya = trainer_id(app, "maya-chen")
    assert requests.get(f"{live_server}/stream?channel=user:1", timeout=5).status_code == 403
    stream = SSEClient(requests.Session(), f"{live_server}/stream?trainer={maya}&channel=public&channel=trainer:{maya}")
    try:
        assert stream.response.status_code == 200
        stream.next(comments=True)
        send_notification(app, user_id(app, "member@fittribe.example"), "private")
        ping = public_event(app, "hello everyone")
        events = stream.events_until(lambda e: e.get("id") == str(ping))
        assert [e["data"] for e in events] == ["hello everyone"]
        assert events[0]["event"] == "ping"  # a named event: a DOM event for htmx, not a swap
    finally:
        stream.close()


def test_unlisted_trainer_channel_is_not_readable(app, live_server, demo):
    pending = trainer_id(app, "jordan-pending")
    assert requests.get(f"{live_server}/stream?trainer={pending}", timeout=5).status_code == 404
    assert requests.get(f"{live_server}/stream?trainer=abc", timeout=5).status_code == 400


def test_admin_may_read_the_admin_channel(live_server, demo):
    session = requests.Session()
    live_login(session, live_server, "admin@fittribe.example")
    response = session.get(f"{live_server}/stream?channel=admin", stream=True, timeout=5)
    assert response.status_code == 200
    response.close()


def test_replay_after_reconnect_then_live(app, live_server, member_session):
    member = user_id(app, "member@fittribe.example")
    stream = SSEClient(member_session, live_server + "/stream")
    stream.next(comments=True)
    first = send_notification(app, member, "event 1")
    assert stream.events_until(lambda e: e.get("id") == str(first))[-1]["id"] == str(first)
    stream.close()

    missed = [send_notification(app, member, f"event {n}") for n in range(2, 6)]
    again = SSEClient(member_session, live_server + "/stream", headers={"Last-Event-ID": str(first)})
    try:
        replayed = [again.next() for _ in missed]
        assert [int(e["id"]) for e in replayed] == missed
        assert [f"event {n}" in e["data"] for n, e in zip(range(2, 6), replayed)] == [True] * 4
        live = send_notification(app, member, "event 6")
        after = again.events_until(lambda e: e.get("id") == str(live))
        assert [int(e["id"]) for e in after] == [live]  # no duplicates of the replayed ones
    finally:
        again.close()


def insert_published(app, rows: list[dict]) -> None:
    """Outbox rows as if published long ago: positions after the cursor, cursor moved on."""
    with app.app_context():
        base = outbox.latest_position()
        db.session.execute(insert(Event), [dict(row, position=base + n, published_at=datetime.now(timezone.utc))
                                           for n, row in enumerate(rows, start=1)])
        db.session.execute(update(EventCursor).values(last_position=base + len(rows)))
        db.session.commit()


def test_a_page_too_far_behind_resyncs_instead_of_a_partial_replay(app, live_server, member_session):
    member = user_id(app, "member@fittribe.example")
    first = send_notification(app, member, "seen")
    limit = app.config["SSE_REPLAY_LIMIT"]
    # More than the replay limit happened on the member's channel since.
    insert_published(app, [dict(channel=f"user:{member}", type="ping", payload={"data": str(n)})
                           for n in range(limit + 1)])
    with app.app_context():
        newest = outbox.latest_position()
    stream = SSEClient(member_session, live_server + "/stream", headers={"Last-Event-ID": str(first)})
    try:
        notice = stream.next()
        assert notice["event"] == "live:resync"  # every live element of the page re-fetches itself
        assert notice["id"] == str(newest)  # the page carries on from here
        assert_next_is_live(app, stream, member)  # nothing replayed
    finally:
        stream.close()


def test_a_page_whose_last_event_was_pruned_resyncs(app, live_server, member_session):
    member = user_id(app, "member@fittribe.example")
    first = send_notification(app, member, "seen two days ago")
    later = send_notification(app, member, "missed")
    with app.app_context():
        db.session.execute(update(Event).where(Event.position == first).values(
            created_at=datetime.now(timezone.utc) - timedelta(hours=48)))
        db.session.commit()
        assert outbox.prune() == 1
    stream = SSEClient(member_session, live_server + "/stream", headers={"Last-Event-ID": str(first)})
    try:
        notice = stream.next()
        assert notice["event"] == "live:resync" and notice["id"] == str(later)
    finally:
        stream.close()
    # A page that saw the newest event is not bothered.
    stream = SSEClient(member_session, live_server + "/stream", headers={"Last-Event-ID": str(later)})
    try:
        assert_next_is_live(app, stream, member)
    finally:
        stream.close()


def test_replay_accepts_a_query_parameter_and_rejects_garbage(app, live_server, member_session):
    member = user_id(app, "member@fittribe.example")
    first = send_notification(app, member, "one")
    second = send_notification(app, member, "two")
    stream = SSEClient(member_session, f"{live_server}/stream?last_event_id={first}")
    try:
        assert stream.next()["id"] == str(second)
    finally:
        stream.close()
    bad = member_session.get(f"{live_server}/stream", headers={"Last-Event-ID": "1; DROP"}, timeout=5)
    assert bad.status_code == 400


def test_relay_publishes_what_a_crash_left_unpublished(app, live_server, demo):
    stream = SSEClient(requests.Session(), live_server + "/stream")
    try:
        stream.next(comments=True)
        with app.app_context():
            # Committed but never published: as if the process died between commit and publish.
            event_id = db.session.execute(insert(Event).values(
                channel=PUBLIC, type="ping", payload={"data": "survived a crash"},
                created_at=datetime.now(timezone.utc) - timedelta(seconds=10)).returning(Event.id)).scalar_one()
            db.session.commit()
            assert outbox.relay_unpublished() == 1
            relayed = db.session.get(Event, event_id)
            position = relayed.position
            assert relayed.published_at is not None and position == outbox.latest_position()
            assert outbox.relay_unpublished() == 0  # never twice
        event = stream.events_until(lambda e: e.get("id") == str(position))[-1]
        assert event["data"] == "survived a crash"
    finally:
        stream.close()


DIES_BETWEEN_COMMIT_AND_PUBLISH = """
import os, signal, sys
from fittribe import create_app
from fittribe.extensions import db
from fittribe.realtime import outbox
from fittribe.services.notify import notify

def killed(rows):  # called after the commit (and the numbering), before anything reaches Redis
    os.kill(os.getpid(), signal.SIGKILL)

outbox.publish = killed
with create_app().app_context():
    notify(int(sys.argv[1]), "test", "Sent by a process that died before publishing", "/notifications/")
    db.session.commit()
"""


def _published(app, event_id: int) -> bool:
    with app.app_context():
        return db.session.get(Event, event_id).published_at is not None


def test_a_publisher_killed_between_commit_and_publish_is_delivered_by_the_worker(app, live_server, member_session,
                                                                                  tmp_path):
    member = user_id(app, "member@fittribe.example")
    env = {**os.environ, "FITTRIBE_ENV": "development", "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "REDIS_URL": app.config["REDIS_URL"], "SSE_CHANNEL_PREFIX": app.config["SSE_CHANNEL_PREFIX"],
           "INSTANCE_PATH": str(tmp_path), "OUTBOX_RELAY_AFTER": "1"}
    stream = SSEClient(member_session, live_server + "/stream")
    worker = None
    try:
        stream.next(comments=True)
        publisher = subprocess.run([sys.executable, "-c", DIES_BETWEEN_COMMIT_AND_PUBLISH, str(member)],
                                   cwd=ROOT, env=env, timeout=60)
        assert publisher.returncode == -signal.SIGKILL
        with app.app_context():
            orphan = db.session.scalars(select(Event).order_by(Event.id.desc())).first()
            assert orphan.channel == f"user:{member}" and orphan.published_at is None  # committed, not published
            orphan_id, orphan_position = orphan.id, orphan.position

        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delivered = stream.events_until(lambda e: e.get("id") == str(orphan_position), timeout=30)[-1]
        assert "Sent by a process that died before publishing" in delivered["data"]
        deadline = time.monotonic() + 10  # the relay marks it published just after publishing
        while not _published(app, orphan_id):
            assert time.monotonic() < deadline, "the relay never marked the event published"
            time.sleep(0.1)
    finally:
        stream.close()
        if worker is not None:
            worker.terminate()
            assert worker.wait(timeout=15) == 0  # the worker stops cleanly on SIGTERM


def test_prune_removes_old_published_events_only(app):
    with app.app_context():
        old = datetime.now(timezone.utc) - timedelta(hours=48)
        db.session.execute(insert(Event), [
            dict(channel=PUBLIC, payload={"data": "old"}, created_at=old, published_at=old),
            dict(channel=PUBLIC, payload={"data": "old, never published"}, created_at=old),
            dict(channel=PUBLIC, payload={"data": "new"}, published_at=datetime.now(timezone.utc)),
        ])
        db.session.commit()
        assert outbox.prune() == 1
        assert sorted(db.session.scalars(select(Event.payload["data"].as_string()))) == ["new", "old, never published"]


def test_vanished_client_is_cleaned_up_within_a_heartbeat(app, live_server, demo):
    client = redis_lib.Redis.from_url(app.config["REDIS_URL"])
    with app.app_context():
        key = redis_key("streams", "ip:127.0.0.1")
    sock = socket.create_connection(("127.0.0.1", int(live_server.rsplit(":", 1)[1])))
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    received = b""
    while b": connected" not in received:
        received += sock.recv(4096)
    assert client.zcard(key) == 1
    sock.close()  # the page vanished without a goodbye
    deadline = time.monotonic() + 2.5  # heartbeat is 1 s in tests
    while client.zcard(key) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.zcard(key) == 0


def test_stream_connections_are_capped_per_client(app, live_server, demo):
    app_cap = 12
    session = requests.Session()
    streams = [session.get(live_server + "/stream", stream=True, timeout=5) for _ in range(app_cap)]
    try:
        assert [s.status_code for s in streams] == [200] * app_cap
        refused = requests.get(live_server + "/stream", timeout=5)
        assert refused.status_code == 429 and "live pages open" in refused.text
    finally:
        for s in streams:
            s.close()


def test_redis_connections_do_not_grow_with_streams(app, live_server, demo):
    client = redis_lib.Redis.from_url(app.config["REDIS_URL"])
    db_number = client.connection_pool.connection_kwargs["db"]

    def connections() -> int:
        return sum(1 for c in client.client_list() if int(c.get("db", -1)) == db_number or
                   c.get("cmd", "").startswith("psubscribe"))

    warm = SSEClient(requests.Session(), live_server + "/stream")
    warm.next(comments=True)
    before = connections()
    streams = [SSEClient(requests.Session(), live_server + "/stream") for _ in range(10)]
    try:
        for stream in streams:
            stream.next(comments=True)
        assert connections() <= before + 1
    finally:
        for stream in streams + [warm]:
            stream.close()


def test_notification_is_stored_and_pushed_with_unread_count(app, live_server, member_session):
    member = user_id(app, "member@fittribe.example")
    stream = SSEClient(member_session, live_server + "/stream")
    try:
        stream.next(comments=True)
        event_id = send_notification(app, member, "Your session is confirmed <b>now</b>")
        event = stream.events_until(lambda e: e.get("id") == str(event_id))[-1]
        assert "event" not in event  # unnamed: htmx swaps its out-of-band fragments
        assert 'hx-swap-oob="innerHTML:#notification-toast"' in event["data"]
        assert 'hx-swap-oob="afterbegin:#notification-list"' in event["data"]
        assert 'id="unread-count"' in event["data"] and ">1<" in event["data"]
        assert "&lt;b&gt;now&lt;/b&gt;" in event["data"]  # escaped
    finally:
        stream.close()
    page = member_session.get(live_server + "/notifications/").text
    assert "Your session is confirmed" in page
    with app.app_context():
        assert db.session.scalar(select(Notification.read_at).where(Notification.user_id == member)) is None


def test_mark_all_read(app, live_server, member_session):
    from tests.helpers import csrf_token_from

    member = user_id(app, "member@fittribe.example")
    send_notification(app, member, "one")
    send_notification(app, member, "two")
    page = member_session.get(live_server + "/notifications/").text
    assert 'id="unread-count" class="count"' in page
    response = member_session.post(live_server + "/notifications/read", data={"csrf_token": csrf_token_from(page)})
    assert "Marked 2 notifications as read" in response.text
    assert "count-zero" in response.text
    assert requests.get(live_server + "/notifications/", allow_redirects=False, timeout=5).status_code == 302


def test_stream_connects_are_rate_limited(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_STREAM", "2 per minute")
    opened = [client.get("/stream", buffered=False) for _ in range(2)]
    try:
        assert [r.status_code for r in opened] == [200, 200]
        refused = client.get("/stream")
        assert refused.status_code == 429 and "Too many live connections" in refused.get_data(as_text=True)
    finally:
        for response in opened:
            response.close()


def test_publishing_after_commit_never_waits_for_the_sessions_own_pool(app, database_url, redis_url, demo):
    """Marking events published needs a connection; it runs once the session has given its own
    back, so even a pool of one never waits (a regression: it used to time out here)."""
    import threading

    from fittribe import create_app

    # Same Redis and channel prefix as the suite's app: creating an app points the process's SSE hub at them.
    tiny = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url, REDIS_URL=redis_url,
                      SSE_CHANNEL_PREFIX=app.config["SSE_CHANNEL_PREFIX"],
                      SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0, "pool_timeout": 2})
    errors: list[Exception] = []

    def notify_once():
        with tiny.app_context():
            try:
                member = db.session.scalar(select(User).where(User.email == "member@fittribe.example"))
                notify(member.id, "test", "hello")
                db.session.commit()
            except Exception as error:  # noqa: BLE001 - the test reports whatever went wrong
                errors.append(error)

    threads = [threading.Thread(target=notify_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with tiny.app_context():
        assert db.session.scalar(select(func.count(Event.id)).where(Event.published_at.is_(None))) == 0
        db.engine.dispose()
