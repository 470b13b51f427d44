"""The time the session-status rules see. Tests of the live status (starting soon → live →
completed) move it forward through Redis, so the live server and the test agree on "now";
outside tests (CLOCK_ADJUSTABLE off, always in production) it is simply the system clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import current_app

from .realtime.connection import redis_client, redis_key


def _offset_key() -> str:
    return redis_key("clock-offset-seconds")


def now() -> datetime:
    real = datetime.now(timezone.utc)
    if not current_app.config.get("CLOCK_ADJUSTABLE"):
        return real
    offset = redis_client().get(_offset_key())
    return real + timedelta(seconds=float(offset)) if offset else real


def set_offset(offset: timedelta) -> None:
    """Tests only: every process of this app now sees the system time plus `offset`."""
    assert current_app.config.get("CLOCK_ADJUSTABLE"), "the clock is fixed outside tests"
    redis_client().set(_offset_key(), offset.total_seconds())
