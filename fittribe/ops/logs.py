"""Structured logs: one JSON line per request, and the request's id on every line the app logs
while serving it.

python-json-logger does the formatting: it turns any `extra=` field into a JSON key, serialises
exceptions and odd values (datetimes, objects) safely, and is a small, maintained package, where a
hand-written formatter would have to get those details right again."""
from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Callable

from flask import Flask, Response, current_app, g, has_request_context, request, request_started
from flask.logging import default_handler
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy import inspect as sa_inspect

from . import metrics

REQUEST_ID_HEADER = "X-Request-ID"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # anything else is replaced, never logged
# Load-balancer probes and scrapes arrive every few seconds: logged at DEBUG unless they fail.
QUIET_ENDPOINTS = frozenset({"ops.healthz", "ops.metrics"})
REDACTED = "[redacted]"

request_log = logging.getLogger("fittribe.request")


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


class StderrHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is at each write: test runners swap it and close the old one."""

    stream = property(lambda self: sys.stderr, lambda self, value: None)


def init_app(app: Flask) -> None:
    configure_logging(app)
    request_started.connect(_start_request, app)
    app.after_request(_finish_request)


def configure_logging(app: Flask) -> None:
    """JSON lines on stderr for the app's logger and its children (fittribe.*). Idempotent: tests
    create several apps in one process."""
    logger = logging.getLogger(app.import_name)
    logger.setLevel(app.config["LOG_LEVEL"])
    logger.removeHandler(default_handler)
    # On the logger for its own records, on the handler for those its children pass up.
    if not any(isinstance(f, RequestIdFilter) for f in logger.filters):
        logger.addFilter(RequestIdFilter())
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s", timestamp="time",
                                           rename_fields={"levelname": "level", "name": "logger"}))
        logger.addHandler(handler)


def request_id() -> str:
    if "request_id" not in g:
        raw = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = raw if VALID_REQUEST_ID.fullmatch(raw) else uuid.uuid4().hex
    return g.request_id


def _start_request(sender: Flask, **extra) -> None:
    # request_started comes before every before_request hook (the limiter's and CSRF's included),
    # so even a request they refuse has its id and timing.
    g.request_t0 = time.perf_counter()
    request_id()


def _finish_request(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = request_id()
    seconds = time.perf_counter() - g.get("request_t0", time.perf_counter())
    metrics.observe_request(request.method, _route(), response.status_code, seconds)
    if not g.pop("request_log_deferred", False):
        quiet = request.endpoint in QUIET_ENDPOINTS and response.status_code < 400
        _log_request(logging.DEBUG if quiet else logging.INFO, _fields(response.status_code, seconds))
    return response


def log_when_stream_ends() -> Callable[[], None]:
    """For a response that outlives its request (an SSE stream): no line when the response starts;
    the returned function (which needs no app or request context) writes it when the stream ends,
    with the stream's whole duration."""
    g.request_log_deferred = True
    fields = _fields(200, 0.0)
    started = g.get("request_t0", time.perf_counter())

    def ended() -> None:
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        _log_request(logging.INFO, fields)

    return ended


def _log_request(level: int, fields: dict) -> None:
    request_log.log(level, "%s %s %s %.1f ms", fields["method"], fields["path"], fields["status"],
                    fields["duration_ms"], extra=fields)


def _fields(status: int, seconds: float) -> dict:
    return {
        "method": request.method,
        "path": _loggable_path(),  # never the query string: it may carry secrets
        "route": _route(),
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
        "request_id": request_id(),
        "user_id": _user_id(),
        "remote_addr": request.remote_addr,
    }


def _route() -> str | None:
    return request.url_rule.rule if request.url_rule is not None else None


def _user_id() -> int | None:
    # Only a user this request already loaded (Flask-Login keeps it in g): logging never queries
    # the database, which may be the very thing failing, and never touches the session.
    user = g.get("_login_user")
    state = sa_inspect(user, raiseerr=False) if user is not None else None
    return state.identity[0] if state is not None and state.identity else None


def _loggable_path() -> str:
    """The path with the secret part cut off on routes whose URL is a credential (any rule with a
    `<...token>` argument: the calendar feed, password reset), matched or mistyped alike."""
    path = request.path
    for prefix in secret_prefixes(current_app):
        if path.startswith(prefix):
            return prefix + REDACTED
    return path


def secret_prefixes(app: Flask) -> tuple[str, ...]:
    cached = app.extensions.get("fittribe_secret_prefixes")
    if cached is None:
        pattern = re.compile(r"^([^<]*)<(?:[^:>]+:)?\w*token\w*>")
        cached = tuple(sorted({m.group(1) for rule in app.url_map.iter_rules() if (m := pattern.match(rule.rule))}))
        app.extensions["fittribe_secret_prefixes"] = cached
    return cached
