"""The SSE hub: ONE Redis PubSub connection per worker process, fanning out to the open streams
of that process through in-memory subscriptions.

Stock flask-sse opens a Redis connection per open page and keeps a greenlet parked in every
request. Here each Redis message is decoded, formatted and chunk-framed once per process. Under
gunicorn's gevent worker the request's greenlet ends as soon as the headers are out: the hub
owns the client socket and writes each event with one non-blocking send(), so an open page
costs a socket and a small object, not a parked greenlet with its stack, parser and environ."""
from __future__ import annotations

import _socket
import gc
import json
import logging
import threading
import time
from collections import OrderedDict

import gevent
import redis
from flask_sse import Message, ServerSentEventsBlueprint
from gevent import get_hub
from gevent.pool import Group
from gevent.socket import wait_write

from . import live
from .connection import channel_prefix, redis_client

log = logging.getLogger(__name__)
FREEZE_EVERY = 500  # new streams between two gc.freeze() calls


def _wakeup_flag():
    """A gevent Event under gunicorn's gevent worker (threading is patched there), else a
    threading.Event (tests, the Werkzeug dev server)."""
    from gevent import monkey

    if monkey.is_module_patched("threading"):
        from gevent.event import Event

        return Event()
    return threading.Event()


def chunk(data: bytes) -> bytes:
    """HTTP/1.1 chunked framing, exactly as gunicorn frames what a WSGI app yields."""
    return b"%X\r\n%s\r\n" % (len(data), data)


# A named event, not a comment: the page sees it (htmx dispatches "beat" on #live) and knows the
# stream is alive; two missed beats and it reconnects (static/js/live.js).
HEARTBEAT = b"event: beat\n\n"
HEARTBEAT_CHUNK = chunk(HEARTBEAT)
END_OF_RESPONSE = b"0\r\n\r\n"  # the last chunk: the browser sees the stream end and reconnects
MAX_PENDING = 1000  # events a lagging page may have waiting before it is dropped
RENDER_CACHE = 512  # pushed renders kept for replays of pages that reconnect
TICK_SLICE = 500  # streams served between two yields, so a broadcast is not held up by a tick


class Subscription:
    """A stream that goes through the WSGI server (the dev server, tests, TLS, HTTP/1.0): an
    inbox of (event id, SSE text) pairs and a flag that wakes the stream's generator."""

    __slots__ = ("channels", "viewer", "user_id", "pending", "wakeup", "closed", "position", "held", "gate",
                 "beat_due", "leases")

    def __init__(self, channels: tuple[str, ...], viewer=None, user_id: int | None = None):
        self.channels = channels
        self.viewer, self.user_id = viewer, user_id  # who sees it: pushes are rendered per viewer
        self.pending: list[tuple[int | None, bytes]] = []
        self.wakeup = _wakeup_flag()
        self.closed = False
        self.position = 0  # the last event position written: nothing at or below it is sent again
        # Events that arrive while the replay is read, until start(): then the replay goes
        # first and these follow, less what it already had.
        self.held: list | None = []
        self.gate = threading.Lock()  # the hub may deliver from its own thread while start() runs
        self.beat_due = False  # set by the hub's heartbeat ticker
        # Redis leases (sorted-set key, member, ttl) the ticker renews: stream cap, presence.
        self.leases: tuple[tuple[str, str, float], ...] = ()

    def deliver(self, position: int | None, text: bytes, framed: bytes) -> None:
        if self.held is not None:
            with self.gate:
                if self.held is not None:
                    self.held.append((position, text, framed))
                    return
        if position is not None:
            if position <= self.position:
                return  # sent already (by the replay, or published twice after a crash)
            self.position = position
        self._send(text, framed)

    def start(self, position: int) -> None:
        """The replay up to `position` is written: send what arrived meanwhile, then go live."""
        with self.gate:  # a delivery waiting here goes after the held ones
            held, self.held = self.held or [], None
            self.position = max(self.position, position)
            for item in held:
                self.deliver(*item)

    def _send(self, text: bytes, framed: bytes) -> None:
        self.pending.append((None, text))
        self.wakeup.set()

    def heartbeat(self) -> None:
        """A comment that keeps proxies from closing the stream and finds pages that vanished."""
        self.beat_due = True
        self.wakeup.set()

    def close(self, goodbye: bytes = b"") -> None:
        """Ask the stream to end (shutdown, or a Redis reconnect that may have lost messages).
        `goodbye` matters only to hub-written streams: here the WSGI server ends the response."""
        self.closed = True
        self.wakeup.set()


