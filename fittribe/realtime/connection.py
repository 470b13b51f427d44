"""One Redis client per process for publishing and presence, on a small blocking pool: a burst
of thousands of stream connects waits for a connection instead of opening thousands. Every key the
app stores is named by `redis_key`, under the deployment's REDIS_KEY_PREFIX, so two deployments (or
test runs) sharing one Redis never read each other's presence, leases or counters."""
from __future__ import annotations

import redis
from flask import current_app

# What a Redis outage raises: its own errors, and socket errors from a connection cut mid-way.
REDIS_ERRORS = (redis.RedisError, OSError)
_clients: dict[tuple[str, int], redis.Redis] = {}


def redis_client(url: str | None = None, max_connections: int | None = None) -> redis.Redis | None:
    url = url or current_app.config.get("REDIS_URL")
    if not url:
        return None
    size = max_connections or current_app.config.get("REDIS_POOL_SIZE", 2)
    key = (url, size)
    client = _clients.get(key)
    if client is None:
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=size, timeout=10,
                                                     socket_connect_timeout=5, health_check_interval=30,
                                                     client_name="fittribe")
        client = _clients[key] = redis.Redis(connection_pool=pool)
    return client


def channel_prefix() -> str:
    return current_app.config["SSE_CHANNEL_PREFIX"]


def redis_key(*parts: object) -> str:
    """The app's Redis key made of `parts`, e.g. redis_key("presence", 7) -> "<prefix>presence:7"."""
    return current_app.config["REDIS_KEY_PREFIX"] + ":".join(str(part) for part in parts)
