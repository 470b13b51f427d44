"""Slot engine with Google Calendar busy times: profile render time with 500 busy intervals per trainer.

Run from the project root (after `make install-dev assets`):

    .venv/bin/python bench/slot_engine_busy.py [--busy 500] [--requests 300]

On a throwaway PostgreSQL database (BENCH_DATABASE_URL's server; dropped at the end) with the demo
data and a claimed empty Redis db (BENCH_REDIS_URL; flushed at the end), in one process:

1. the trainer profile page (GET /trainers/<slug>: the calendar of free times, from the slot
   engine) of every demo trainer in turn, `--requests` times in all, with no busy times and with
   `--busy` busy intervals per trainer (15 min – 3 h, at random over the 60-day horizon, as a
   connected Google Calendar leaves them), in `--rounds` alternating rounds;
2. the slot engine alone (`free_slots` over the whole horizon: what the search's next free time
   and a reschedule need), with those intervals, and with the pre-bisect linear scan for reference.

Times are server-side wall clock per request (Flask test client, no network); p50/p99 printed, and
a final JSON line."""
from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis as redis_lib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
            "n": len(ordered)}


def claim_redis(url: str) -> str:
    base = urlsplit(url)
    for number in range(1, 16):
        candidate = urlunsplit(base._replace(path=f"/{number}"))
        client = redis_lib.Redis.from_url(candidate)
        if client.dbsize() == 0 and client.set("fittribe:bench-run-claim", "slots", nx=True, ex=3600):
            return candidate
    raise SystemExit("no free Redis db number")


def time_profiles(client, slugs: list[str], requests: int, warmup: int) -> list[float]:
    for i in range(warmup):
        client.get(f"/trainers/{slugs[i % len(slugs)]}")
    samples = []
    for i in range(requests):
        started = time.perf_counter()
        response = client.get(f"/trainers/{slugs[i % len(slugs)]}")
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--busy", type=int, default=500)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    name = f"fittribe_bench_slots_{os.getpid()}_{secrets.token_hex(3)}"
    admin = psycopg.connect(args.database_url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    redis_url = claim_redis(args.redis_url)
    try:
        run(args, urlunsplit(urlsplit(args.database_url)._replace(path=f"/{name}", scheme="postgresql+psycopg")), redis_url)
    finally:
        redis_lib.Redis.from_url(redis_url).flushdb()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args, database_url: str, redis_url: str) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import delete, insert, select

    from fittribe import create_app
    from fittribe.extensions import db
    from fittribe.models import CalendarBusy, TrainerProfile
    from fittribe.seed import seed_demo
    from fittribe.services import availability
    from fittribe.services import booking as booking_service

    app = create_app("development", SQLALCHEMY_DATABASE_URI=database_url, REDIS_URL=redis_url,
                     RATELIMIT_ENABLED=False, LOG_LEVEL="WARNING")
    app.logger.disabled = True
    import logging

    logging.getLogger("fittribe.request").disabled = True
    with app.app_context():
        upgrade()
        seed_demo()
        trainers = db.session.scalars(select(TrainerProfile).where(TrainerProfile.is_approved)).all()
        slugs = [t.slug for t in trainers]
    client = app.test_client()
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "trainers": len(slugs),
                     "busy_per_trainer": args.busy}
    rng = random.Random(16)
    now = datetime.now(timezone.utc)
    with app.app_context():
        rows = [dict(trainer_id=trainer.id, starts_at=start, ends_at=start + timedelta(minutes=15 * rng.randint(1, 12)))
                for trainer in db.session.scalars(select(TrainerProfile).where(TrainerProfile.is_approved))
                for start in (now + timedelta(minutes=15 * rng.randrange(0, 4 * 24 * trainer.horizon_days))
                              for _ in range(args.busy))]

    def set_busy(on: bool) -> None:
        with app.app_context():
            db.session.execute(delete(CalendarBusy))
            if on:
                db.session.execute(insert(CalendarBusy), rows)
            db.session.commit()
            db.session.execute(db.text("ANALYZE calendar_busy"))
            db.session.commit()

    # Without and with busy times in alternating rounds, so a load change on the machine hits both alike.
    without, with_busy = [], []
    for _ in range(args.rounds):
        set_busy(False)
        without += time_profiles(client, slugs, args.requests // args.rounds, args.warmup)
        set_busy(True)
        with_busy += time_profiles(client, slugs, args.requests // args.rounds, args.warmup)
    results["profile_no_busy"], results["profile_with_busy"] = percentiles(without), percentiles(with_busy)

    with app.app_context():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == slugs[0]))
        engine, linear = [], []
        original = availability._too_close

        def linear_scan(starts_at, ends_at, policy, taken):  # every interval, as before the bisect
            before, after = policy.buffer_before, policy.buffer_after
            return any((s < ends_at + after and starts_at - before < e) or (s - before < ends_at and starts_at < e + after)
                       for s, e in zip(taken.starts, taken.ends))

        for samples, check in ((engine, original), (linear, linear_scan)):
            availability._too_close = check
            for i in range(args.warmup + 50):
                started = time.perf_counter()
                slots = booking_service.slots_for(trainer, 60)
                if i >= args.warmup:
                    samples.append(time.perf_counter() - started)
        availability._too_close = original
        results["engine_horizon_with_busy"] = {**percentiles(engine), "slots": len(slots)}
        results["engine_horizon_linear_reference"] = percentiles(linear)

    for key in ("profile_no_busy", "profile_with_busy", "engine_horizon_with_busy", "engine_horizon_linear_reference"):
        print(f"{key:34} p50 {results[key]['p50_ms']:8.2f} ms   p99 {results[key]['p99_ms']:8.2f} ms   n={results[key]['n']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