class SocketSubscription:
    """A stream the hub writes itself (gunicorn's gevent worker, plain HTTP/1.1).

    Until `take_socket` (gunicorn is still sending the headers) events wait in `pending`. Then
    each event or heartbeat is one non-blocking send() of chunk-framed bytes; a page that cannot
    take them at once gets a short-lived writer greenlet until it has caught up. `on_end` (the
    stream's clean-up: leases, presence, metrics, log line) runs once, in its own greenlet."""

    __slots__ = ("hub", "channels", "viewer", "user_id", "leases", "position", "held", "gate", "closed", "socket",
                 "pending", "writer", "on_end", "hangup")

    deliver = Subscription.deliver
    start = Subscription.start

    def __init__(self, hub: RealtimeHub, channels: tuple[str, ...], viewer=None, user_id: int | None = None):
        self.hub = hub
        self.channels = channels
        self.viewer, self.user_id = viewer, user_id
        self.leases: tuple[tuple[str, str, float], ...] = ()
        self.position = 0
        self.held: list | None = []
        self.gate = threading.Lock()
        self.closed = False
        self.socket = None
        self.pending: list[bytes] = []  # framed bytes the socket has not taken yet
        self.writer: gevent.Greenlet | None = None  # alive exactly while the socket lags behind
        self.on_end = None
        self.hangup = None  # the event loop's read watcher: a page that leaves is noticed at once

    def _send(self, text: bytes, framed: bytes) -> None:
        self._write(framed)

    def heartbeat(self) -> None:
        if self.socket is not None:  # before the hand-over gunicorn is still writing to it
            self._write(HEARTBEAT_CHUNK)

    def take_socket(self, sock) -> None:
        sock.setblocking(False)
        # A path that dies without a reset: unacknowledged bytes fail the socket after two
        # heartbeats, instead of the kernel's ~15 minutes of retransmissions.
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_USER_TIMEOUT, int(2000 * self.hub.heartbeat))
        except OSError:
            pass  # not TCP (gunicorn on a unix socket behind a proxy): the proxy watches the path
        self.socket = sock
        # A page sends nothing after its request: the socket turning readable means it closed
        # (or sent garbage). A bare loop watcher, not a greenlet: no stack kept per stream.
        self.hangup = get_hub().loop.io(sock.fileno(), 1)
        self.hangup.start(self._peer_spoke)
        if self.pending:
            self._start_writer()

    def _peer_spoke(self, *_) -> None:
        try:
            if self.socket.recv(1024):
                return  # bytes after the request: ignored (browsers do not pipeline)
        except BlockingIOError:
            return
        except OSError:
            pass
        # EOF or reset: the page is gone, its leases go now. Closing takes the hub's lock, which
        # the event loop itself must never wait on: a greenlet does it.
        self.hangup.stop()
        gevent.spawn(self.close)

    def _write(self, framed: bytes) -> None:
        if self.closed:
            return
        if self.pending or self.socket is None:
            self.pending.append(framed)  # behind what is already waiting
            if len(self.pending) > MAX_PENDING:
                self.close()  # far behind: it reconnects and gets what it missed from the outbox
            return
        try:
            sent = self.socket.send(framed)
        except BlockingIOError:
            sent = 0
        except OSError:  # the page is gone
            self.close()
            return
        if sent < len(framed):
            self.pending.append(framed[sent:])
            self._start_writer()

    def _start_writer(self) -> None:
        self.writer = gevent.spawn(self._write_pending)
        self.writer.link(self._writer_stopped)  # runs however it stops, even killed before it ran

    def _write_pending(self) -> None:
        try:
            while self.pending and not self.closed:
                wait_write(self.socket.fileno(), timeout=self.hub.write_timeout)
                data = b"".join(self.pending)
                try:
                    sent = self.socket.send(data)
                except BlockingIOError:
                    sent = 0
                self.pending = [data[sent:]] if sent < len(data) else []
        except OSError:  # gone, or took nothing for write_timeout (it reconnects and replays)
            self.closed = True

    def _writer_stopped(self, writer) -> None:
        self.writer = None
        if self.closed:
            self._release()

    def close(self, goodbye: bytes = b"") -> None:
        if self.closed:
            return
        self.closed = True
        if self.writer is not None:
            self.writer.kill(block=False)  # the socket is let go once it has stopped waiting on it
            return
        if goodbye and self.socket is not None:
            try:
                self.socket.send(goodbye)
            except OSError:
                pass
        self._release()

    def _release(self) -> None:
        if self.hangup is not None:
            self.hangup.stop()
            self.hangup = None
        if self.socket is not None:
            self.socket.close()
        self.hub.ended(self)


