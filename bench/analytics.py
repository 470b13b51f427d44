"""Admin analytics benchmark: the analytics page and its live fragments on 100,000 bookings.

Run from the project root:

    .venv/bin/python bench/analytics.py        # or: make bench; about a minute
    .venv/bin/python bench/analytics.py --explain   # also EXPLAIN ANALYZE every statement of a page

What it does, cleaned up afterwards (also on error, Ctrl-C and SIGTERM):

1. creates a throwaway database `fittribe_bench_<pid>_<hex>` on the server of BENCH_DATABASE_URL,
   builds it with the app's Alembic migrations (flask_migrate.upgrade()), seeds the demo accounts,
   `--trainers` (10,000) bulk trainers (fittribe.seed.seed_bulk_trainers), then in bulk SQL
   (INSERT ... SELECT generate_series, seconds): `--members` (20,000) members, `--bookings` (100,000)
   bookings created over the last 90 days (55% completed, 12% confirmed, 10% cancelled, 15% expired,
   4% no-show, 4% held; 3% in EUR) and their payments (one per paid booking, 70% of cancelled ones
   refunded within 3 days, failed attempts on 10% of expired holds), sign-ups spread over 120 days,
   then VACUUM ANALYZE;
2. claims an empty Redis db number on BENCH_REDIS_URL (flushed at the end) and fills it with
   `--streams` (2,000) open-stream leases and 300 online trainers, so "Live now" reads real keys;
3. measures in-process with Flask's test client, logged in as the demo admin (the whole WSGI
   request: routing, Flask-Login, every query, Redis, template rendering; no network; the test
   client asks for no compression): `--requests` (200) sequential requests each of the full page (default period: the
   last 30 days), the live figures fragment (as htmx re-fetches it on "metrics-changed"), the charts
   fragment, and the full page for the last 90 days, after `--warmup` (20) requests;
4. prints p50/p90/p99/max per request, the SQL time and statement count per request, the response
   sizes (raw and gzip), PASS/FAIL per target and one JSON line; exit code 1 when a target is missed,
   2 when the benchmark could not run.

Targets: analytics page p50 <= 100 ms; each live fragment (figures, charts) <= 10 KB (10,000 bytes,
uncompressed).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import secrets
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # fittribe and config, when run as `python bench/analytics.py`

# The database, Redis, percentile and table helpers of the search benchmark (this directory).
from search import (BenchError, cleanup_on_sigterm, empty_redis_db, log, machine_info,  # noqa: E402
                    percentile, print_table, psycopg_url, rounded, run_as_script, throwaway_database)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
TARGET_PAGE_P50_MS = 100.0
TARGET_FRAGMENT_BYTES = 10_000  # each live fragment (figures, charts), uncompressed
HTMX = {"HX-Request": "true", "HX-Request-Type": "partial"}


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

MEMBERS_SQL = """
INSERT INTO users (email, password_hash, name, role, time_zone, is_suspended, created_at)
SELECT 'bench-member-' || n || '@fittribe.example', :hash, 'Member ' || n, 'member', 'UTC', false,
       now() - random() * interval '120 days'
FROM generate_series(1, :members) AS n
"""

# Trainer and member are picked by position; statuses by one random draw. Bookings that occupy
# time (held, confirmed) get a start no other active booking of their trainer has (the k-th
# booking of a trainer starts on day k of a future window), so the exclusion constraint is met.
BOOKINGS_SQL = """
WITH t AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(price_cents ORDER BY id) AS prices
           FROM trainer_profiles WHERE slug LIKE 'bulk-%'),
     m AS (SELECT array_agg(id ORDER BY id) AS ids FROM users WHERE role = 'member'),
     g AS (SELECT n, (CASE WHEN r < 0.55 THEN 'completed' WHEN r < 0.67 THEN 'confirmed'
                           WHEN r < 0.77 THEN 'cancelled' WHEN r < 0.92 THEN 'expired'
                           WHEN r < 0.96 THEN 'no_show' ELSE 'held' END)::booking_status AS status,
                  now() - c * interval '90 days' AS created
           FROM (SELECT n, random() AS r, random() AS c FROM generate_series(0, :bookings - 1) AS n) AS draws)
INSERT INTO bookings (trainer_id, member_id, starts_at, ends_at, status, hold_expires_at, price_cents, currency,
                      created_at)
