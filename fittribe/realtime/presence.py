"""Who is online, kept in Redis (never in process memory: any worker on any host may serve a
trainer's stream).

A trainer holds one lease per open stream (renewed by the stream's heartbeats) plus one for the
"available now" switch. Leases are members of a sorted set scored by their expiry time, so a
worker that dies simply stops renewing and its leases run out. The trainer is online while any
lease is unexpired; the change is announced on `public` through the outbox."""
from __future__ import annotations

import time

from flask import current_app

from ..extensions import db
from . import outbox
from .channels import PUBLIC
from .connection import redis_client

AVAILABLE_LEASE = "available-now"
TRACKED_KEY = "fittribe:presence:tracked"


def lease_key(trainer_id: int) -> str:
    return f"fittribe:presence:{trainer_id}"


def _set_lease(trainer_id: int, lease: str, ttl: float) -> bool:
    """Hold or renew a lease; True when the trainer was offline before it."""
    client = redis_client()
    now = time.time()
    with client.pipeline() as pipe:
        pipe.zcount(lease_key(trainer_id), now, "+inf")
        pipe.zadd(lease_key(trainer_id), {lease: now + ttl})
        pipe.sadd(TRACKED_KEY, trainer_id)
        was_online, *_ = pipe.execute()
    return was_online == 0


def is_online(trainer_id: int) -> bool:
    return trainer_id in online_among([trainer_id])


def online_among(trainer_ids: list[int]) -> set[int]:
    client = redis_client()
    if client is None or not trainer_ids:
        return set()
    now = time.time()
    with client.pipeline(transaction=False) as pipe:
        for trainer_id in trainer_ids:
            pipe.zcount(lease_key(trainer_id), now, "+inf")
        counts = pipe.execute()
    return {trainer_id for trainer_id, count in zip(trainer_ids, counts) if count}


def available_until(trainer_id: int) -> float | None:
    client = redis_client()
    expiry = client.zscore(lease_key(trainer_id), AVAILABLE_LEASE) if client is not None else None
    return expiry if expiry and expiry > time.time() else None


def _announce(trainer_id: int, online: bool) -> None:
    outbox.record(PUBLIC, partial="partials/presence_push.html",
                  context={"trainer_id": trainer_id, "online": online})
    db.session.commit()


def stream_opened(trainer_id: int, stream_id: str) -> None:
    if _set_lease(trainer_id, stream_id, current_app.config["PRESENCE_TTL"]):
        _announce(trainer_id, True)


def stream_closed(client, trainer_id: int, stream_id: str, grace: float) -> None:
    # Not removed at once: a trainer moving to another page reconnects within a second and
    # should not flicker offline. The sweeper ends the lease after the grace period.
    client.zadd(lease_key(trainer_id), {stream_id: time.time() + grace}, xx=True)


def set_available(trainer_id: int, available: bool) -> None:
    if available:
        if _set_lease(trainer_id, AVAILABLE_LEASE, current_app.config["AVAILABLE_NOW_HOURS"] * 3600):
            _announce(trainer_id, True)
        return
    client = redis_client()
    client.zrem(lease_key(trainer_id), AVAILABLE_LEASE)
    if client.zcount(lease_key(trainer_id), time.time(), "+inf") == 0:
        _announce(trainer_id, False)


def sweep() -> int:
    """Expire run-out leases; announce trainers who went offline. Only the caller whose
    ZREMRANGEBYSCORE removed the last lease announces, so several workers can sweep."""
    client = redis_client()
    now = time.time()
    went_offline = 0
    for raw_id in client.smembers(TRACKED_KEY):
        trainer_id = int(raw_id)
        with client.pipeline() as pipe:
            pipe.zremrangebyscore(lease_key(trainer_id), "-inf", now)
            pipe.zcard(lease_key(trainer_id))
            removed, remaining = pipe.execute()
        if remaining == 0:
            client.srem(TRACKED_KEY, trainer_id)
        if removed and remaining == 0:
            _announce(trainer_id, False)
            went_offline += 1
    return went_offline
