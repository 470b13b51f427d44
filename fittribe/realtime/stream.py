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

from flask import abort, current_app, request
from flask_login import current_user
from flask_sse import Message

from .. import ratelimits
from ..extensions import db, limiter, talisman
from ..models import Role, TrainerProfile
from ..ops.logs import log_when_stream_ends
from ..ops.metrics import OPEN_STREAMS
from ..web.params import INT8_MAX, parse_int
from . import live, outbox, presence
from .channels import channels_for
from .connection import REDIS_ERRORS, redis_client, redis_key
from .hub import HEARTBEAT, SocketSubscription, Subscription, sse


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


def _replay(last_position: int, channels: list[str], subscription) -> tuple[list[bytes], int]:
    """What the page missed after `last_position` (the position it was rendered at, or the last
    event it received), as SSE messages, and the position the stream goes on from."""
    limit = current_app.config["SSE_REPLAY_LIMIT"]
    events, pruned = outbox.replay_after(last_position, channels, limit=limit + 1)
    if len(events) > limit or pruned:
        # Too far behind to catch up event by event: every live fragment re-fetches itself,
        # and the stream goes on from the newest position.
        newest = outbox.latest_position()
        return [str(Message("", type=live.RESYNC, id=newest)).encode()], newest
    latest = _latest_of_each_change(events)
    messages = [_replayed(event, subscription) if event.position in latest
                else str(Message("", id=event.position)).encode() for event in events]
    return messages, (events[-1].position if events else last_position)


def _same_change(event) -> tuple | None:
    """Events that say the same thing (the same fragment changed again): only the last matters."""
    if event.payload.get("fragment"):
        return ("push", event.payload["fragment"], str(event.payload.get("key")))
    if event.type:
        return ("event", event.type, event.payload.get("data"))
    return None  # a message of its own (a notification)


def _latest_of_each_change(events: list) -> set[int]:
    """The positions of the events a replay sends in full. One superseded by a later one of the
    same change goes as its id alone: the page still hears every position once and in order (htmx
    keeps the id for its next reconnect), and renders the fragment once, in its latest state."""
    last_of = {}
    for event in events:
        last_of[_same_change(event) or ("own", event.position)] = event.position
    return set(last_of.values())


def _replayed(event, subscription) -> bytes:
    fragment = live.FRAGMENTS.get(event.payload.get("fragment") or "")
    if fragment is not None:
        return sse.rendered(fragment, event.payload.get("key"), event.position, event.payload.get("change"), subscription)
    return str(Message(outbox.render_data(event.payload), type=event.type, id=event.position)).encode()


def _client_key() -> str:
    return f"user:{current_user.id}" if current_user.is_authenticated else f"ip:{request.remote_addr}"


def _allow_connect(client_key: str) -> bool:
    """Rate-limit connects with the same `limits` storage Flask-Limiter uses, without its
    per-request machinery: this is the hottest path when thousands of pages reconnect. While
    Redis is down the count goes on in this process's memory."""
    return ratelimits.hit(current_app.config["RATELIMIT_STREAM"], "stream", client_key)


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
    cap_key = redis_key("streams", _client_key())
    if cap:  # one round trip: drop expired leases, take one, count
        now = time.time()
        try:
            with client.pipeline() as pipe:
                pipe.zremrangebyscore(cap_key, "-inf", now)
                pipe.zadd(cap_key, {stream_id: now + 2 * heartbeat})
                pipe.zcard(cap_key)
                open_streams = pipe.execute()[-1]
        except REDIS_ERRORS:
            cap, open_streams = 0, 0  # Redis away: no lease to count against (nor to renew)
        if open_streams > cap > 0:
            client.zrem(cap_key, stream_id)
            abort(429, f"You have {open_streams - 1} live pages open; close one to go live here.")

    presence_key = None  # named here: close() runs without the app (and its key prefix)
    if current_user.is_authenticated and current_user.has_role(Role.TRAINER) and current_user.trainer_profile:
        try:
            presence.stream_opened(current_user.trainer_profile.id, stream_id)
            presence_key = presence.lease_key(current_user.trainer_profile.id)
        except REDIS_ERRORS:
            pass  # shown offline until her next connect with Redis back
    # Subscribe before reading the replay, so nothing falls between the two: what arrives
    # meanwhile is held and sent after the replay, less what the replay already had.
    sock = _gunicorn_socket(request.environ)
    subscription = sse.subscribe(channels, hub_writes=sock is not None,
                                 viewer=live.Viewer.of(current_user),
                                 user_id=current_user.id if current_user.is_authenticated else None)
    first = [b": connected\n\n"]
    position = 0
    if last_id is not None:
        replay, position = _replay(last_id, channels, subscription)
        first.extend(replay)
    subscription.start(position)

    leases = []
    if cap:
        leases.append((cap_key, stream_id, 2 * heartbeat))
    if presence_key is not None:
        leases.append((presence_key, stream_id, config["PRESENCE_TTL"]))
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
        try:
            if cap:
                client.zrem(cap_key, stream_id)
            if presence_key is not None:
                presence.stream_closed(client, presence_key, stream_id, config["PRESENCE_GRACE"])
        except REDIS_ERRORS:
            pass  # the leases run out by themselves

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
