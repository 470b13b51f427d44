"""The SSE hub: ONE Redis PubSub connection per worker process, fanning out to the open streams
of that process through in-memory subscriptions.

Stock flask-sse opens a Redis connection per open page; here a page costs a deque, an event
flag and its socket. Each Redis message is decoded, formatted and chunk-framed once per
process. Under gunicorn the hub then writes those bytes straight to each idle stream's socket
(non-blocking); only a stream whose socket is busy or full is handed the bytes to write itself.
That keeps a delivery to one send() instead of a greenlet switch and a trip through the WSGI
stack, which is what lets one worker hold thousands of pages."""
from __future__ import annotations

import gc
import json
import logging
import threading
import time

import redis
from flask_sse import Message, ServerSentEventsBlueprint

from .connection import channel_prefix, redis_client

log = logging.getLogger(__name__)
FREEZE_EVERY = 500  # new streams between two gc.freeze() calls


def _wakeup_flag():
    """A gevent Event under gunicorn's gevent worker (threading is patched there), else a
    threading.Event (tests, the Werkzeug dev server)."""
    try:
        from gevent import monkey

        if monkey.is_module_patched("threading"):
            from gevent.event import Event

            return Event()
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        pass
    return threading.Event()


def chunk(data: bytes) -> bytes:
    """HTTP/1.1 chunked framing, exactly as gunicorn frames what a WSGI app yields."""
    return b"%X\r\n%s\r\n" % (len(data), data)


HEARTBEAT = b": heartbeat\n\n"
HEARTBEAT_CHUNK = chunk(HEARTBEAT)
TICK_SLICE = 500  # streams served between two yields, so a broadcast is not held up by a tick


class Subscription:
    """One open stream's inbox: (event id, bytes) pairs and a flag that wakes its writer.

    With `raw_socket` set (gunicorn, plain HTTP/1.1), the bytes are chunk-framed and the hub
    may send them itself while `direct` is true; otherwise they are plain SSE text that the
    stream yields to the WSGI server."""

    __slots__ = ("channels", "pending", "wakeup", "closed", "raw_socket", "direct", "skip_ids", "beat_due",
                 "leases")

    def __init__(self, channels: tuple[str, ...], raw_socket=None):
        self.channels = channels
        # A plain list: in direct mode most streams never queue anything, and an empty deque
        # costs ~600 bytes per stream against 56 for a list.
        self.pending: list[tuple[str | None, bytes]] = []
        self.wakeup = _wakeup_flag()
        self.closed = False
        self.raw_socket = raw_socket
        self.direct = False  # the stream's own greenlet holds the socket until it says otherwise
        self.skip_ids: frozenset[str] | set[str] = frozenset()  # ids already sent by the replay
        self.beat_due = False  # set by the hub's heartbeat ticker
        # Redis leases (sorted-set key, member, ttl) the ticker renews: stream cap, presence.
        self.leases: tuple[tuple[str, str, float], ...] = ()

    def push(self, item: tuple[str | None, bytes]) -> None:
        self.pending.append(item)
        self.wakeup.set()

    def deliver(self, event_id: str | None, text: bytes, framed: bytes) -> None:
        if self.skip_ids and event_id in self.skip_ids:
            return
        if self.raw_socket is None:
            self.push((event_id, text))
            return
        self._send(event_id, framed)

    def heartbeat(self) -> None:
        """A comment that keeps proxies from closing the stream and finds pages that vanished."""
        if self.raw_socket is None:
            self.beat_due = True
            self.wakeup.set()
        else:
            self._send(None, HEARTBEAT_CHUNK)

    def _send(self, event_id: str | None, framed: bytes) -> None:
        if self.direct and not self.pending:
            try:
                sent = self.raw_socket.send(framed)
            except BlockingIOError:
                sent = 0
            except OSError:  # the page is gone
                self.close()
                return
            if sent == len(framed):
                return
            framed = framed[sent:]
            self.direct = False  # the rest must go first: the stream's greenlet writes it
        self.push((event_id, framed))

    def close(self) -> None:
        """Ask the stream to end (shutdown, or a Redis reconnect that may have lost messages)."""
        self.closed = True
        self.wakeup.set()


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
        self._heartbeat = 15.0
        self._pool_size = 2
        self.stopping = False
        self.connected = threading.Event()
        self.reconnects = 0
        self._new_since_freeze = 0

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

    # --- subscribing -------------------------------------------------------------------
    def subscribe(self, channels: list[str] | tuple[str, ...], raw_socket=None) -> Subscription:
        self._ensure_listener()
        subscription = Subscription(tuple(channels), raw_socket)
        with self._lock:
            for channel in subscription.channels:
                self._subscribers.setdefault(channel, set()).add(subscription)
            self._new_since_freeze += 1
            if self._new_since_freeze >= FREEZE_EVERY:
                self._new_since_freeze = 0
                # Long-lived stream objects out of the collector's sight: a full collection
                # would otherwise walk every open stream (~12 ms per 1,000) in the middle of a
                # broadcast. Young garbage is collected first so it is not frozen with them.
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

    def open_streams(self) -> int:
        with self._lock:
            return len({s for streams in self._subscribers.values() for s in streams})

    def messages(self, channel="public"):
        """flask-sse's generator API on top of the shared subscriber."""
        subscription = self.subscribe([channel])
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
    def configure(self, redis_url: str | None, prefix: str, heartbeat: float = 15.0, pool_size: int = 2) -> None:
        self._redis_url, self._prefix, self._heartbeat, self._pool_size = redis_url, prefix, heartbeat, pool_size

    def _ensure_listener(self) -> None:
        if self._listener is not None:  # it runs until shutdown; _listen never lets an error out
            return
        with self._lock:
            if self._listener is not None:
                return
            if not self._redis_url:
                raise RuntimeError("REDIS_URL is not configured: live updates need Redis.")
            self._listener = threading.Thread(target=self._listen, name="sse-hub", daemon=True)
            self._listener.start()
            threading.Thread(target=self._tick, name="sse-heartbeat", daemon=True).start()
        # Don't let the first stream miss what is published right after it subscribes.
        self.connected.wait(5)

    def _listen(self) -> None:
        backoff, first = 0.2, True
        while not self.stopping:
            pubsub = None
            try:
                client = redis.Redis.from_url(self._redis_url, socket_connect_timeout=5, health_check_interval=15,
                                              client_name="fittribe-hub")
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(self._prefix + "*")
                if not first:
                    # Messages published while we were away are in the outbox: end the streams so
                    # browsers reconnect with Last-Event-ID and get them replayed.
                    self.reconnects += 1
                    self._close_all()
                    log.warning("SSE hub reconnected to Redis; streams asked to resume from replay")
                first, backoff = False, 0.2
                self.connected.set()
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
            time.sleep(self._heartbeat)
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
            message = Message(**fields)
        except (ValueError, TypeError):
            log.warning("Ignoring malformed SSE message on %s", channel)
            return
        event_id = None if message.id is None else str(message.id)
        text = str(message).encode()
        framed = chunk(text)
        for subscription in tuple(streams):  # a copy: streams come and go while we deliver
            subscription.deliver(event_id, text, framed)

    def _close_all(self) -> None:
        with self._lock:
            everyone = {s for streams in self._subscribers.values() for s in streams}
        for subscription in everyone:
            subscription.close()


sse = RealtimeHub("sse", __name__)