SELECT t.ids[1 + n % cardinality(t.ids)], m.ids[1 + (n * 7919) % cardinality(m.ids)], s.starts,
       s.starts + interval '1 hour', g.status,
       CASE WHEN g.status = 'held' THEN now() + interval '10 minutes' END,
       t.prices[1 + n % cardinality(t.ids)], CASE WHEN n % 33 = 0 THEN 'EUR' ELSE 'USD' END, g.created
FROM g CROSS JOIN t CROSS JOIN m
CROSS JOIN LATERAL (SELECT CASE WHEN g.status IN ('held', 'confirmed')
                                THEN date_trunc('hour', now()) + interval '30 days'
                                     + (n / cardinality(t.ids)) * interval '1 day'
                                ELSE g.created + interval '2 days' END AS starts) AS s
"""

PAYMENTS_SQL = [
    """INSERT INTO payments (booking_id, provider, provider_ref, amount_cents, currency, status, created_at)
       SELECT id, 'simulated', 'pi_bench_' || id, price_cents, currency,
              (CASE WHEN status = 'cancelled' AND random() < 0.7 THEN 'refunded' ELSE 'succeeded' END)::payment_status,
              least(now(), created_at + random() * interval '10 minutes')
       FROM bookings WHERE status IN ('confirmed', 'completed', 'no_show', 'cancelled')""",
    """UPDATE payments SET refunded_at = least(now(), created_at + random() * interval '3 days')
       WHERE status = 'refunded'""",
    """INSERT INTO payments (booking_id, provider, provider_ref, amount_cents, currency, status, created_at)
       SELECT id, 'simulated', 'pi_bench_failed_' || id, price_cents, currency, 'failed', created_at
       FROM bookings WHERE status = 'expired' AND random() < 0.1""",
    "UPDATE users SET created_at = now() - random() * interval '120 days' WHERE email LIKE 'bulk-%'",
]


def make_app(db_url: str, redis_url: str):
    from fittribe import create_app

    logging.getLogger("fittribe.request").setLevel(logging.WARNING)  # no access-log line per request
    return create_app(
        "development",
        SQLALCHEMY_DATABASE_URI=db_url.replace("postgresql://", "postgresql+psycopg://", 1),
        REDIS_URL=redis_url,
        RATELIMIT_STORAGE_URI="memory://",
        SSE_CHANNEL_PREFIX=f"fittribe-bench-{os.getpid()}-{secrets.token_hex(3)}:",
    )


def seed(app, db_url: str, trainers: int, members: int, bookings: int) -> dict:
    from sqlalchemy import text

    from fittribe.extensions import db
    from fittribe.seed import demo_password_hash, seed_bulk_trainers, seed_demo

    timings = {}
    with app.app_context():
        started = time.perf_counter()
        seed_demo()
        seed_bulk_trainers(trainers)
        timings["trainers_s"] = time.perf_counter() - started
        started = time.perf_counter()
        db.session.execute(text("SELECT setseed(0.42)"))
        db.session.execute(text(MEMBERS_SQL), {"hash": demo_password_hash(), "members": members})
        db.session.execute(text(BOOKINGS_SQL), {"bookings": bookings})
        for statement in PAYMENTS_SQL:
            db.session.execute(text(statement))
        db.session.commit()
        timings["bookings_and_payments_s"] = time.perf_counter() - started
        db.engine.dispose()
    with psycopg.connect(db_url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        timings["vacuum_analyze_s"] = time.perf_counter() - started
        counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                  for table in ("users", "trainer_profiles", "bookings", "payments")}
        counts["payments_by_status"] = dict(conn.execute(
            "SELECT status::text, count(*) FROM payments GROUP BY 1 ORDER BY 1").fetchall())
    return {"counts": counts, "timings": timings}


def fill_redis(app, streams: int, online: int) -> None:
    """Open-stream leases (one key per client, as the stream cap keeps them) and online trainers."""
    from sqlalchemy import select

    from fittribe.extensions import db
    from fittribe.models import TrainerProfile
    from fittribe.realtime import presence
    from fittribe.realtime.connection import redis_client, redis_key

    with app.app_context():
        client = redis_client()
        expiry = time.time() + 3600
        with client.pipeline(transaction=False) as pipe:
            for n in range(streams):
                pipe.zadd(redis_key("streams", f"ip:10.{n // 65536}.{n // 256 % 256}.{n % 256}"), {f"s{n}": expiry})
            for trainer_id in db.session.scalars(select(TrainerProfile.id).order_by(TrainerProfile.id).limit(online)):
                pipe.zadd(presence.lease_key(trainer_id), {"bench": expiry})
                pipe.zadd(presence.available_key(), {trainer_id: expiry})
                pipe.sadd(presence.tracked_key(), trainer_id)
            pipe.execute()
        presence.sweep()  # members are shown them online
        db.session.remove()


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------

@dataclass
class Scenario:
    name: str
    path: str
    headers: dict = field(default_factory=dict)
    total_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    size: int = 0
    gzip_size: int = 0

    def report(self) -> dict:
        return {"path": self.path, "requests": len(self.total_ms),
                "ms": {p: percentile(self.total_ms, p) for p in (50, 90, 99, 100)},
                "sql_ms_p50": percentile(self.sql_ms, 50), "statements": max(self.statements),
                "bytes": self.size, "gzip_bytes": self.gzip_size}


class SqlTimer:
    """Time and count the statements of each request (SQLAlchemy cursor events). The figures run
    on two connections at once, so the sum can exceed the request's own time."""

    def __init__(self, engine):
        self.engine, self.ms, self.count, self.captured = engine, 0.0, 0, None
        self._lock = threading.Lock()

    def __enter__(self):
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc):
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    def reset(self, capture: bool = False) -> None:
        self.ms, self.count, self.captured = 0.0, 0, [] if capture else None

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = time.perf_counter()
        if self.captured is not None:
            with self._lock:
                self.captured.append((statement, parameters))

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        elapsed = (time.perf_counter() - conn.info.pop("bench_started")) * 1000
        with self._lock:
            self.ms += elapsed
            self.count += 1


