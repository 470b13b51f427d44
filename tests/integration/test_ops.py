"""Operations: /healthz, request ids and JSON request logs, Prometheus metrics (in-process, and
added up across two real gunicorn workers), and error-spike alerts to admins."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import Notification, Role, User
from fittribe.ops import alerts
from fittribe.realtime.hub import sse
from fittribe.services import payments
from fittribe.services.notify import notify
from tests.conftest import ROOT, RUN_ID, SSE_PREFIX, _free_port
from tests.helpers import Browser, SSEClient

REQUESTS = "fittribe_http_request_duration_seconds"


# --- helpers --------------------------------------------------------------------------------

def metric(text: str, sample_name: str, **labels: str) -> float:
    """The sum of the samples called `sample_name` whose labels include `labels`."""
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == sample_name and labels.items() <= sample.labels.items())


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return response.get_data(as_text=True)


def json_lines(err: str) -> list[dict]:
    lines = []
    for line in err.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def request_lines(err: str) -> list[dict]:
    return [line for line in json_lines(err) if line.get("logger") == "fittribe.request"]


def signed_webhook(app, client, body: dict):
    raw = json.dumps(body).encode()
    with app.app_context():
        header = payments.sign(raw)
    return client.post("/webhooks/simulated", data=raw, headers={"Simulated-Signature": header})


@pytest.fixture
def make_app(app, database_url):
    """A second app on the same database, with settings of its own (an unreachable Redis...)."""
    from fittribe import create_app

    made = []

    def make(**overrides):
        settings = {"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": app.config["REDIS_URL"],
                    "RATELIMIT_STORAGE_URI": "memory://",
                    "SSE_CHANNEL_PREFIX": app.config["SSE_CHANNEL_PREFIX"], **overrides}
        made.append(create_app("testing", **settings))
        return made[-1]

    yield make
    for other in made:
        with other.app_context():
            db.engine.dispose()
    # create_app points the process-wide SSE hub at its own Redis: point it back at the suite's.
    sse.configure(app.config["REDIS_URL"], app.config["SSE_CHANNEL_PREFIX"], app.config["SSE_HEARTBEAT_SECONDS"],
                  app.config["REDIS_POOL_SIZE"])


# --- /healthz -------------------------------------------------------------------------------

def test_healthz_ok_without_cookie_or_limit(client):
    responses = [client.get("/healthz") for _ in range(30)]  # probes every few seconds: never limited
    assert {r.status_code for r in responses} == {200}
    response = responses[-1]
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    assert client.head("/healthz").status_code == 200


def test_healthz_is_503_and_says_which_failed(make_app):
    closed = _free_port()
    no_redis = make_app(REDIS_URL=f"redis://127.0.0.1:{closed}/0").test_client().get("/healthz")
    assert no_redis.status_code == 503
    assert no_redis.get_json() == {"status": "error", "database": "ok", "redis": "error"}
    assert "Set-Cookie" not in no_redis.headers

    no_database = make_app(SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://postgres@127.0.0.1:{closed}/test")
    response = no_database.test_client().get("/healthz")
    assert response.status_code == 503 and response.get_json()["database"] == "error"
    assert response.get_json()["redis"] == "ok"


def test_healthz_does_not_wait_for_a_database_that_never_answers(make_app):
    # A server that accepts TCP connections and never says a word: the connect would hang.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        port = silent.getsockname()[1]
        hung = make_app(SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://postgres@127.0.0.1:{port}/test",
                        HEALTHCHECK_TIMEOUT=0.5)
        started = time.monotonic()
        response = hung.test_client().get("/healthz")
        assert time.monotonic() - started < 2
        assert response.status_code == 503 and response.get_json()["database"] == "timeout"
    finally:
        silent.close()  # resets the hung connection, which ends the check's thread


def test_healthz_without_redis_configured_is_ok(make_app):
    response = make_app(REDIS_URL=None).test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "not configured"}


def test_probes_answer_whatever_host_a_load_balancer_sends(make_app):
    # Production trusts only the site's name; Docker's HEALTHCHECK, a load balancer or Prometheus
    # address the node itself (Host: 127.0.0.1:8000, 10.0.3.7:8000, web1:8000).
    client = make_app(TRUSTED_HOSTS=["fittribe.example"]).test_client()
    for host in ("127.0.0.1:8000", "10.0.3.7:8000", "web1:8000"):
        assert client.get("/healthz", headers={"Host": host}).get_json()["status"] == "ok", host
        assert client.get("/metrics", headers={"Host": host}).status_code == 200, host
    # Every other page still refuses a Host that is not the site's.
    assert client.get("/", headers={"Host": "10.0.3.7:8000"}).status_code == 400
    assert client.get("/healthz/", headers={"Host": "10.0.3.7:8000"}).status_code == 400
    assert client.get("/", headers={"Host": "fittribe.example"}).status_code == 200


# --- request ids and logs -------------------------------------------------------------------

def test_request_id_is_echoed_generated_or_replaced(client):
    assert client.get("/healthz", headers={"X-Request-ID": "lb-4f2a.9_x"}).headers["X-Request-ID"] == "lb-4f2a.9_x"
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    for bad in ("has space", "<script>", "x" * 65, "a/b", ""):
        replaced = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert replaced != bad and len(replaced) == 32


def test_one_json_line_per_request_with_its_fields(app, client, demo, capsys):
    browser = Browser(client)
    browser.login("member@fittribe.example")
    with app.app_context():
        member = db.session.scalar(select(User.id).where(User.email == "member@fittribe.example"))
    capsys.readouterr()
    response = client.get("/notifications/?page=1&secret=hunter2", headers={"X-Request-ID": "trace-1"})
    lines = request_lines(capsys.readouterr().err)
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == response.headers["X-Request-ID"] == "trace-1"
    assert {key: line[key] for key in ("level", "method", "path", "route", "status", "user_id", "remote_addr")} == {
        "level": "INFO", "method": "GET", "path": "/notifications/", "route": "/notifications/",
        "status": response.status_code, "user_id": member, "remote_addr": "127.0.0.1"}
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert "time" in line and "hunter2" not in json.dumps(line)  # no query strings in the log


def test_requests_refused_before_the_view_are_logged_too(client, capsys):
    # CSRF refuses this before any view or app hook runs; the line and the id are still there.
    response = client.post("/logout", headers={"X-Request-ID": "csrf-1"})
    assert response.status_code == 400 and response.headers["X-Request-ID"] == "csrf-1"
    lines = request_lines(capsys.readouterr().err)
    assert [(line["status"], line["request_id"]) for line in lines] == [(400, "csrf-1")]


def test_probes_are_logged_at_debug(client, capsys):
    client.get("/healthz")
    assert request_lines(capsys.readouterr().err) == []  # the app logs at INFO


def test_the_apps_other_lines_carry_the_request_id(app, client, monkeypatch, capsys):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(payments, "handle_event", crash)
    monkeypatch.setitem(app.config, "ERROR_SPIKE_THRESHOLD", 0)
    response = client.post("/webhooks/simulated", data=b"{}", headers={"X-Request-ID": "crash-1"})
    assert response.status_code == 500
    lines = json_lines(capsys.readouterr().err)
    crash_line = next(line for line in lines if line["message"] == "Unhandled error")
    assert crash_line["request_id"] == "crash-1" and crash_line["level"] == "ERROR"
    assert "RuntimeError: boom" in crash_line["exc_info"]
    # A child logger's line (fittribe.web.ops) too: through the handler's filter.
    monkeypatch.setitem(app.config, "REDIS_URL", f"redis://127.0.0.1:{_free_port()}/0")
    client.get("/healthz", headers={"X-Request-ID": "probe-1"})
    warning = next(line for line in json_lines(capsys.readouterr().err) if line["logger"] == "fittribe.web.ops")
    assert warning["request_id"] == "probe-1" and "redis" in warning["message"]


@pytest.mark.parametrize("path", ["/calendar/{token}.ics", "/calendar/{token}", "/password/reset/{token}"])
def test_secret_urls_are_logged_without_the_secret(client, capsys, path):
    token = "s3cr3t-Tok3n-abcdefghijklmnop"
    client.get(path.format(token=token))
    err = capsys.readouterr().err
    assert token not in err
    [line] = request_lines(err)
    assert line["path"] in ("/calendar/[redacted]", "/password/reset/[redacted]")


# --- /metrics -------------------------------------------------------------------------------

def test_metrics_count_requests_by_route_template(client):
    labels = {"method": "GET", "route": "/calendar/<token>.ics", "status": "4xx"}
    before = metric(scrape(client), REQUESTS + "_count", **labels)
    for n in range(3):
        assert client.get(f"/calendar/token-{n}.ics").status_code == 404
    text = scrape(client)
    assert metric(text, REQUESTS + "_count", **labels) == before + 3
    assert metric(text, REQUESTS + "_bucket", le="+Inf", **labels) == before + 3
    # Raw paths never become labels: the three tokens share one series.
    assert "token-1" not in text


def test_metrics_count_webhook_outcomes(app, client):
    def count(outcome: str) -> float:
        return metric(scrape(client), "fittribe_webhooks_total", provider="simulated", outcome=outcome)

    bad, unknown = count("invalid_signature"), count("unknown_booking")
    forged = client.post("/webhooks/simulated", data=b"{}", headers={"Simulated-Signature": "t=1,v1=x"})
    assert forged.status_code == 400
    event = {"id": f"evt_{RUN_ID}", "type": "checkout.session.completed",
             "data": {"booking_id": 987654, "amount": 100, "currency": "usd", "payment_ref": "pi_x"}}
    assert signed_webhook(app, client, event).get_json() == {"outcome": "unknown booking"}
    assert (count("invalid_signature"), count("unknown_booking")) == (bad + 1, unknown + 1)


def test_metrics_count_published_events(app, client, demo):
    before = metric(scrape(client), "fittribe_events_published_total", channel="user")
    with app.app_context():
        member = db.session.scalar(select(User.id).where(User.email == "member@fittribe.example"))
        notify(member, "test", "hello")
        db.session.commit()
    assert metric(scrape(client), "fittribe_events_published_total", channel="user") == before + 1


def test_open_streams_gauge_and_the_streams_log_line(client, capsys):
    before = metric(scrape(client), "fittribe_sse_open_streams")
    capsys.readouterr()
    streams = [client.get("/stream", buffered=False, headers={"X-Request-ID": f"stream-{n}"}) for n in range(2)]
    try:
        assert [r.status_code for r in streams] == [200, 200]
        assert metric(scrape(client), "fittribe_sse_open_streams") == before + 2
        assert not [line for line in request_lines(capsys.readouterr().err) if line["path"] == "/stream"]
    finally:
        for response in streams:
            response.close()
    assert metric(scrape(client), "fittribe_sse_open_streams") == before
    ended = [line for line in request_lines(capsys.readouterr().err) if line["path"] == "/stream"]
    assert sorted(line["request_id"] for line in ended) == ["stream-0", "stream-1"]  # one line each, at the end
    assert {line["status"] for line in ended} == {200}


def test_metrics_refused_from_outside_without_token(app, client, monkeypatch):
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    refused = client.get("/metrics", environ_base=outside)
    assert refused.status_code == 403 and "Set-Cookie" not in refused.headers
    # Through a proxy on this machine the peer is 127.0.0.1, but the client is not.
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200

    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scrape-secret")
    assert client.get("/metrics", environ_base=outside,
                      headers={"Authorization": "Bearer scrape-secret"}).status_code == 200
    assert client.get("/metrics", environ_base=outside, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", environ_base=outside).status_code == 403


# --- error-spike alerts ---------------------------------------------------------------------

def test_error_spike_alerts_every_admin_once_per_minute(app, client, demo, monkeypatch):
    with app.app_context():
        admins = set(db.session.scalars(select(User.id).where(User.role == Role.ADMIN)))
        member = db.session.scalar(select(User.id).where(User.email == "member@fittribe.example"))
    assert admins

    def crash_half_way(*args, **kwargs):
        # Leaves the request's session dirty: the alert must not commit this along with it.
        db.session.add(Notification(user_id=member, kind="half-written", message="never stored"))
        db.session.flush()
        raise RuntimeError("boom")

    monkeypatch.setattr(payments, "handle_event", crash_half_way)
    monkeypatch.setitem(app.config, "ERROR_SPIKE_THRESHOLD", 3)
    minute = [29_000_000]
    monkeypatch.setattr(alerts, "current_minute", lambda: minute[0])

    def fail(times: int) -> None:
        for _ in range(times):
            # buffered: the test client then closes the response, as a server does after sending it
            assert client.post("/webhooks/simulated", data=b"{}", buffered=True).status_code == 500

    def alerts_by_admin() -> dict[int, int]:
        with app.app_context():
            rows = db.session.execute(select(Notification.user_id, Notification.message, Notification.link)
                                      .where(Notification.kind == "alert")).all()
        assert all("Error spike: 3 server errors" in message and link == "/admin/" for _, message, link in rows)
        return {user: sum(1 for row in rows if row[0] == user) for user in admins}

    fail(2)
    assert alerts_by_admin() == dict.fromkeys(admins, 0)
    fail(5)  # the 3rd alerts; the 4th to 7th of the same minute do not
    assert alerts_by_admin() == dict.fromkeys(admins, 1)
    minute[0] += 1
    fail(3)
    assert alerts_by_admin() == dict.fromkeys(admins, 2)
    with app.app_context():
        assert db.session.scalar(select(Notification.id).where(Notification.kind == "half-written")) is None


def test_health_503s_do_not_count_toward_error_spikes(app, make_app):
    """The probe says "unavailable" on purpose (here: the database is down); admins are alerted
    about pages people see failing, not about the probe."""
    import redis as redis_lib

    closed = _free_port()
    no_database = make_app(SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://postgres@127.0.0.1:{closed}/test",
                           REDIS_URL=app.config["REDIS_URL"], ERROR_SPIKE_THRESHOLD=1)
    client = no_database.test_client()
    assert [client.get("/healthz", buffered=True).status_code for _ in range(3)] == [503] * 3
    counters = [key for key in redis_lib.Redis.from_url(app.config["REDIS_URL"]).scan_iter() if b"5xx" in key]
    assert counters == []


def test_a_redis_failure_while_counting_never_makes_the_error_worse(app, client, monkeypatch, caplog):
    import redis as redis_lib

    from fittribe.realtime import connection

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    unreachable = redis_lib.Redis.from_url(f"redis://127.0.0.1:{_free_port()}/0", socket_connect_timeout=1)
    monkeypatch.setattr(payments, "handle_event", crash)
    monkeypatch.setattr(connection, "redis_client", lambda *args, **kwargs: unreachable)
    response = client.post("/webhooks/simulated", data=b"{}", buffered=True)
    assert response.status_code == 500 and "Something went wrong" in response.get_data(as_text=True)
    assert "Could not count a server error" in caplog.text


# --- several gunicorn workers ---------------------------------------------------------------

@pytest.fixture
def two_workers(app, database_url, redis_url, tmp_path):
    """gunicorn with 2 gevent workers sharing one PROMETHEUS_MULTIPROC_DIR."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"left over by an earlier run")  # must be cleared at start
    port = _free_port()
    env = {**os.environ, "FITTRIBE_ENV": "development", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "RATELIMIT_KEY_PREFIX": f"ops-{RUN_ID}", "SSE_CHANNEL_PREFIX": SSE_PREFIX, "SSE_HEARTBEAT_SECONDS": "1",
           "INSTANCE_PATH": str(tmp_path / "instance"), "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2",
           "ACCESS_LOG": "", "LOG_LEVEL": "WARNING", "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    log = open(tmp_path / "gunicorn.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    # Each worker creates its gauge file when it imports the app: wait for both.
    while len(list(folder.glob("gauge_livesum_*.db"))) < 2:
        if process.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise RuntimeError("gunicorn did not start:\n" + log.read())
        time.sleep(0.1)
    try:
        yield url, folder
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def per_worker(folder: Path, pattern: str, sample_name: str, **labels: str) -> dict[int, float]:
    """One sample's value in each worker's own file."""
    values = {}
    for path in folder.glob(pattern):
        pid = int(path.stem.rsplit("_", 1)[1])
        values[pid] = sum(sample.value for family in MultiProcessCollector.merge([str(path)], accumulate=True)
                          for sample in family.samples
                          if sample.name == sample_name and labels.items() <= sample.labels.items())
    return values


def test_metrics_add_up_across_gunicorn_workers(two_workers, demo):
    url, folder = two_workers
    assert not (folder / "counter_1.db").exists()
    labels = {"method": "GET", "route": "/healthz", "status": "2xx"}

    def probe(_: int) -> int:
        # A new connection each time, so the two workers' accept loops share the requests.
        return requests.get(url + "/healthz", headers={"Connection": "close"}, timeout=5).status_code

    sent = 0
    with ThreadPoolExecutor(8) as pool:
        while sent < 800:
            assert set(pool.map(probe, range(40))) == {200}
            sent += 40
            counts = per_worker(folder, "histogram_*.db", REQUESTS + "_count", **labels)
            if len([n for n in counts.values() if n > 0]) == 2:
                break
    assert len([n for n in counts.values() if n > 0]) == 2, f"one worker served every request: {counts}"
    text = requests.get(url + "/metrics", timeout=5).text
    assert metric(text, REQUESTS + "_count", **labels) == sent == sum(counts.values())

    # Open streams: a live sum over the workers; a worker that dies stops counting (child_exit).
    streams = [SSEClient(requests.Session(), url + "/stream") for _ in range(4)]
    try:
        for stream in streams:
            assert stream.next(timeout=5, comments=True) == {"comment": "connected"}
        assert metric(requests.get(url + "/metrics", timeout=5).text, "fittribe_sse_open_streams") == 4
        held = per_worker(folder, "gauge_livesum_*.db", "fittribe_sse_open_streams")
        pid, open_there = max(held.items(), key=lambda item: item[1])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            text = requests.get(url + "/metrics", timeout=5).text
            if metric(text, "fittribe_sse_open_streams") == 4 - open_there:
                break
            assert time.monotonic() < deadline, f"dead worker {pid} still counted: {held}"
            time.sleep(0.2)
        # Counters of the dead worker stay: a count never goes down.
        assert metric(text, REQUESTS + "_count", **labels) == sent
    finally:
        for stream in streams:
            stream.close()
    deadline = time.monotonic() + 10
    while metric(requests.get(url + "/metrics", timeout=5).text, "fittribe_sse_open_streams") != 0:
        assert time.monotonic() < deadline, "closed streams still counted"
        time.sleep(0.2)
