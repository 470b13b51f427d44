"""The outbox: services record events in their own transaction; after commit each event gets a
position (its SSE id) and is published to Redis; the worker relays whatever was left behind and
prunes old rows; reconnecting streams replay from here.

Positions are ordered by publication, not by when a transaction wrote its row: every publisher
takes one PostgreSQL advisory lock, numbers the committed events it publishes from the single
`event_cursor` row, commits, PUBLISHes and marks them, then lets go. So when a page has seen
position N, every event numbered below N is committed and was published before it, and
"replay what is above Last-Event-ID" cannot skip one. Numbering happens only for committed rows
and only once (`position IS NULL` under the lock), so the web process and the worker relaying
the same row publish it once. A publisher that dies between numbering and publishing leaves
numbered, unpublished rows: the next one publishes those first, in order."""
from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta, timezone

import redis
from flask import Flask, current_app, render_template
from flask_sse import Message
from sqlalchemy import delete, event as sa_event, func, select, text, update
from sqlalchemy.orm import Session

from ..extensions import db
from ..models import Event, EventCursor
from ..ops.metrics import EVENTS_PUBLISHED
from .connection import channel_prefix, redis_client

log = logging.getLogger(__name__)
PENDING_KEY = "outbox_pending"
COMMITTED_KEY = "outbox_committed"
PUBLISH_LOCK = 0x4654_4F42  # pg advisory lock key every publisher takes ("FTOB")

# Numbers the given committed events, oldest first, after the cursor's last position.
_NUMBER = text("""
WITH todo AS (
    SELECT id, row_number() OVER (ORDER BY id) AS n FROM events
    WHERE id = ANY(:ids) AND position IS NULL
), bumped AS (  -- (the row is made if missing: an emptied database starts after its newest event)
    INSERT INTO event_cursor AS cursor (id, last_position)
    VALUES (1, (SELECT coalesce(max(position), 0) FROM events) + (SELECT count(*) FROM todo))
    ON CONFLICT (id) DO UPDATE SET last_position = cursor.last_position + (SELECT count(*) FROM todo)
    RETURNING last_position - (SELECT count(*) FROM todo) AS base
)
UPDATE events SET position = bumped.base + todo.n FROM todo, bumped WHERE events.id = todo.id
""")


def record(channel: str, *, partial: str | None = None, context: dict | None = None,
           type: str | None = None, data: str = "", fragment: str | None = None,
           key: int | str | None = None, spans: list[list[str]] | None = None) -> Event:
    """Add an event to the current transaction (services call it through realtime.live).

    - `fragment`/`key`: a live fragment of the registry; each worker's hub renders it once per
      viewer variant when it arrives and pushes it to its pages.
    - `partial`/`context`: an unnamed message whose HTML is rendered once, at publication.
    - `type`/`data`: a named event; pages that listen re-fetch their own fragment."""
    if fragment:
        # `change` names this change for render caches (positions restart only with an emptied outbox).
        payload = {"fragment": fragment, "key": key, "change": uuid.uuid4().hex}
        if spans:  # the times the change touched: a live push then carries only those parts
            payload["spans"] = spans
    elif partial:
        payload = {"partial": partial, "context": context or {}}
    else:
        payload = {"data": data}
    event = Event(channel=channel, type=type, payload=payload)
    db.session.add(event)
    return event


def render_data(payload: dict) -> str:
    if payload.get("partial"):
        return render_template(payload["partial"], **payload.get("context", {}))
    return payload.get("data", "")


def wire_message(position: int, type_: str | None, payload: dict) -> dict:
    """What goes to Redis: flask-sse's message fields, plus the fragment to render for a push."""
    if payload.get("fragment"):
        return {"data": "", "type": None, "id": position, "fragment": payload["fragment"], "key": payload.get("key"),
                "change": payload.get("change"), "spans": payload.get("spans")}
    return Message(render_data(payload), type=type_, id=position).to_dict()


def publish(rows: list[tuple[int, str, str | None, dict]]) -> list[int]:
    """PUBLISH (position, channel, type, payload) rows in one pipeline; the positions that
    reached Redis (all or none)."""
    client = redis_client()
    if client is None or not rows:
        return []
    try:
        with client.pipeline(transaction=False) as pipe:
            for position, channel, type_, payload in rows:
                pipe.publish(channel_prefix() + channel, json.dumps(wire_message(position, type_, payload)))
            pipe.execute()
    except (redis.RedisError, OSError) as error:
        log.warning("Outbox publish failed (%s); the relay will retry", error)
        return []
    for _, channel, _, _ in rows:
        EVENTS_PUBLISHED.labels(channel.split(":", 1)[0]).inc()  # user:42 -> user: few label values
    return [row[0] for row in rows]


