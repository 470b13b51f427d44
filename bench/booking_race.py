"""Booking race benchmark: many members holding the same times at once, through the real
`fittribe.services.booking.hold()` on PostgreSQL.

Run from the project root:

    .venv/bin/python bench/booking_race.py      # or: make bench

What it does, cleaned up afterwards (also on error, Ctrl-C and SIGTERM):

1. creates a throwaway database `fittribe_bench_<pid>_<hex>` on the server of BENCH_DATABASE_URL,
   builds it with the app's Alembic migrations (flask_migrate.upgrade() in create_app) and seeds
   6 trainers open every day 06:00-22:00 UTC plus `--attempts` (200) members, one per attempt
   (a member may hold only MAX_ACTIVE_HOLDS times at once), and times 20 holds one after another
   as the uncontended baseline;
2. scenario "same slot": every member tries to hold the SAME slot of one trainer at once; exactly
   one may win, every other attempt must end in SlotTaken;
3. scenario "spread": the same number of attempts over 16 neighbouring start times of each of
   5 trainers (60-minute sessions on a 30-minute grid, so neighbours overlap); afterwards SQL must
   find no two active bookings of a trainer that overlap, every refused time must really be taken,
   and the number of successes must match the rows;
4. scenario "back to back": the same number of attempts over 5 back-to-back pairs (07:00-08:00 and
   08:00-09:00, …) of each of those trainers, whose 15-minute after-buffer makes each pair's second
   start invalid once the first is held; SQL must find no two active bookings of a trainer closer
   than its buffer (this check runs after every scenario);
5. prints holds/s, latency percentiles and "correctness: OK/FAIL" per scenario, then one JSON
   line; the exit code is 1 when a scenario FAILs (2 when the benchmark itself could not run).

Each attempt is a thread with its own app context, session and pooled connection, released
together by a barrier. The threads share `--connections` (20) pooled connections, as a web
worker's requests share its pool (the PostgreSQL server allows 100 connections in all): an
attempt's latency includes waiting for a connection; "in hold()" is the call alone.
Redis (BENCH_REDIS_URL; `--redis-url ''` for none) gets the events hold() publishes after commit,
under a channel prefix of this run that nobody reads: publishing is part of a hold, as in production.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time as clock, timedelta, timezone
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # fittribe and config, when run as `python bench/booking_race.py`

# The database, percentile and table helpers of the search benchmark (this directory).
from search import (BenchError, cleanup_on_sigterm, log, machine_info, percentile, print_table,  # noqa: E402
                    psycopg_url, rounded, run_as_script, throwaway_database)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SPREAD_TRAINERS = 5
SPREAD_STARTS = 16  # 06:00-13:30: 60-minute sessions every 30 minutes overlap their neighbours
LENGTH = 60
BASELINE_HOLDS = 20
BUFFER_AFTER = 15  # minutes: the seeded trainers' after-buffer
BACK_TO_BACK_PAIRS = 5


@dataclass
class Attempt:
    member_id: int
    trainer_id: int
    starts_at: datetime
    outcome: str = "not run"  # held | taken-check | taken-constraint | error: …
    total_ms: float = 0.0  # from the barrier: waiting for a connection, loading the rows, hold()
    hold_ms: float = 0.0  # hold() alone


@dataclass
class Round:
    wall_s: float
    attempts: list[Attempt]
    checks: dict = field(default_factory=dict)  # name -> (ok, detail)

    def count(self, outcome: str) -> int:
        return sum(a.outcome == outcome for a in self.attempts)

    @property
    def errors(self) -> list[str]:
        return [a.outcome for a in self.attempts if a.outcome.startswith("error")]

    @property
    def ok(self) -> bool:
        return all(ok for ok, _ in self.checks.values())


# --------------------------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------------------------

def make_app(db_url: str, redis_url: str | None, connections: int):
    from fittribe import create_app

    return create_app(
        "development",
        SQLALCHEMY_DATABASE_URI=db_url.replace("postgresql://", "postgresql+psycopg://", 1),
        # The attempts queue for a fixed pool, like requests in one web worker.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": connections, "max_overflow": 0, "pool_timeout": 30,  # SQLAlchemy's default
                                   "pool_pre_ping": True},
        REDIS_URL=redis_url,
        RATELIMIT_STORAGE_URI="memory://",  # hold() is called directly: no rate limits involved
        SSE_CHANNEL_PREFIX=f"fittribe-bench-{os.getpid()}-{secrets.token_hex(3)}:",
    )


def seed(attempts: int) -> tuple[list[int], list[int]]:
    """(trainer profile ids, member ids): trainers open 06:00-22:00 UTC every day."""
    from sqlalchemy import insert

    from fittribe.extensions import db
    from fittribe.models import Role, TrainerProfile, User, WeeklyAvailability

    trainer_ids = []
    for n in range(1 + SPREAD_TRAINERS):
        user = User(email=f"race-trainer-{n}@bench.example", name=f"Race Trainer {n}", role=Role.TRAINER,
                    time_zone="UTC", password_hash="!")  # "!" matches no password: nobody logs in
        profile = TrainerProfile(user=user, slug=f"race-trainer-{n}", display_name=user.name, time_zone="UTC",
                                 is_approved=True, session_lengths=[LENGTH], price_cents=5000, currency="USD",
                                 buffer_after_minutes=BUFFER_AFTER)
        db.session.add(profile)
        db.session.flush()
        db.session.add_all(WeeklyAvailability(trainer_id=profile.id, weekday=day, start_time=clock(6),
                                              end_time=clock(22)) for day in range(7))
        trainer_ids.append(profile.id)
    member_ids = db.session.scalars(insert(User).returning(User.id, sort_by_parameter_order=True), [
        dict(email=f"race-member-{n}@bench.example", name=f"Racer {n}", role=Role.MEMBER, time_zone="UTC",
             password_hash="!", is_suspended=False) for n in range(attempts)]).all()
    db.session.commit()
    return trainer_ids, list(member_ids)


def starts_from(trainer_id: int, day_start: datetime, count: int) -> list[datetime]:
    from fittribe.extensions import db
    from fittribe.models import TrainerProfile
    from fittribe.services import booking

    trainer = db.session.get(TrainerProfile, trainer_id)
    starts = [s.starts_at for s in booking.slots_for(trainer, LENGTH, now=day_start - timedelta(days=1), days=4)
              if s.starts_at >= day_start][:count]
    if len(starts) < count:
        raise BenchError(f"trainer {trainer_id} offers only {len(starts)} slots from {day_start}")
    return starts


# --------------------------------------------------------------------------------------------
# The race
# --------------------------------------------------------------------------------------------

def race(app, attempts: list[Attempt], now: datetime) -> Round:
    """Run every attempt in its own thread, all released at once; `now` is fixed so the slot
    rules (minimum notice) are the same for all of them."""
    from sqlalchemy.exc import IntegrityError

    from fittribe.extensions import db
    from fittribe.models import TrainerProfile, User
    from fittribe.services import booking

    barrier = threading.Barrier(len(attempts) + 1, timeout=60)

    def attempt(item: Attempt) -> None:
        barrier.wait()
        started = time.perf_counter()
        with app.app_context():  # its own session, connection from the pool
            try:
                member = db.session.get(User, item.member_id)  # what a request loads before hold()
                trainer = db.session.get(TrainerProfile, item.trainer_id)
                called = time.perf_counter()
                try:
                    booking.hold(member, trainer, item.starts_at, LENGTH, now=now)
                    item.hold_ms = (time.perf_counter() - called) * 1000
                    item.outcome = "held"
                except booking.SlotTaken as taken:
                    item.hold_ms = (time.perf_counter() - called) * 1000
                    item.outcome = "taken-constraint" if isinstance(taken.__cause__, IntegrityError) else "taken-check"
            except Exception as error:  # noqa: BLE001 (anything else is a failure to report)
                # The app context's teardown discards the session, whatever state it was left in.
                item.outcome = f"error: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
        item.total_ms = (time.perf_counter() - started) * 1000

    threads = [threading.Thread(target=attempt, args=(item,), daemon=True) for item in attempts]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(300)
    wall = time.perf_counter() - started
    if any(thread.is_alive() for thread in threads):
        raise BenchError("some hold attempts did not finish within 300 s")
    return Round(wall, attempts)


def clear_bookings(app) -> None:
    from sqlalchemy import delete

    from fittribe.extensions import db
    from fittribe.models import Booking, Event

    with app.app_context():
        db.session.execute(delete(Booking))
        db.session.execute(delete(Event))
        db.session.commit()


def warm_up(app, trainer_ids: list[int], connections: int, now: datetime) -> None:
    """Open the pool's connections and compute each calendar once, so the first round does not
    measure connection set-up and imports."""
    from fittribe.extensions import db
    from fittribe.models import TrainerProfile
    from fittribe.services import booking

    with app.app_context():
        held = [db.engine.connect() for _ in range(connections)]
        for connection in held:
            connection.close()
        for trainer_id in trainer_ids:
            booking.slots_for(db.session.get(TrainerProfile, trainer_id), LENGTH, now=now)


def baseline(app, trainer_id: int, member_ids: list[int], starts: list[datetime], now: datetime) -> list[float]:
    """hold() one after another, nobody else running: the cost of one hold without contention."""
    from fittribe.extensions import db
    from fittribe.models import TrainerProfile, User
    from fittribe.services import booking

    timings = []
    for member_id, starts_at in zip(member_ids, starts):
        with app.app_context():
            member, trainer = db.session.get(User, member_id), db.session.get(TrainerProfile, trainer_id)
            started = time.perf_counter()
            booking.hold(member, trainer, starts_at, LENGTH, now=now)
            timings.append((time.perf_counter() - started) * 1000)
    clear_bookings(app)
    return timings


# --------------------------------------------------------------------------------------------
# Checks, in SQL and against the slot engine
# --------------------------------------------------------------------------------------------

OVERLAPS_SQL = """
SELECT count(*) FROM bookings a JOIN bookings b
  ON a.trainer_id = b.trainer_id AND a.id < b.id
 AND tstzrange(a.starts_at, a.ends_at) && tstzrange(b.starts_at, b.ends_at)
