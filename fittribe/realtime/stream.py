"""GET /stream: one multiplexed, authorized, replayable SSE stream per page.

Everything that needs the database or the app (authorization, presence, replay, rendering)
happens in the view. What lives as long as the page holds no app context, no DB session and no
Redis connection of its own: under gunicorn's gevent worker the hub takes the socket over once
the headers are sent and the request ends; elsewhere a generator yields through the server."""
from __future__ import annotations

import _socket
import errno
import time
import uuid
from functools import cache

from flask import abort, current_app, render_template, request
from flask_login import current_user
from flask_sse import Message
from limits import parse_many

from ..extensions import db, limiter, talisman
from ..models import Role, TrainerProfile
from ..ops.logs import log_when_stream_ends
from ..ops.metrics import OPEN_STREAMS
from ..web.params import INT8_MAX, parse_int
from . import outbox, presence
from .channels import channels_for
from .connection import redis_client
from .hub import HEARTBEAT, SocketSubscription, Subscription, sse

STREAM_LEASES = "fittribe:streams:"


def _gunicorn_socket(environ):
    """gunicorn's client socket when the hub may take it over and write chunk-framed bytes to
    it: plain (not TLS) HTTP/1.1 under the gevent worker. Otherwise None, and the stream yields
    through the WSGI server like any response."""
    sock = environ.get("gunicorn.socket")
    if sock is None or environ.get("SERVER_PROTOCOL") != "HTTP/1.1" or environ.get("REQUEST_METHOD") != "GET":
        return None
    if getattr(sock, "_sock", None) is None or hasattr(sock, "_sslobj") or not hasattr(sock, "detach"):
        return None
    return sock


def _viewed_trainer_id() -> int | None:
    """The trainer profile on screen (?trainer=<id>): it must be one this user may see."""
    raw = request.args.get("trainer")
    if raw is None:
        return None
    trainer_id = parse_int(raw)
    if trainer_id is None:
        abort(400, "trainer must be a trainer id.")
    trainer = db.session.get(TrainerProfile, trainer_id)
    if trainer is None:
        abort(404)
    if not trainer.is_approved or trainer.user.is_suspended:
        owner_or_admin = current_user.is_authenticated and (
            current_user.id == trainer.user_id or current_user.has_role(Role.ADMIN))
        if not owner_or_admin:
            abort(404)
    return trainer.id


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if raw is None or raw == "":
        return None
    last_id = parse_int(raw, high=INT8_MAX)
    if last_id is None:
        abort(400, "Last-Event-ID must be an event id.")
    return last_id


def _client_key() -> str:
    return f"user:{current_user.id}" if current_user.is_authenticated else f"ip:{request.remote_addr}"


@cache
def _limits(spec: str):
    return parse_many(spec)


def _allow_connect(client_key: str) -> bool:
    """Rate-limit connects with the same `limits` storage Flask-Limiter uses, without its
    per-request machinery: this is the hottest path when thousands of pages reconnect."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return True
    return all(limiter.limiter.hit(item, "stream", client_key) for item in _limits(current_app.config["RATELIMIT_STREAM"]))


@limiter.request_filter
def _is_stream_connect() -> bool:
    """Stream connects have their own limit (_allow_connect): Flask-Limiter need not resolve and
    evaluate limits for them, which costs more than the rest of a connect's Flask overhead."""
    return request.endpoint == "sse.stream"


# Document-level security headers (CSP, frame options, permissions policy) mean nothing on an
# event stream: bytes every page would send on each connect for nothing.
@talisman(content_security_policy=None, frame_options=None, permissions_policy={}, document_policy={},
          feature_policy={})
