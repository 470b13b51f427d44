"""Stream connects are let in a few at a time per process, first come first served.

When a node dies or restarts, every page it held reconnects within a second (htmx waits 500 ms),
all to the nodes left. Let in all at once, a thousand connects share the process's CPU and its
small Redis and database pools: every one of them finishes late, past the page's own connect
timeout (SSE_CONNECT_TIMEOUT_SECONDS, in base.html), and waiting greenlets hold pooled connections
for whole turns of a busy event loop until the pools time out. Through this gate only
STREAM_CONNECTS_IN_FLIGHT run at a time, so each finishes in milliseconds and in arrival order; one
that could not start within STREAM_CONNECT_WAIT_SECONDS is answered 503 with Retry-After at once,
before Flask runs, and the page tries again after htmx's backoff (1 s, 2 s, 4 s…), which spreads
the herd instead of piling it up. Those answers are deliberate: counted in
fittribe_sse_connects_shed_total, not as server errors."""
from __future__ import annotations

import logging
import threading
import time

from ..ops.metrics import CONNECTS_SHED

log = logging.getLogger(__name__)
BUSY = b"This server is busy taking other live connections; the page will try again in a moment.\n"
LOG_EVERY = 10.0  # seconds: one warning line per burst of shed connects, not one per connect
# What the answer suggests to clients that read it (htmx does not: it doubles its own delay from 500 ms).
RETRY_AFTER_SECONDS = 2


class ConnectGate:
    """WSGI middleware in front of the app: requests for `path` wait for one of `in_flight` slots,
    at most `wait_seconds`; when more are waiting than can start in that time at the pace of the
    last ones, a newcomer is answered at once (its page starts its backoff now, not after the wait)."""

    def __init__(self, app, path: str, in_flight: int, wait_seconds: float):
        self.app, self.path, self.in_flight, self.wait_seconds = app, path, in_flight, wait_seconds
        # Made when the app is, after gevent patched threading under gunicorn: a cooperative
        # semaphore there, a thread one under the dev server and in tests. Waiters wake in order.
        self.slots = threading.BoundedSemaphore(in_flight)
        self.waiting = 0
        self.seconds_per_connect = 0.005  # how long a connect holds its slot (moving average)
        self.headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BUSY))),
                        ("Retry-After", str(RETRY_AFTER_SECONDS)), ("Cache-Control", "no-store")]
        self.shed_since_logged, self.logged_at = 0, 0.0

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != self.path:
            return self.app(environ, start_response)
        if self.waiting and self.waiting >= self.in_flight * self.wait_seconds / self.seconds_per_connect:
            return self._shed(start_response)
        self.waiting += 1
        try:
            admitted = self.slots.acquire(timeout=self.wait_seconds)
        finally:
            self.waiting -= 1
        if not admitted:
            return self._shed(start_response)
        started = time.monotonic()
        try:
            # The view reads the replay and answers; the body it returns is written by the hub
            # (or the server) after the slot is free again.
            return self.app(environ, start_response)
        finally:
            self.slots.release()
            self.seconds_per_connect += 0.1 * (time.monotonic() - started - self.seconds_per_connect)

    def _shed(self, start_response):
        CONNECTS_SHED.inc()
        self.shed_since_logged += 1
        now = time.monotonic()
        if now - self.logged_at >= LOG_EVERY:
            log.warning("Busy: %d stream connects answered 503 (Retry-After) since the last such line: "
                        "none could start within %.1f s", self.shed_since_logged, self.wait_seconds)
            self.shed_since_logged, self.logged_at = 0, now
        start_response("503 Service Unavailable", list(self.headers))
        return [BUSY]
