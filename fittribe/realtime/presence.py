"""Who is online, kept in Redis (never in process memory: any worker on any host may serve a
trainer's stream).

A trainer is online ("Online now" to members) while both hold:
* her "available now" switch is on: she is in the `available` sorted set, scored by when the
  switch runs out (AVAILABLE_NOW_HOURS);
* a page of hers holds a live stream: one lease per stream in `lease_key(trainer)`, scored by its
  expiry, renewed by each heartbeat (PRESENCE_TTL, 1.5 heartbeats) and cut to PRESENCE_GRACE when
  the stream closes (a trainer moving to another page does not flicker offline).
Either ending makes her offline. `shown` holds the trainers last announced online: one Lua script
compares the truth with it and flips it atomically, so of several workers, sweeps and requests
exactly one announces each real change (on `public`, through the outbox). With Redis unreachable
a trainer's status is unknown (None) and pages show no badge."""
from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app

from ..extensions import db
from . import outbox
from .channels import PUBLIC
from .connection import REDIS_ERRORS, redis_client, redis_key

SWEEP_SECONDS = 1.0  # how often the worker sweeps (fittribe/worker.py): well within a heartbeat

# KEYS: available, shown, tracked. ARGV: now, lease key prefix, then the trainer ids to refresh
# (none: every tracked trainer). Returns the flips as [id, 1|0, id, 1|0, ...].
REFRESH = """
local now, prefix, ids = tonumber(ARGV[1]), ARGV[2], {}
for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then ids = redis.call('SMEMBERS', KEYS[3]) end
local flips = {}
for _, id in ipairs(ids) do
  redis.call('ZREMRANGEBYSCORE', prefix .. id, '-inf', now)
  local connected = redis.call('ZCARD', prefix .. id) > 0
  local available = tonumber(redis.call('ZSCORE', KEYS[1], id) or '0') > now
  if not available then redis.call('ZREM', KEYS[1], id) end
  local online = connected and available
  if online ~= (redis.call('SISMEMBER', KEYS[2], id) == 1) then
    if online then redis.call('SADD', KEYS[2], id) else redis.call('SREM', KEYS[2], id) end
    flips[#flips + 1] = id
    flips[#flips + 1] = online and 1 or 0
  end
  if not (connected or available) then redis.call('SREM', KEYS[3], id) end
end
return flips
"""


def offline_within() -> float:
    """The longest a trainer still shows online after her last page closed or its server stopped,
    until the sweep that announces it. A closed page is noticed when a heartbeat to it fails: the
    first write after the close still succeeds (the browser answers it with a reset), the next one
    fails; then PRESENCE_GRACE. A stream no longer renewed runs out PRESENCE_TTL after its last
    heartbeat."""
    config = current_app.config
    closed = 2 * config["SSE_HEARTBEAT_SECONDS"] + config["PRESENCE_GRACE"]
    return max(closed, config["PRESENCE_TTL"]) + SWEEP_SECONDS


def lease_key(trainer_id: int) -> str:
    """The sorted set of one trainer's stream leases (stream id -> expiry)."""
    return redis_key("presence", "leases", trainer_id)


def available_key() -> str:
    """Trainers whose switch is on (trainer id -> when it runs out)."""
    return redis_key("presence", "available")


def shown_key() -> str:
    """The trainers members were last told are online."""
    return redis_key("presence", "shown")


def tracked_key() -> str:
    """Trainers with a lease or the switch on: the ones a sweep looks at."""
    return redis_key("presence", "tracked")


def _refresh(*trainer_ids: int) -> int:
    """Compare each trainer's truth with what members were shown; announce the flips."""
    flips = redis_client().register_script(REFRESH)(keys=[available_key(), shown_key(), tracked_key()],
                                                    args=[time.time(), lease_key(""), *trainer_ids])
    for trainer_id, online in zip(flips[::2], flips[1::2]):
        outbox.record(PUBLIC, partial="partials/presence_push.html",
                      context={"trainer_id": int(trainer_id), "online": bool(online)})
    if flips:
        db.session.commit()
    return len(flips) // 2


@dataclass(frozen=True)
class Status:
    available_until: float | None  # when her switch runs out; None while it is off
    online: bool  # what members see


def statuses(trainer_ids: list[int]) -> list[Status] | None:
    """The trainers' presence as members see it, in one round trip; None when it can't be read
    (Redis unreachable)."""
    client = redis_client()
    if client is None:
        return None
    now = time.time()
    try:
        with client.pipeline(transaction=False) as pipe:
            for trainer_id in trainer_ids:
                pipe.zscore(available_key(), trainer_id)
                pipe.zcount(lease_key(trainer_id), now, "+inf")
            replies = pipe.execute()
    except REDIS_ERRORS:
        return None
    availability = [until if until and until > now else None for until in replies[::2]]
    return [Status(until, bool(until and connected)) for until, connected in zip(availability, replies[1::2])]


def status(trainer_id: int) -> Status | None:
    found = statuses([trainer_id])
    return None if found is None else found[0]


def online_among(trainer_ids: list[int]) -> set[int] | None:
    """The trainers of `trainer_ids` members see online now; None when that is unknown."""
    found = statuses(trainer_ids)
    return None if found is None else {trainer_id for trainer_id, s in zip(trainer_ids, found) if s.online}


def stream_opened(trainer_id: int, stream_id: str) -> None:
    client = redis_client()
    with client.pipeline() as pipe:
        pipe.zadd(lease_key(trainer_id), {stream_id: time.time() + current_app.config["PRESENCE_TTL"]})
        pipe.sadd(tracked_key(), trainer_id)
        pipe.execute()
    _refresh(trainer_id)


def stream_closed(client, key: str, stream_id: str, grace: float) -> None:
    """Runs without the app: `key` is the trainer's lease_key(), named while the stream opened.
    The lease is not removed at once: a trainer moving to another page reconnects within a second
    and should not flicker offline. The sweeper ends the lease after the grace period."""
    client.zadd(key, {stream_id: time.time() + grace}, xx=True)


def set_available(trainer_id: int, available: bool) -> None:
    """The "available now" switch. Members see the change at once if she has a page open."""
    client = redis_client()
    with client.pipeline() as pipe:
        if available:
            until = time.time() + current_app.config["AVAILABLE_NOW_HOURS"] * 3600
            pipe.zadd(available_key(), {trainer_id: until})
            pipe.sadd(tracked_key(), trainer_id)
        else:
            pipe.zrem(available_key(), trainer_id)
        pipe.execute()
    _refresh(trainer_id)


def sweep() -> int:
    """Worker job: end run-out leases and switches, announce the trainers whose status flipped.
    Several workers may sweep at once: the script announces each flip to one of them."""
    return _refresh()