def publish_events(event_ids: list[int], batch: int = 500) -> int:
    """Number the given committed events and publish them, after any numbered earlier and not
    yet published, all under the publishers' lock. Returns how many reached Redis."""
    with db.engine.connect() as connection:
        connection.execute(select(func.pg_advisory_lock(PUBLISH_LOCK)))
        try:
            if event_ids:
                connection.execute(_NUMBER, {"ids": list(event_ids)})
                connection.commit()  # numbered and visible to replays before anyone can see it live
            rows = connection.execute(
                select(Event.position, Event.channel, Event.type, Event.payload)
                .where(Event.published_at.is_(None), Event.position.is_not(None))
                .order_by(Event.position).limit(batch)).all()
            published = publish([tuple(row) for row in rows])
            if published:
                connection.execute(update(Event).where(Event.position.in_(published))
                                   .values(published_at=datetime.now(timezone.utc)))
            connection.commit()
            return len(published)
        finally:
            connection.rollback()
            connection.execute(select(func.pg_advisory_unlock(PUBLISH_LOCK)))
            connection.commit()


# --- publish after commit -------------------------------------------------------------
def _collect_new_events(session: Session, flush_context) -> None:
    ids = [obj.id for obj in session.new if isinstance(obj, Event)]
    if ids:
        session.info.setdefault(PENDING_KEY, []).extend(ids)


def _committed(session: Session) -> None:
    if PENDING_KEY in session.info:
        session.info.setdefault(COMMITTED_KEY, []).extend(session.info.pop(PENDING_KEY))


def _publish_after_commit(session: Session, transaction) -> None:
    # Not in after_commit: the session still holds its pooled connection there, and publishing
    # needs another one; with every connection held by a session inside that hook, all of
    # them would wait for the pool. Here the session's connection is already back in the pool.
    if transaction.parent is None and COMMITTED_KEY in session.info and current_app:
        ids = session.info.pop(COMMITTED_KEY)
        try:
            publish_events(ids)
        except Exception:  # the change is committed; the worker's relay publishes it later
            log.exception("Publishing events %s failed; the relay will retry", ids[:10])


def _forget_rolled_back(session: Session, previous_transaction) -> None:
    session.info.pop(PENDING_KEY, None)


_HOOKS = (("after_flush", _collect_new_events), ("after_commit", _committed),
          ("after_transaction_end", _publish_after_commit), ("after_soft_rollback", _forget_rolled_back))


def init_app(app: Flask) -> None:
    """Publish every session's events after it commits (SQLAlchemy session hooks)."""
    for name, hook in _HOOKS:
        if not sa_event.contains(Session, name, hook):
            sa_event.listen(Session, name, hook)


# --- the worker's jobs and replay ----------------------------------------------------
def relay_unpublished(older_than_seconds: float | None = None, batch: int = 500) -> int:
    """Publish events whose commit happened but whose publication did not (a crash in between,
    or Redis away): numbered ones first, then the oldest never numbered."""
    older_than = older_than_seconds if older_than_seconds is not None else current_app.config["OUTBOX_RELAY_AFTER"]
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than)
    ids = list(db.session.scalars(
        select(Event.id).where(Event.position.is_(None), Event.created_at <= cutoff).order_by(Event.id).limit(batch)))
    db.session.commit()
    return publish_events(ids, batch)


def prune(retention_hours: float | None = None) -> int:
    hours = retention_hours if retention_hours is not None else current_app.config["OUTBOX_RETENTION_HOURS"]
    cutoff = datetime.now(timezone.utc) - timedelta(hours=hours)
    result = db.session.execute(delete(Event).where(Event.created_at < cutoff, Event.published_at.is_not(None)))
    db.session.commit()
    return result.rowcount or 0


# What a reconnecting page missed, and whether pruning may have taken some of it, in one round
# trip: every page of a node that died runs this at once on the nodes left. The flags row is
# always there (LEFT JOIN), with no event when nothing came after `position`.
_REPLAY = text("""
SELECT flags.still_there, flags.newest, missed.position, missed.type, missed.payload
FROM (SELECT EXISTS (SELECT 1 FROM events WHERE position = :position) AS still_there,
             (SELECT max(position) FROM events) AS newest) AS flags
LEFT JOIN LATERAL (
    SELECT position, type, payload FROM events
    WHERE position > :position AND channel = ANY(:channels) ORDER BY position LIMIT :limit
) AS missed ON true
""")


def replay_after(position: int, channels: list[str], limit: int = 1000) -> tuple[list, bool]:
    """Numbered events of these channels after `position`, in order (published or about to be):
    rows with .position, .type and .payload; and whether the page's last event is gone from the
    outbox though later ones exist, so pruning may have taken some of what it missed."""
    rows = db.session.execute(_REPLAY, {"position": position, "channels": list(channels), "limit": limit}).all()
    still_there, newest = rows[0].still_there, rows[0].newest
    pruned = position > 0 and not still_there and position < (newest or 0)
    return [row for row in rows if row.position is not None], pruned


def latest_position() -> int:
    """The last position given out: a page rendered now has seen everything up to it."""
    cursor = select(EventCursor.last_position).where(EventCursor.id == 1).scalar_subquery()
    return db.session.scalar(select(func.coalesce(cursor, select(func.max(Event.position)).scalar_subquery(), 0)))