WHERE a.status IN ('held', 'confirmed') AND b.status IN ('held', 'confirmed')
"""
# Two active sessions of a trainer closer than its buffer (buffers may share time with each other,
# so the gap must be at least the larger of the two buffers).
BUFFER_VIOLATIONS_SQL = """
SELECT count(*) FROM bookings a JOIN bookings b ON a.trainer_id = b.trainer_id AND a.id <> b.id
  JOIN trainer_profiles t ON t.id = a.trainer_id
 WHERE a.status IN ('held', 'confirmed') AND b.status IN ('held', 'confirmed') AND a.starts_at <= b.starts_at
   AND b.starts_at < a.ends_at + make_interval(mins => greatest(t.buffer_after_minutes, t.buffer_before_minutes))
"""


def check(app, result: Round, now: datetime, expect_held: int | None = None) -> None:
    from sqlalchemy import func, select, text

    from fittribe.extensions import db
    from fittribe.models import ACTIVE_STATUSES, Booking, TrainerProfile
    from fittribe.services import booking

    held = result.count("held")
    checks = result.checks
    kinds = Counter(error.split(":")[1].strip() for error in result.errors)
    checks["no errors"] = (not result.errors, f"{len(result.errors)} errors" + (
        f" ({', '.join(f'{kind} x{n}' for kind, n in kinds.items())}), first: {result.errors[0]}"
        if result.errors else ""))
    if expect_held is not None:
        checks["winners"] = (held == expect_held, f"{held} held, expected {expect_held}")
    with app.app_context():
        overlaps = db.session.scalar(text(OVERLAPS_SQL))
        checks["no overlap (SQL)"] = (overlaps == 0, f"{overlaps} overlapping pairs of active bookings")
        violations = db.session.scalar(text(BUFFER_VIOLATIONS_SQL))
        checks["no buffer violation (SQL)"] = (violations == 0, f"{violations} pairs of active bookings inside a buffer")
        rows = db.session.scalar(select(func.count(Booking.id)).where(Booking.status.in_(ACTIVE_STATUSES)))
        checks["rows = successes"] = (rows == held, f"{rows} active rows, {held} successful holds")
        # A refusal is right only if the time is really gone: bookings only accumulate during the
        # race, so a refused start must still be unavailable now.
        free = {}
        for trainer_id in {a.trainer_id for a in result.attempts}:
            trainer = db.session.get(TrainerProfile, trainer_id)
            free[trainer_id] = {s.starts_at for s in booking.slots_for(trainer, LENGTH, now=now)}
        wrong = sum(a.outcome.startswith("taken") and a.starts_at in free[a.trainer_id] for a in result.attempts)
        checks["refusals were right"] = (wrong == 0, f"{wrong} refused times are still free")


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

def ms(values: list[float], pct: float) -> str:
    return f"{percentile(values, pct):.1f}"


def report(title: str, rounds: list[Round]) -> dict:
    every = [a for r in rounds for a in r.attempts]
    total, inside = [a.total_ms for a in every], [a.hold_ms for a in every if not a.outcome.startswith("error")]
    print(f"\n{title}")
    print_table(
        ["round", "wall s", "attempts/s", "holds/s", "held", "taken: check", "taken: constraint", "errors",
         "correctness"],
        [[i, f"{r.wall_s:.2f}", f"{len(r.attempts) / r.wall_s:.0f}", f"{r.count('held') / r.wall_s:.1f}",
          r.count("held"), r.count("taken-check"), r.count("taken-constraint"), len(r.errors),
          "OK" if r.ok else "FAIL"] for i, r in enumerate(rounds, 1)])
    print(f"latency per attempt, ms ({len(total)} attempts): p50 {ms(total, 50)}  p90 {ms(total, 90)}  "
          f"p99 {ms(total, 99)}  max {max(total):.1f}")
    if inside:
        print(f"  of which in hold():                  p50 {ms(inside, 50)}  p90 {ms(inside, 90)}  "
              f"p99 {ms(inside, 99)}  max {max(inside):.1f}")
    for r in rounds:
        for name, (ok, detail) in r.checks.items():
            if not ok:
                print(f"  FAIL {name}: {detail}")
    ok = all(r.ok for r in rounds)
    print(f"correctness: {'OK' if ok else 'FAIL'} ("
          + "; ".join(f"{name}: {detail}" for name, (_, detail) in rounds[-1].checks.items()) + ", last round)")
    wall = sum(r.wall_s for r in rounds)
    return {
        "attempts_per_s": len(every) / wall, "holds_per_s": sum(r.count("held") for r in rounds) / wall,
        "latency_ms": {p: percentile(total, p) for p in (50, 90, 99)} | {"max": max(total)},
        "hold_ms": {p: percentile(inside, p) for p in (50, 90, 99)} if inside else {},
        "rounds": [{"wall_s": r.wall_s, "held": r.count("held"), "taken_check": r.count("taken-check"),
                    "taken_constraint": r.count("taken-constraint"), "errors": len(r.errors), "ok": r.ok}
                   for r in rounds],
        "correct": ok,
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=200, help="concurrent hold attempts per round (200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario (3)")
    parser.add_argument("--connections", type=int, default=20, help="pooled DB connections the attempts share (20)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the spread scenario's plan (7)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
                        help="Redis for hold()'s published events; '' publishes nothing")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cleanup_on_sigterm()
    result: dict = {"benchmark": "fittribe-booking-race", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "attempts": args.attempts, "rounds": args.rounds, "connections": args.connections}
    try:
        result["machine"] = machine_info(psycopg_url(args.database_url))
        with throwaway_database(args.database_url) as (_, db_url):
            from flask_migrate import upgrade

            app = make_app(db_url, args.redis_url or None, args.connections)
            with app.app_context():
                upgrade()
                trainer_ids, member_ids = seed(args.attempts)
                now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
                day = (now + timedelta(days=2)).replace(hour=6, minute=0)  # well past the minimum notice
                one_slot = starts_from(trainer_ids[0], day, 1)[0]
                # 90 minutes apart: a 60-minute session and its 15-minute after-buffer never clash
                apart = starts_from(trainer_ids[0], day, 3 * BASELINE_HOLDS)[::3]
                spread_starts = {t: starts_from(t, day, SPREAD_STARTS) for t in trainer_ids[1:]}
                # 07:00 + 3 h × k and one hour later: each pair back to back.
                pairs = [day.replace(hour=7) + timedelta(hours=3 * k) for k in range(BACK_TO_BACK_PAIRS)]
                back_to_back = [start + timedelta(hours=h) for start in pairs for h in (0, 1)]
            warm_up(app, trainer_ids, args.connections, now)
            log(f"seeded {len(trainer_ids)} trainers and {len(member_ids)} members")
            alone = baseline(app, trainer_ids[0], member_ids, apart, now)

            rng = random.Random(args.seed)
            picks = [rng.choice(trainer_ids[1:]) for _ in member_ids]
            spread_plan = [(m, t, rng.choice(spread_starts[t])) for m, t in zip(member_ids, picks)]
            scenarios = {
                "same_slot": ([(m, trainer_ids[0], one_slot) for m in member_ids], 1),
                "spread": (spread_plan, None),
                "back_to_back": ([(m, t, rng.choice(back_to_back)) for m, t in zip(member_ids, picks)], None),
            }
            rounds: dict[str, list[Round]] = {}
            for name, (plan, expect_held) in scenarios.items():
                rounds[name] = []
                for n in range(args.rounds):
                    clear_bookings(app)
                    log(f"{name}: round {n + 1} of {args.rounds}, {len(plan)} attempts")
                    outcome = race(app, [Attempt(*item) for item in plan], now)
                    check(app, outcome, now, expect_held)
                    rounds[name].append(outcome)
            with app.app_context():
                from fittribe.extensions import db

                db.engine.dispose()  # before DROP DATABASE
        result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    except (BenchError, psycopg.Error) as error:
        log(f"error: {error}")
        return 2

    m = result["machine"]
    distinct = len({(t, s) for _, t, s in spread_plan})
    print(f"\nFitTribe booking race — {m['nproc']} CPU(s), {m['cpu_model']}, PostgreSQL {m['postgresql']}, "
          f"Python {m['python']}")
    print(f"Load average (1/5/15 min): {' '.join(map(str, m['loadavg_before']))} before, "
          f"{' '.join(map(str, m['loadavg_after']))} after; {args.attempts} threads share {args.connections} "
          f"pooled connections")
    print(f"Uncontended hold(), {len(alone)} one after another: p50 {ms(alone, 50)} ms, p99 {ms(alone, 99)} ms")
    result["uncontended_hold_ms"] = {p: percentile(alone, p) for p in (50, 99)}
    result["same_slot"] = report(f"Scenario 1: {args.attempts} members hold the same slot at once "
                                 f"({args.rounds} rounds; exactly 1 may win)", rounds["same_slot"])
    result["spread"] = report(f"Scenario 2: {args.attempts} holds over {distinct} start times of "
                              f"{SPREAD_TRAINERS} trainers ({args.rounds} rounds; 60-minute sessions every "
                              f"30 minutes, so neighbours overlap)", rounds["spread"])
    result["back_to_back"] = report(f"Scenario 3: {args.attempts} holds over {BACK_TO_BACK_PAIRS} back-to-back pairs "
                                    f"of each of {SPREAD_TRAINERS} trainers ({args.rounds} rounds; a {BUFFER_AFTER}-minute "
                                    "after-buffer: at most one of each pair may be held)", rounds["back_to_back"])
    result["pass"] = all(result[name]["correct"] for name in scenarios)
    print()
    print(json.dumps(rounded(result), separators=(",", ":"), default=str))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    run_as_script(main)
