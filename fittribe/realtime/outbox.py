"""The outbox: services record events in their own transaction; after commit they are
published to Redis with their database id; the worker relays whatever was left behind and
prunes old rows; reconnecting streams replay from here."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import redis
from flask import current_app, render_template
from flask_sse import Message
from sqlalchemy import delete, event as sa_event, exists, func, select, update
from sqlalchemy.orm import Session

from ..extensions import db
from ..models import Event
from ..ops.metrics import EVENTS_PUBLISHED
from .connection import channel_prefix, redis_client

log = logging.getLogger(__name__)
PENDING_KEY = "outbox_pending"
COMMITTED_KEY = "outbox_committed"


def record(channel: str, *, partial: str | None = None, context: dict | None = None,
           type: str | None = None, data: str = "") -> Event:
    """Add an event to the current transaction. With `partial` it is an unnamed message whose
    HTML (out-of-band fragments) is the same for every subscriber; with `type` it is a named
    event that lets each page re-fetch its own fragment."""
    payload = {"partial": partial, "context": context or {}} if partial else {"data": data}
    event = Event(channel=channel, type=type, payload=payload)
    db.session.add(event)
    return event


def render_data(payload: dict) -> str:
    if payload.get("partial"):
        return render_template(payload["partial"], **payload.get("context", {}))
    return payload.get("data", "")


def sse_message(event_id: int, type: str | None, payload: dict) -> Message:
    return Message(render_data(payload), type=type, id=event_id)


def publish(rows: list[tuple[int, str, str | None, dict]]) -> list[int]:
    """Publish (id, channel, type, payload) rows; return the ids that reached Redis."""
    client = redis_client()
    if client is None or not rows:
        return []
    published = []
    try:
        with client.pipeline(transaction=False) as pipe:
            for event_id, channel, type_, payload in rows:
                message = sse_message(event_id, type_, payload)
                pipe.publish(channel_prefix() + channel, json.dumps(message.to_dict()))
                published.append(event_id)
            pipe.execute()
    except (redis.RedisError, OSError) as error:
        log.warning("Outbox publish failed (%s); the relay will retry", error)
        return []
    for _, channel, _, _ in rows:
        EVENTS_PUBLISHED.labels(channel.split(":", 1)[0]).inc()  # user:42 -> user: few label values
    return published


def _mark_published(ids: list[int]) -> None:
    if ids:
        with db.engine.begin() as connection:
            connection.execute(update(Event).where(Event.id.in_(ids)).values(published_at=datetime.now(timezone.utc)))


# --- publish after commit -------------------------------------------------------------
@sa_event.listens_for(Session, "after_flush")
def _collect_new_events(session: Session, flush_context) -> None:
    rows = [(obj.id, obj.channel, obj.type, obj.payload) for obj in session.new if isinstance(obj, Event)]
    if rows:
        session.info.setdefault(PENDING_KEY, []).extend(rows)


@sa_event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if PENDING_KEY in session.info:
        session.info.setdefault(COMMITTED_KEY, []).extend(session.info.pop(PENDING_KEY))


@sa_event.listens_for(Session, "after_transaction_end")
def _publish_after_commit(session: Session, transaction) -> None:
    # Not in after_commit: the session still holds its pooled connection there, and marking the
    # rows needs another one; with every connection held by a session inside that hook, all of
    # them would wait for the pool. Here the session's connection is already back in the pool.
    if transaction.parent is None and COMMITTED_KEY in session.info and current_app:
        _mark_published(publish(session.info.pop(COMMITTED_KEY)))


@sa_event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction) -> None:
    session.info.pop(PENDING_KEY, None)


# --- the worker's jobs and replay ----------------------------------------------------
def relay_unpublished(older_than_seconds: float | None = None, batch: int = 500) -> int:
    """Publish events whose commit happened but whose publish did not (a crash in between, or
    Redis away). SKIP LOCKED lets several relays run without publishing a row twice."""
    older_than = older_than_seconds if older_than_seconds is not None else current_app.config["OUTBOX_RELAY_AFTER"]
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than)
    events = db.session.scalars(
        select(Event).where(Event.published_at.is_(None), Event.created_at <= cutoff)
        .order_by(Event.id).limit(batch).with_for_update(skip_locked=True)
    ).all()
    ids = publish([(e.id, e.channel, e.type, e.payload) for e in events])
    if ids:
        db.session.execute(update(Event).where(Event.id.in_(ids)).values(published_at=datetime.now(timezone.utc)))
    db.session.commit()
    return len(ids)


def prune(retention_hours: float | None = None) -> int:
    hours = retention_hours if retention_hours is not None else current_app.config["OUTBOX_RETENTION_HOURS"]
    cutoff = datetime.now(timezone.utc) - timedelta(hours=hours)
    result = db.session.execute(delete(Event).where(Event.created_at < cutoff, Event.published_at.is_not(None)))
    db.session.commit()
    return result.rowcount or 0


def events_after(last_id: int, channels: list[str], limit: int = 1000) -> list[Event]:
    return list(db.session.scalars(
        select(Event).where(Event.id > last_id, Event.channel.in_(channels)).order_by(Event.id).limit(limit)
    ))


def latest_id() -> int:
    return db.session.scalar(select(func.max(Event.id))) or 0


def pruned(event_id: int) -> bool:
    """The page's last event is gone from the outbox though later ones exist: pruning took it,
    and maybe some of what the page missed after it."""
    still_there, newest = db.session.execute(
        select(exists().where(Event.id == event_id), func.max(Event.id))).one()
    return not still_there and event_id < (newest or 0)