def log_in(client, app) -> None:
    from sqlalchemy import select

    from fittribe.extensions import db
    from fittribe.models import User

    with app.app_context():
        admin_id = db.session.scalar(select(User.id).where(User.email == "admin@fittribe.example"))
        db.session.remove()
    with client.session_transaction() as session:  # what Flask-Login stores after a login
        session["_user_id"] = str(admin_id)
        session["_fresh"] = True


def run(app, scenarios: list[Scenario], requests: int, warmup: int) -> None:
    from fittribe.extensions import db

    client = app.test_client()
    log_in(client, app)
    with app.app_context():
        engine = db.engine
    with SqlTimer(engine) as timer:
        for scenario in scenarios:
            for n in range(warmup + requests):
                timer.reset()
                started = time.perf_counter()
                response = client.get(scenario.path, headers=scenario.headers)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise BenchError(f"{scenario.path} answered {response.status_code}")
                if n >= warmup:
                    scenario.total_ms.append(elapsed)
                    scenario.sql_ms.append(timer.ms)
                    scenario.statements.append(timer.count)
            body = response.get_data()
            scenario.size, scenario.gzip_size = len(body), len(gzip.compress(body, 6))
            log(f"{scenario.name}: p50 {percentile(scenario.total_ms, 50):.1f} ms")


