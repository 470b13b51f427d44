"""Error-spike alerts: 5xx answers are counted per minute in Redis (shared by every worker and
host), and the one answer that brings a minute's count to ERROR_SPIKE_THRESHOLD tells every admin.

The counting runs when the server closes the response, after the failing request's answer has been
sent, in an app context (and so a database session) of its own: the request's session may be in a
bad state after the error, and a slow or absent Redis or database must not make that request any
slower or worse. Whatever goes wrong here is logged, never raised."""
from __future__ import annotations

import logging
import time
from functools import partial

from flask import Flask, Response, current_app, request

from ..extensions import db
from .logs import QUIET_ENDPOINTS

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    @app.after_request
    def count_server_errors(response: Response) -> Response:
        # /healthz answers 503 by design when a dependency is down: the probe reports it, not a spike.
        if response.status_code >= 500 and app.config["ERROR_SPIKE_THRESHOLD"] > 0 \
                and request.endpoint not in QUIET_ENDPOINTS:
            response.call_on_close(partial(record_server_error, app))
        return response


def current_minute() -> int:
    return int(time.time() // 60)


def record_server_error(app: Flask) -> None:
    try:
        with app.app_context():
            _record(current_minute())
    except Exception:  # noqa: BLE001 - an alert that fails must not fail anything else
        log.exception("Could not count a server error for error-spike alerts")


def _record(minute: int) -> None:
    from ..realtime.connection import REDIS_ERRORS, redis_client, redis_key
    from ..services.notify import notify_admins

    client = redis_client()
    if client is None:
        return  # no Redis (fallback mode): no shared count to keep
    key = redis_key("5xx", minute)
    try:
        with client.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count = pipe.execute()[0]
    except REDIS_ERRORS as error:
        log.warning("Could not count a server error (%r)", error)
        return
    threshold = current_app.config["ERROR_SPIKE_THRESHOLD"]
    if count != threshold:  # exactly one request per minute sees this value
        return
    at = time.strftime("%H:%M", time.gmtime(minute * 60))
    log.error("Error spike: %s server errors in the minute from %s UTC", count, at)
    try:
        notify_admins("alert", f"Error spike: {count} server errors (5xx) in the minute from {at} UTC. "
                               "Check the logs.", "/admin/")
        db.session.commit()
    except Exception:  # noqa: BLE001 - the database may be what is failing
        db.session.rollback()
        log.exception("Could not alert the admins about the error spike")