def stream():
    if sse.stopping:
        # This worker is shutting down. A stream that ends at once makes htmx reconnect (to
        # another worker); an error status on a first connect would not be retried.
        return current_app.response_class(b": restarting\n\n", mimetype="text/event-stream",
                                          headers={"Cache-Control": "no-cache"})
    channels = channels_for(current_user, _viewed_trainer_id())
    asked = request.args.getlist("channel")
    if any(channel not in channels for channel in asked):
        abort(403)  # a client never chooses a channel it may not read
    last_id = _last_event_id()
    if not _allow_connect(_client_key()):
        abort(429, "Too many live connections opened in a short time.")
    config = current_app.config
    heartbeat = config["SSE_HEARTBEAT_SECONDS"]
    stream_id = uuid.uuid4().hex
    client = redis_client()

    cap = config["STREAM_CAP_PER_CLIENT"]
    cap_key = STREAM_LEASES + _client_key()
    if cap:  # one round trip: drop expired leases, take one, count
        now = time.time()
        with client.pipeline() as pipe:
            pipe.zremrangebyscore(cap_key, "-inf", now)
            pipe.zadd(cap_key, {stream_id: now + 2 * heartbeat})
            pipe.zcard(cap_key)
            open_streams = pipe.execute()[-1]
        if open_streams > cap:
            client.zrem(cap_key, stream_id)
            abort(429, f"You have {open_streams - 1} live pages open; close one to go live here.")

    trainer_id = None
    if current_user.is_authenticated and current_user.has_role(Role.TRAINER) and current_user.trainer_profile:
        trainer_id = current_user.trainer_profile.id
        presence.stream_opened(trainer_id, stream_id)

    # Subscribe before reading the replay, so nothing falls between the two; what arrives
    # twice is dropped by id (skip_ids).
    sock = _gunicorn_socket(request.environ)
    subscription = sse.subscribe(channels, hub_writes=sock is not None)
    first = [b": connected\n\n"]
    if last_id is not None:
        limit = config["SSE_REPLAY_LIMIT"]
        replay = outbox.events_after(last_id, channels, limit=limit + 1)
        if len(replay) > limit or outbox.pruned(last_id):
            # Too far behind to catch up event by event: the page is asked to reload instead,
            # and carries on from the newest id (so later reconnects replay from there).
            first.append(str(Message(render_template("partials/stale_page.html"), id=outbox.latest_id())).encode())
            replay = []
        for event in replay:
            first.append(str(outbox.sse_message(event.id, event.type, event.payload)).encode())
        subscription.skip_ids = {str(event.id) for event in replay}

    leases = []
    if cap:
        leases.append((cap_key, stream_id, 2 * heartbeat))
    if trainer_id is not None:
        leases.append((presence.lease_key(trainer_id), stream_id, config["PRESENCE_TTL"]))
    subscription.leases = tuple(leases)  # renewed by the hub's heartbeat ticker

    closed = False
    OPEN_STREAMS.inc()  # close() below takes it back: the server always calls it, even for a page gone early
    log_stream = log_when_stream_ends()  # one request-log line, when the stream ends, with its lifetime

    def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        OPEN_STREAMS.dec()
        log_stream()
        sse.unsubscribe(subscription)
        if cap:
            client.zrem(cap_key, stream_id)
        if trainer_id is not None:
            presence.stream_closed(client, trainer_id, stream_id, config["PRESENCE_GRACE"])

    if sock is not None:
        subscription.on_end = close
        body = _HandOver(subscription, b"".join(first), sock, close)
    else:
        body = _StreamBody(_event_stream(subscription, b"".join(first), close), close)
    # The Flask request object is not needed for the life of the stream.
    request.environ.pop("werkzeug.request", None)
    response = current_app.response_class(
        body,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # Hand our iterable straight to the server: no Werkzeug wrappers (and no Response object)
    # kept alive for as long as the page stays open.
    response.direct_passthrough = True
    return response


class _StreamBody:
    """The WSGI body of a stream; `close()` (called by the server) always cleans up, even for a
    client that left before the first byte."""

    __slots__ = ("_generator", "_close")

    def __init__(self, generator, close):
        self._generator, self._close = generator, close

    def __iter__(self):
        return self._generator

    def close(self) -> None:
        self._generator.close()
        self._close()


def _drain(subscription: Subscription) -> bytes:
    if not subscription.pending:
        return b""
    items, subscription.pending = subscription.pending, []
    return b"".join(data for _, data in items)


def _event_stream(subscription: Subscription, first: bytes, close):
    """Portable stream: every write goes through the WSGI server."""
    try:
        yield first
        while True:
            subscription.wakeup.wait()
            subscription.wakeup.clear()
            data = _drain(subscription)
            if subscription.beat_due:
                # A write to a vanished client fails here, so it is cleaned up within one beat.
                subscription.beat_due = False
                data += HEARTBEAT
            if data:
                yield data
            if subscription.closed:
                return
    finally:
        close()


class HandedOver(BrokenPipeError):
    """Ends gunicorn's handling of a request whose socket the hub has taken: gunicorn lets
    a broken pipe go quietly and does not write the end of the response."""

    def __init__(self):
        super().__init__(errno.EPIPE, "the SSE hub writes this stream now")


class _HandOver:
    """The WSGI body of a stream the hub writes (see SocketSubscription): gunicorn sends the
    headers and the first chunk through its normal path; on the next item the client socket is
    detached from gunicorn and given to the hub, and the request's greenlet ends."""

    __slots__ = ("_first", "_subscription", "_socket", "_end")

    def __init__(self, subscription: SocketSubscription, first: bytes, sock, end):
        self._first, self._subscription, self._socket, self._end = first, subscription, sock, end

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._subscription.closed:  # shut down meanwhile: gunicorn ends the response itself
            raise StopIteration
        self._end = None  # from here the hub ends the stream
        self._subscription.take_socket(_socket.socket(fileno=self._socket.detach()))
        raise HandedOver()

    def close(self) -> None:
        if self._end is not None:  # gunicorn ended it before the hand-over
            self._subscription.on_end = None  # no reference cycle left behind
            self._end()


sse.add_url_rule("", endpoint="stream", view_func=stream)
