"""`make run` on a fresh machine: no DATABASE_URL, no REDIS_URL. The dev server must migrate a
database in a new embedded PostgreSQL, start an embedded Redis, seed, and serve the 5 demo trainers
with gunicorn; stopping the site stops both servers and keeps the data."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests

from tests.helpers import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dev_server_on_embedded_defaults(tmp_path):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(INSTANCE_PATH=str(tmp_path), BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1", ACCESS_LOG="")
    log = open(tmp_path / "server.log", "w+")
    server = subprocess.Popen([sys.executable, "-m", "fittribe.devserver"], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                home = requests.get(base + "/", timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):  # up, but the worker still loading
                assert server.poll() is None and time.monotonic() < deadline, log.seek(0) or log.read()
                time.sleep(0.3)
        assert home.status_code == 200
        assert home.text.count('class="card trainer-card"') == 5
        assert (tmp_path / "postgres" / "postmaster.pid").exists()

        # Logging in exercises the embedded PostgreSQL and Redis (rate-limit storage).
        session = requests.Session()
        page = session.get(base + "/login").text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        login = session.post(base + "/login", data={"csrf_token": token, "email": "member@fittribe.example",
                                                    "password": "fittribe-demo"}, allow_redirects=False)
        assert login.status_code == 303
        log.seek(0)
        socket_path = re.search(r"Embedded Redis at unix://(\S+)", log.read()).group(1)
        limiter_keys = redis.Redis(unix_socket_path=socket_path).keys("LIMITS*")
        assert limiter_keys  # the rate limiter really counts in the embedded Redis
        assert "Hi Sam Member" in session.get(base + "/dashboard/").text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
        log.seek(0)
        output = log.read()
        log.close()
    assert "Embedded Redis at unix://" in output
    socket_path = re.search(r"Embedded Redis at unix://(\S+)", output).group(1)
    assert not Path(socket_path).exists()  # the embedded redis-server stopped with the site
    assert "Embedded PostgreSQL at postgresql+psycopg://" in output
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()  # so did PostgreSQL
    assert (tmp_path / "postgres" / "PG_VERSION").exists()  # and its data stays for the next run