def explain(app, path: str) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) every statement one request of `path` sends."""
    from fittribe.extensions import db

    client = app.test_client()
    log_in(client, app)
    with app.app_context():
        engine = db.engine
    with SqlTimer(engine) as timer:
        timer.reset(capture=True)
        client.get(path)
        captured = timer.captured
    plans = []
    with engine.connect() as conn:
        for statement, parameters in captured:
            rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).all()
            plan = [row[0] for row in rows]
            execution = next((line for line in plan if line.startswith("Execution Time")), "")
            plans.append({"statement": " ".join(statement.split())[:110], "plan": plan,
                          "execution_ms": float(execution.split(":")[1].split()[0]) if execution else None})
    return plans


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--trainers", type=int, default=10_000, help="bulk trainers to seed")
    parser.add_argument("--members", type=int, default=20_000, help="members to seed")
    parser.add_argument("--bookings", type=int, default=100_000, help="bookings over the last 90 days")
    parser.add_argument("--streams", type=int, default=2_000, help="open-stream leases put in Redis")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per scenario")
    parser.add_argument("--warmup", type=int, default=20, help="requests per scenario before measuring")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of every statement")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    args = parser.parse_args(argv)
    if min(args.trainers, args.members, args.bookings, args.requests) < 1:
        parser.error("--trainers, --members, --bookings and --requests must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    cleanup_on_sigterm()
    result: dict = {"benchmark": "fittribe-analytics", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        result["machine"] = machine_info(psycopg_url(args.database_url))
        with throwaway_database(args.database_url) as (_, db_url), empty_redis_db(args.redis_url) as redis_url:
            from flask_migrate import upgrade

            app = make_app(db_url, redis_url)
            with app.app_context():
                upgrade()
            log("migrated; seeding")
            result["data"] = seed(app, db_url, args.trainers, args.members, args.bookings)
            fill_redis(app, args.streams, 300)
            log(f"seeded: {result['data']['counts']}")

            from datetime import datetime, timedelta, timezone

            today = datetime.now(timezone.utc).date()  # the demo admin's time zone is UTC
            ninety = f"?from={today - timedelta(days=89)}&to={today}"
            scenarios = [
                Scenario("page, last 30 days", "/admin/analytics"),
                Scenario("live figures fragment", "/admin/analytics/figures", HTMX),
                Scenario("charts fragment", "/admin/analytics/charts", HTMX),
                Scenario("page, last 90 days", "/admin/analytics" + ninety),
            ]
            run(app, scenarios, args.requests, args.warmup)
            plans = explain(app, "/admin/analytics") if args.explain else []
            with app.app_context():
                from fittribe.extensions import db

                db.engine.dispose()  # before DROP DATABASE
        result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    except (BenchError, psycopg.Error) as error:
        log(f"error: {error}")
        return 2

    m, data = result["machine"], result["data"]
    print(f"\nFitTribe admin analytics — {m['nproc']} CPU(s), {m['cpu_model']}, PostgreSQL {m['postgresql']}, "
          f"Python {m['python']}")
    print(f"Load average (1/5/15 min): {' '.join(map(str, m['loadavg_before']))} before, "
          f"{' '.join(map(str, m['loadavg_after']))} after")
    counts = data["counts"]
    print(f"Data: {counts['bookings']:,} bookings, {counts['payments']:,} payments {counts['payments_by_status']}, "
          f"{counts['trainer_profiles']:,} trainers, {counts['users']:,} users; seeded in "
          f"{data['timings']['trainers_s']:.1f} s (trainers) + {data['timings']['bookings_and_payments_s']:.1f} s "
          f"(members, bookings, payments) + {data['timings']['vacuum_analyze_s']:.1f} s (VACUUM ANALYZE)")
    print(f"\nIn-process Flask test client, logged in as the admin; {args.requests} sequential requests per row "
          f"after {args.warmup} warm-up (ms)")
    rows = []
    for scenario in scenarios:
        r = result[scenario.name] = scenario.report()
        rows.append([scenario.name, f"{r['ms'][50]:.1f}", f"{r['ms'][90]:.1f}", f"{r['ms'][99]:.1f}",
                     f"{r['ms'][100]:.1f}", f"{r['sql_ms_p50']:.1f}", r["statements"], f"{r['bytes']:,}",
                     f"{r['gzip_bytes']:,}"])
    print_table(["request", "p50", "p90", "p99", "max", "SQL p50 (sum)", "statements", "bytes", "gzip"], rows)
    if plans:
        print("\nEXPLAIN ANALYZE of the page's statements (one request, last 30 days)")
        for plan in plans:
            print(f"\n-- {plan['execution_ms']} ms: {plan['statement']}")
            print("\n".join("   " + line for line in plan["plan"]))
        result["explain_ms"] = [(p["statement"][:60], p["execution_ms"]) for p in plans]

    page_p50 = result["page, last 30 days"]["ms"][50]
    figures_bytes, charts_bytes = result["live figures fragment"]["bytes"], result["charts fragment"]["bytes"]
    checks = {"page_p50": page_p50 <= TARGET_PAGE_P50_MS, "figures_bytes": figures_bytes <= TARGET_FRAGMENT_BYTES,
              "charts_bytes": charts_bytes <= TARGET_FRAGMENT_BYTES}

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    print(f"\nTargets: page p50 {page_p50:.1f} <= {TARGET_PAGE_P50_MS:.0f} ms {verdict(checks['page_p50'])} · "
          f"live fragments <= {TARGET_FRAGMENT_BYTES:,} bytes: figures {figures_bytes:,} "
          f"{verdict(checks['figures_bytes'])}, charts {charts_bytes:,} {verdict(checks['charts_bytes'])}")
    result["pass"] = all(checks.values())
    print()
    print(json.dumps(rounded(result), separators=(",", ":"), default=str))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    run_as_script(main)
