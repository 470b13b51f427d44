"""Limits hit directly, without Flask-Limiter's per-request machinery (calendar feeds, stream
connects: hot paths that answer a refusal in their own plain words). They use the same `limits`
storage and key prefix (RATELIMIT_KEY_PREFIX) as Flask-Limiter's own limits and, like them
(RATELIMIT_IN_MEMORY_FALLBACK_ENABLED), count in this process's memory while Redis is down."""
from __future__ import annotations

from functools import cache

from flask import current_app
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from .extensions import limiter
from .realtime.connection import REDIS_ERRORS

_fallback = FixedWindowRateLimiter(MemoryStorage())


@cache
def _limits(spec: str):
    return parse_many(spec)


def hit(spec: str, *identifiers: str) -> bool:
    """Count one hit against every limit of `spec` ("10 per minute;50 per hour") for `identifiers`;
    False when one of them is exceeded."""
    config = current_app.config
    if not config.get("RATELIMIT_ENABLED", True):
        return True
    identifiers = (config["RATELIMIT_KEY_PREFIX"], *identifiers)
    try:
        return all(limiter.limiter.hit(item, *identifiers) for item in _limits(spec))
    except REDIS_ERRORS:
        return all(_fallback.hit(item, *identifiers) for item in _limits(spec))