class RealtimeHub(ServerSentEventsBlueprint):
    """flask-sse's blueprint with its Message wire format and `publish()` API, but one shared
    subscriber per process, channel prefixes (Redis pub/sub ignores db numbers), and streams
    that are authorized, replayed and kept alive by `fittribe.realtime.stream`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._subscribers: dict[str, set[Subscription]] = {}
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._redis_url: str | None = None
        self._prefix = ""
        self.write_timeout = 30.0  # a stream that takes no bytes for two heartbeats is dropped
        self.heartbeat = 15.0
        self._pool_size = 2
        self.stopping = False
        self.connected = threading.Event()
        self.listening = threading.Event()  # set once the first subscription is confirmed, never cleared
        self.reconnects = 0
        self._new_since_freeze = 0
        self._ending: Group | None = None  # clean-ups of hub-written streams (gevent only)
        self._app = None
        self._renders: OrderedDict[tuple, bytes] = OrderedDict()  # (change, fragment, key, variant) -> message

    # --- publishing (same signature as flask-sse) ---------------------------------------
    @property
    def redis(self) -> redis.Redis:
        client = redis_client()
        if client is None:
            raise KeyError("Must set REDIS_URL in app config.")
        return client

    def publish(self, data, type=None, id=None, retry=None, channel="public"):
        message = Message(data, type=type, id=id, retry=retry)
        return self.redis.publish(channel_prefix() + channel, json.dumps(message.to_dict()))

    def end_streams(self, channel: str) -> None:
        """End every open stream on `channel`, in every worker (a user logged out everywhere or
        was suspended: their private events stop at once). Pages reconnect as who they now are."""
        try:
            self.redis.publish(channel_prefix() + channel, json.dumps({"end": True}))
        except (redis.RedisError, OSError) as error:  # their next reconnect is checked anyway
            log.warning("Could not end the streams of %s: %r", channel, error)

    # --- subscribing -------------------------------------------------------------------
    def subscribe(self, channels: list[str] | tuple[str, ...], *, hub_writes: bool = False, viewer=None,
                  user_id: int | None = None):
        """A Subscription, or with `hub_writes` a SocketSubscription waiting for its socket. It
        holds what arrives until `start()` (after the replay). `viewer` picks the pushed HTML."""
        self._ensure_listener()
        channels = tuple(channels)
        subscription = (SocketSubscription(self, channels, viewer, user_id) if hub_writes
                        else Subscription(channels, viewer, user_id))
        with self._lock:
            for channel in channels:
                self._subscribers.setdefault(channel, set()).add(subscription)
            self._new_since_freeze += 1
            if self._new_since_freeze >= FREEZE_EVERY:
                self._new_since_freeze = 0
                # Long-lived stream objects out of the collector's sight: a full collection
                # would otherwise walk every open stream in the middle of a broadcast. Young
                # garbage is collected first so it is not frozen with them.
                gc.collect()  # cheap: frozen objects are not walked, only the last ~500 streams
                gc.freeze()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            for channel in subscription.channels:
                streams = self._subscribers.get(channel)
                if streams is not None:
                    streams.discard(subscription)
                    if not streams:
                        del self._subscribers[channel]

    def ended(self, subscription: SocketSubscription) -> None:
        """A hub-written stream is over: out of the fan-out now, its clean-up (Redis round
        trips) in a greenlet of its own so the broadcast or heartbeat that found it goes on."""
        self.unsubscribe(subscription)
        end, subscription.on_end = subscription.on_end, None  # also breaks the reference cycle
        if end is not None:
            if self._ending is None:
                self._ending = Group()
            self._ending.spawn(end)

    def wait_ended(self, timeout: float) -> None:
        """Let the clean-up of streams ended at shutdown finish before the process exits."""
        if self._ending is not None:
            self._ending.join(timeout)

    def open_streams(self) -> int:
        with self._lock:
            return len({s for streams in self._subscribers.values() for s in streams})

    def messages(self, channel="public"):
        """flask-sse's generator API on top of the shared subscriber."""
        subscription = self.subscribe([channel])
        subscription.start(0)
        try:
            while not subscription.closed:
                subscription.wakeup.wait()
                subscription.wakeup.clear()
                items, subscription.pending = subscription.pending, []
                for _, data in items:
                    yield data.decode()
        finally:
            self.unsubscribe(subscription)

    def shutdown(self) -> None:
        """End every open stream now (SIGTERM): browsers reconnect to another worker."""
        self.stopping = True
        self._close_all()

    # --- the one Redis subscriber per process ---------------------------------------------
    def configure(self, redis_url: str | None, prefix: str, heartbeat: float = 15.0, pool_size: int = 2,
                  app=None) -> None:
        self._redis_url, self._prefix, self.heartbeat, self._pool_size = redis_url, prefix, heartbeat, pool_size
        self.write_timeout = 2 * heartbeat
        if app is not None:
            self._app = app  # pushes are rendered with it

    def _ensure_listener(self) -> None:
        if self._listener is None:  # it runs until shutdown; _listen never lets an error out
            with self._lock:
                if self._listener is None:
                    if not self._redis_url:
                        raise RuntimeError("REDIS_URL is not configured: live updates need Redis.")
                    self._listener = threading.Thread(target=self._listen, name="sse-hub", daemon=True)
                    self._listener.start()
                    threading.Thread(target=self._tick, name="sse-heartbeat", daemon=True).start()
        # A stream that read its replay before the hub's first subscription to Redis took effect
        # would miss what is published in between: every stream of a fresh process waits for it,
        # not only the first (after a restart hundreds reconnect at once). Later outages end the
        # streams on reconnect, so they replay.
        self.listening.wait(5)

    def _listen(self) -> None:
        backoff, first = 0.2, True
        while not self.stopping:
            pubsub = None
            try:
                client = redis.Redis.from_url(self._redis_url, socket_connect_timeout=5, health_check_interval=15,
                                              client_name="fittribe-hub")
                pubsub = client.pubsub()
                pubsub.psubscribe(self._prefix + "*")
                # Redis's confirmation, not just the command sent: from here every publish reaches us.
                confirmed = pubsub.get_message(timeout=5)
                if confirmed is None or confirmed["type"] != "psubscribe":
                    raise redis.ConnectionError(f"no confirmation of the subscription: {confirmed!r}")
                if not first:
                    # Messages published while we were away are in the outbox: end the streams so
                    # browsers reconnect with Last-Event-ID and get them replayed.
                    self.reconnects += 1
                    self._close_all()
                    log.warning("SSE hub reconnected to Redis; streams asked to resume from replay")
                first, backoff = False, 0.2
                self.connected.set()
                self.listening.set()
                while not self.stopping:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "pmessage":
                        self._dispatch(message["channel"], message["data"])
            except Exception as error:  # Redis gone, or anything unexpected: keep the hub alive
                self.connected.clear()
                log.warning("SSE hub lost Redis (%r); retrying in %.1f s", error, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except (redis.RedisError, OSError):
                        pass

    def _tick(self) -> None:
        """One ticker for every stream of the process instead of a timer per stream: each
        interval it sends every stream its heartbeat (straight to the socket where it can) and
        renews all their Redis leases in one pipelined round trip."""
        while not self.stopping:
            time.sleep(self.heartbeat)
            with self._lock:
                everyone = list({s for streams in self._subscribers.values() for s in streams})
            leases = []
            for n, subscription in enumerate(everyone, start=1):
                subscription.heartbeat()
                leases.extend(subscription.leases)
                if n % TICK_SLICE == 0:
                    time.sleep(0)  # let the listener deliver a broadcast in between
            if leases:
                self._renew(leases)

    def _renew(self, leases: list[tuple[str, str, float]]) -> None:
        try:
            now = time.time()
            with redis_client(self._redis_url, self._pool_size).pipeline(transaction=False) as pipe:
                for key, member, ttl in leases:
                    pipe.zadd(key, {member: now + ttl}, xx=True)
                pipe.execute()
        except Exception as error:  # presence then runs out on its own: better than no ticker
            log.warning("Could not renew stream leases: %r", error)

    def _dispatch(self, redis_channel: bytes, data: bytes) -> None:
        channel = redis_channel[len(self._prefix):].decode()
        streams = self._subscribers.get(channel)
        if not streams:
            return
        try:
            fields = json.loads(data)
            if fields.get("end"):  # the user's sessions were revoked: their open pages stop now
                for subscription in tuple(streams):
                    subscription.close(END_OF_RESPONSE)
                return
            fragment, key, change = fields.pop("fragment", None), fields.pop("key", None), fields.pop("change", None)
            spans = fields.pop("spans", None)
            message = Message(**fields)
        except (ValueError, TypeError):
            log.warning("Ignoring malformed SSE message on %s", channel)
            return
        # Outbox events carry their position; other publishers (flask-sse's API) may use any id,
        # which then goes out as it is, without the exactly-once check.
        position = int(message.id) if isinstance(message.id, int) or str(message.id).isdecimal() else None
        streams = tuple(streams)  # a copy: streams come and go while we deliver
        if fragment is not None:
            self._push(live.FRAGMENTS.get(fragment), key, position, change, streams, spans)
            return
        text = str(message).encode()
        framed = chunk(text)
        for subscription in streams:
            subscription.deliver(position, text, framed)

    # --- pushed fragments: rendered once per viewer variant ----------------------------------
    def _push(self, fragment, key, position: int, change: str | None, streams, spans=None) -> None:
        if fragment is None:
            return
        by_variant: dict = {}
        for subscription in streams:
            by_variant.setdefault(self.variant(fragment, subscription), []).append(subscription)
        for variant, subscriptions in by_variant.items():
            text = self.rendered(fragment, key, position, change, subscriptions[0], spans)
            framed = chunk(text)
            for subscription in subscriptions:
                subscription.deliver(position, text, framed)

    @staticmethod
    def variant(fragment, subscription):
        return None if fragment.per_user else subscription.viewer

    def rendered(self, fragment, key, position: int, change: str | None, subscription, spans=None) -> bytes:
        """The SSE message pushing `fragment` for this subscription's variant, rendered once per
        change (fragment, key, variant) in this process: the whole fragment, or with `spans`
        (live pushes of a fragment declared with parts) only the parts those times touched. A
        fragment that fails to render becomes a named event, so the pages re-fetch it instead."""
        in_parts = bool(spans and fragment.parts)
        cache_key = (change or position, fragment.name, key, self.variant(fragment, subscription), in_parts)
        text = self._renders.get(cache_key)
        if text is None:
            try:
                with self._app.test_request_context("/"):
                    html = live.render_for(fragment, key, subscription.viewer, spans if in_parts else None)
                text = str(Message(html, id=position)).encode()
            except Exception:
                log.exception("Rendering live fragment %s(%s) failed; pages re-fetch it", fragment.name, key)
                text = str(Message(str(key or ""), type=live.RESYNC, id=position)).encode()
            self._renders[cache_key] = text
            if len(self._renders) > RENDER_CACHE:
                self._renders.popitem(last=False)
        return text

    def _close_all(self) -> None:
        with self._lock:
            everyone = {s for streams in self._subscribers.values() for s in streams}
        for subscription in everyone:
            subscription.close(END_OF_RESPONSE)


sse = RealtimeHub("sse", __name__)
