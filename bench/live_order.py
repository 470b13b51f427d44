#!/usr/bin/env python3
"""Live ordering benchmark (#11): do open pages get every event of their channels exactly once and
in commit order while many writers commit at once and the pages keep reconnecting?

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/live_order.py                 # 3 rounds, 200 holds, 50 pages, 2 workers
    .venv/bin/python bench/live_order.py --rounds 1 --holds 50 --pages 20    # quick check

A fresh site (own PostgreSQL database migrated + seeded, own Redis db and SSE_CHANNEL_PREFIX, real
gunicorn with gevent workers and one `flask worker`); --holds members are added with the demo
password and log in. Each round:
  1. opens --pages pages, each with its own channels: anonymous profiles of the demo trainers
     (public + trainer:<id>), members on a trainer's profile (+ user:<id>), the trainer Maya on her
     dashboard (public + user:<id>) and admins on the analytics page (+ admin). A page's starting
     position is the `last_event_id=N` its #live stream URL carries (a page that says where it was
     rendered), otherwise the outbox's newest position once its stream is open;
  2. every page closes its stream at random intervals (--reconnect-min..max s) and reconnects as
     the browser does: the same URL, with `Last-Event-ID` = the last id it received (none if it
     received nothing yet);
  3. all members hold a random free time of a random demo trainer at once (threads released
     together), and --pay-share of the winners pay (simulated provider): slot, next-available,
     session-list, analytics and notification events on every kind of channel;
  4. after --tail s more of reconnects, the pages stop dropping and catch up (until nothing arrives
     for 3 s, at most --settle s), and
     the outbox is read: for every page, the events it should have got are all rows of its
     channels with a position (the SSE id: `events.position` when that column exists, else
     `events.id`) after its starting position, up to the newest one when the writers were done.
Per channel kind it prints lost / duplicated / out-of-order deliveries (target 0/0/0 in every
round) and the time from commit to delivery (p50/p99/max). Commit time is approximated by the
row's `created_at` (set when the writing transaction flushed it, so the figure is an upper bound:
it also counts the rest of that transaction)."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_common import (ROOT, BenchError, Browser, RawSSE, Tree, add_common_args, begin, csrf_of, finish, log,  # noqa: E402
                         outbox_columns, outbox_position_column, pct_summary, running_site, stream_path, stream_request)
from search import run_as_script  # noqa: E402

TRAINERS = ["maya-chen", "lucia-fernandez", "kwame-mensah", "anna-kowalski", "diego-santos"]
SLOT_RE = re.compile(r'name="starts_at" value="([^"]+)">\s*<input type="hidden" name="length" value="(\d+)"')


# ============================================================================================
# The pages (one client process, so the writers' threads do not skew delivery times)
# ============================================================================================

class OrderPage:
    def __init__(self, client, spec: dict):
        self.client, self.spec = client, spec
        self.path = spec["stream"]
        self.start = spec["start"]  # from the stream URL, or None: read once the stream is open
        self.last_id = None
        self.received: list[tuple[int, float, int]] = []  # (id, time.time(), connection no.) in arrival order
        self.connection = 0
        self.proto = None
        self.reconnects = 0
        self.errors = Counter()
        self.drop_timer = None

    def open(self):
        c = self.client
        request = stream_request(c.host, self.path, self.spec["cookie"], self.spec["ip"], self.last_id)
        task = c.loop.create_task(c.loop.create_connection(
            lambda: RawSSE(request, self.on_event, self.on_close, self.on_open), c.hostname, c.port))
        task.add_done_callback(self._connected)

    def _connected(self, task):
        if task.cancelled() or task.exception():
            self.errors["connect"] += 1
            if not self.client.stopping:
                self.client.loop.call_later(1.0, self.open)
            return
        self.proto = task.result()[1]

    def on_open(self):
        self.connection += 1
        if self.start is None:
            self.start = self.client.newest()
        if self.client.dropping:
            self.schedule_drop()

    def schedule_drop(self):
        low, high = self.client.drop_range
        self.drop_timer = self.client.loop.call_later(random.uniform(low, high), self.drop)

    def drop(self):
        self.drop_timer = None
        if self.proto and self.proto.transport and self.client.dropping:
            self.proto.transport.close()  # the page drops its connection; on_close reconnects

    def on_close(self, error):
        self.proto = None
        if self.drop_timer:
            self.drop_timer.cancel()
            self.drop_timer = None
        if self.client.stopping:
            return
        if isinstance(error, str) and error.startswith("HTTP"):
            self.errors[error] += 1
        self.reconnects += 1
        self.client.loop.call_later(0.5 * random.uniform(0.7, 1.3), self.open)  # htmx's first retry

    def on_event(self, event_id, event, data):
        self.client.messages += 1
        if "Reload" in data and not event:  # the stream gave up replaying and asks for a reload
            self.errors["reload asked"] += 1
        if not event_id:
            return
        self.last_id = event_id
        if event_id.isdigit():
            self.received.append((int(event_id), time.time(), self.connection))


class OrderClient:
    def __init__(self, base: str, db_url: str, pos_col: str, specs: list[dict], drop_range):
        u = urlsplit(base)
        self.loop = asyncio.get_event_loop()
        self.host, self.hostname, self.port = u.netloc, u.hostname, u.port
        self.db = psycopg.connect(db_url, autocommit=True)
        self.pos_col = pos_col
        self.drop_range = drop_range
        self.dropping = False
        self.stopping = False
        self.messages = 0
        self.pages = [OrderPage(self, spec) for spec in specs]

    def newest(self) -> int:
        return self.db.execute(f"SELECT coalesce(max({self.pos_col}), 0) FROM events").fetchone()[0]

    async def start(self):
        for page in self.pages:
            page.open()
        deadline = time.monotonic() + 30
        while any(p.start is None for p in self.pages) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return sum(p.start is not None for p in self.pages)

    def set_dropping(self, on: bool):
        self.dropping = on
        for page in self.pages:
            if on and page.proto and not page.drop_timer:
                page.schedule_drop()
            if not on and page.drop_timer:
                page.drop_timer.cancel()
                page.drop_timer = None

    def report(self) -> list[dict]:
        return [{"start": p.start, "received": p.received, "reconnects": p.reconnects, "errors": dict(p.errors),
                 "channels": p.spec["channels"], "kind": p.spec["kind"]} for p in self.pages]

    def stop(self):
        self.stopping = True
        for page in self.pages:
            if page.proto and page.proto.transport:
                page.proto.transport.close()


def client_main(conn, base: str, db_url: str, pos_col: str, specs: list[dict], drop_range):
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    client = OrderClient(base, db_url, pos_col, specs, drop_range)
    finished = loop.create_future()

    def on_command():
        command = conn.recv()
        if command == "start":
            task = loop.create_task(client.start())
            task.add_done_callback(lambda t: conn.send(t.result()))
        elif command in ("drop", "calm"):
            client.set_dropping(command == "drop")
            conn.send(True)
        elif command == "count":
            conn.send(client.messages)
        elif command == "report":
            conn.send(client.report())
        elif command == "stop":
            client.stop()
            loop.call_later(0.2, finished.set_result, None)
            conn.send(True)

    loop.add_reader(conn.fileno(), on_command)
    loop.run_until_complete(finished)


def ask(conn, command, timeout: float = 120):
    conn.send(command)
    if not conn.poll(timeout):
        raise BenchError(f"the page client did not answer {command!r}")
    return conn.recv()


# ============================================================================================
# The writers and the pages' set-up
# ============================================================================================

def add_members(site, count: int) -> list[str]:
    """`count` members with the demo password (copied from the demo member's row)."""
    tag = f"order{os.getpid()}"
    with psycopg.connect(site.db_url) as conn:
        conn.execute(
            "INSERT INTO users (email, name, role, time_zone, password_hash, is_suspended, created_at) "
            "SELECT %s || '-' || g || '@bench.example', 'Order Member ' || g, role, time_zone, password_hash, false, now() "
            "FROM users, generate_series(1, %s) g WHERE email = 'member@fittribe.example'", (tag, count))
    return [f"{tag}-{g}@bench.example" for g in range(1, count + 1)]


def ids_of(site, table_sql: str, *params) -> dict:
    with psycopg.connect(site.db_url) as conn:
        return dict(conn.execute(table_sql, params).fetchall())


def page_specs(site, count: int, members: list[Browser], member_ids: list[int], admin: Browser, trainer: Browser,
               trainer_ids: dict[str, int], user_ids: dict[str, int]) -> list[dict]:
    """A mix of pages; channels are what the stream derives for that viewer and page (#11)."""
    specs = []
    kinds = (["anonymous profile"] * 4 + ["member profile"] * 4 + ["trainer dashboard"] + ["admin analytics"])
    for n in range(count):
        kind = kinds[n % len(kinds)]
        slug = TRAINERS[n % len(TRAINERS)]
        if kind == "anonymous profile":
            browser, path, channels = Browser(site.url), f"/trainers/{slug}", ["public", f"trainer:{trainer_ids[slug]}"]
        elif kind == "member profile":
            k = n % len(members)
            browser, path = members[k], f"/trainers/{slug}"
            channels = ["public", f"trainer:{trainer_ids[slug]}", f"user:{member_ids[k]}"]
        elif kind == "trainer dashboard":
            browser, path, channels = trainer, "/dashboard/", ["public", f"user:{user_ids['trainer@fittribe.example']}"]
        else:
            browser, path = admin, "/admin/analytics"
            channels = ["public", f"user:{user_ids['admin@fittribe.example']}", "admin"]
        page = browser.page(path)
        stream = stream_path(page)
        given = parse_qs(urlsplit(stream).query).get("last_event_id")
        specs.append({"kind": kind, "stream": stream, "cookie": browser.cookie_header(), "ip": browser.headers["X-Forwarded-For"],
                      "channels": channels, "start": int(given[0]) if given else None})
    return specs


def free_the_calendars(site) -> None:
    """Between rounds: the previous round's holds and bookings end (cancelled in SQL, no events),
    so every round races for the same times with members under their hold cap."""
    with psycopg.connect(site.db_url) as conn:
        kind = conn.execute("SELECT pg_typeof(status)::text, status::text FROM bookings LIMIT 1").fetchone()
        cancelled = "cancelled" if kind[1] == kind[1].lower() else "CANCELLED"
        conn.execute(f"UPDATE bookings SET status = %s::{kind[0]} WHERE lower(status::text) IN ('held', 'confirmed') "
                     "AND member_id IN (SELECT id FROM users WHERE email LIKE %s)", (cancelled, "%@bench.example"))


def write_burst(site, members: list[Browser], slots: dict[str, list[tuple[str, str]]], pay_share: float,
                rng: random.Random) -> dict:
    """Every member holds a random free time at once; some winners then pay."""
    barrier = threading.Barrier(len(members))
    outcomes = Counter()

    def one(member: Browser, slug: str, starts_at: str, length: str, pays: bool):
        token = csrf_of(member.page(f"/trainers/{slug}"))
        barrier.wait(timeout=120)
        response = member.post(member.base + f"/trainers/{slug}/hold", allow_redirects=False, timeout=120,
                               data={"csrf_token": token, "starts_at": starts_at, "length": length})
        location = response.headers.get("Location", "")
        if response.status_code != 303 or "/bookings/" not in location:
            outcomes["taken" if response.status_code == 303 else f"hold HTTP {response.status_code}"] += 1
            return
        outcomes["held"] += 1
        if not pays:
            return
        booking = location.rstrip("/").split("/")[-1]
        token = csrf_of(member.page(f"/bookings/{booking}"))
        response = member.post(member.base + f"/bookings/{booking}/checkout", data={"csrf_token": token},
                               allow_redirects=False, timeout=120)
        pay_path = urlsplit(response.headers.get("Location", "")).path
        if response.status_code != 303 or not pay_path:
            outcomes[f"checkout HTTP {response.status_code}"] += 1
            return
        token = csrf_of(member.page(pay_path))
        response = member.post(member.base + pay_path, data={"csrf_token": token, "card": "4242424242424242"},
                               allow_redirects=False, timeout=120)
        outcomes["paid" if response.status_code == 303 else f"pay HTTP {response.status_code}"] += 1

    free = [(slug, starts_at, length) for slug in TRAINERS for starts_at, length in slots[slug]]
    if not free:
        raise BenchError("the demo trainers have no free times left")
    rng.shuffle(free)  # each free time once, then again (a race) when there are more members than times
    plan = [(member, *free[n % len(free)], rng.random() < pay_share) for n, member in enumerate(members)]
    started = time.monotonic()
    with ThreadPoolExecutor(len(members)) as pool:
        for future in [pool.submit(one, *item) for item in plan]:
            try:
                future.result()
            except Exception as error:  # noqa: BLE001 (a failed write is reported, the round goes on)
                outcomes[f"error {type(error).__name__}"] += 1
    outcomes["wall_s"] = round(time.monotonic() - started, 2)
    return dict(outcomes)


# ============================================================================================
# The check
# ============================================================================================

def channel_kind(channel: str) -> str:
    return channel.split(":", 1)[0]


def analyse(pages: list[dict], rows: dict[int, tuple[str, float, bool]], end: int) -> dict:
    """Per channel kind: expected, delivered, lost (and of those, never marked published),
    duplicated (and of those, on the same connection), out of order; commit → delivery."""
    by_kind = defaultdict(lambda: Counter())
    latency = defaultdict(list)
    for page in pages:
        start = page["start"] or 0
        channels = set(page["channels"])
        expected = {pos for pos, (channel, _, _) in rows.items() if channel in channels and start < pos <= end}
        seen, last_per_channel, conn_of = Counter(), {}, {}
        for pos, at, connection in page["received"]:
            if pos <= start or pos > end:
                continue
            row = rows.get(pos)
            if row is None or row[0] not in channels:
                by_kind["(not of the page's channels)"]["foreign"] += 1
                continue
            kind = channel_kind(row[0])
            seen[pos] += 1
            if seen[pos] > 1:
                by_kind[kind]["duplicated"] += 1
                by_kind[kind]["dup_same_connection"] += conn_of[pos] == connection
                continue
            conn_of[pos] = connection
            if pos < last_per_channel.get(row[0], 0):
                by_kind[kind]["out_of_order"] += 1
            last_per_channel[row[0]] = max(pos, last_per_channel.get(row[0], 0))
            latency[kind].append(at - row[1])
            latency["all"].append(at - row[1])
        for pos in expected:
            kind = channel_kind(rows[pos][0])
            by_kind[kind]["expected"] += 1
            if pos in seen:
                by_kind[kind]["delivered"] += 1
            else:
                by_kind[kind]["lost"] += 1
                by_kind[kind]["lost_unpublished"] += not rows[pos][2]
    return {"per_kind": {k: dict(v) for k, v in by_kind.items()},
            "latency_s": {k: pct_summary(v) for k, v in latency.items()}}


def run_round(site, n: int, args, members, member_ids, admin, trainer, trainer_ids, user_ids, pos_col, rng) -> dict:
    if n > 1:
        free_the_calendars(site)
    slots = {slug: SLOT_RE.findall(members[0].page(f"/trainers/{slug}")) for slug in TRAINERS}
    specs = page_specs(site, args.pages, members, member_ids, admin, trainer, trainer_ids, user_ids)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=client_main, daemon=True, args=(child, site.url, site.db_url, pos_col, specs,
                                                              (args.reconnect_min, args.reconnect_max)))
    proc.start()
    try:
        opened = ask(parent, "start")
        log(f"round {n}: {opened}/{len(specs)} pages live; "
            f"{sum(s['start'] is not None for s in specs)} carried a position in their stream URL")
        ask(parent, "drop")
        time.sleep(min(args.reconnect_max, 3))  # the pages are already dropping when the writes start
        writes = write_burst(site, members, slots, args.pay_share, rng)
        log(f"round {n}: writes {writes}")
        time.sleep(args.tail)
        ask(parent, "calm")
        with psycopg.connect(site.db_url) as conn:
            end = conn.execute(f"SELECT coalesce(max({pos_col}), 0) FROM events").fetchone()[0]
        # Catching up: until no page has received anything for 3 s (at most --settle s).
        deadline, last, still = time.monotonic() + args.settle, -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - still < 3:
            time.sleep(0.5)
            count = ask(parent, "count")
            if count != last:
                last, still = count, time.monotonic()
        pages = ask(parent, "report")
        ask(parent, "stop")
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    # Whatever the outbox keeps: no published_at means "published" is not recorded (taken as yes).
    published = "published_at IS NOT NULL" if "published_at" in outbox_columns(site.db_url) else "true"
    with psycopg.connect(site.db_url) as conn:
        rows = {pos: (channel, created.timestamp(), done) for pos, channel, created, done in conn.execute(
            f"SELECT {pos_col}, channel, created_at, {published} FROM events WHERE {pos_col} IS NOT NULL")}
    result = analyse(pages, rows, end)
    result["writes"] = writes
    result["reconnects"] = sum(p["reconnects"] for p in pages)
    result["stream_errors"] = dict(sum((Counter(p["errors"]) for p in pages), Counter()))
    result["pages"] = len(pages)
    result["events_in_window"] = sum(1 for pos in rows if pos <= end)
    return result


def print_round(n: int, result: dict) -> None:
    print(f"\nRound {n}: {result['pages']} pages, {result['reconnects']} reconnects, writes {result['writes']}"
          + (f", stream errors {result['stream_errors']}" if result["stream_errors"] else ""))
    header = f"{'channel':<32}{'expected':>10}{'delivered':>10}{'lost':>6}{'dup':>6}{'order':>7}{'p50 s':>8}{'p99 s':>8}{'max s':>8}"
    print(header + "\n" + "-" * len(header))
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for kind, c in sorted(result["per_kind"].items()):
        lat = result["latency_s"].get(kind, {})
        print(f"{kind:<32}{c.get('expected', 0):>10}{c.get('delivered', 0):>10}{c.get('lost', 0):>6}"
              f"{c.get('duplicated', 0):>6}{c.get('out_of_order', 0):>7}{fmt(lat.get('p50')):>8}{fmt(lat.get('p99')):>8}"
              f"{fmt(lat.get('max')):>8}" + (f"  (+{c['foreign']} ids of other channels)" if c.get("foreign") else "")
              + (f"  lost never marked published: {c['lost_unpublished']}" if c.get("lost_unpublished") else "")
              + (f"  dup on the same connection: {c['dup_same_connection']}" if c.get("dup_same_connection") else ""))
    lat = result["latency_s"].get("all", {})
    print(f"{'all channels: commit → delivery':<32}{'':>10}{'':>10}{'':>6}{'':>6}{'':>7}{fmt(lat.get('p50')):>8}"
          f"{fmt(lat.get('p99')):>8}{fmt(lat.get('max')):>8}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--holds", type=int, default=200, help="concurrent holds, one member each (200)")
    parser.add_argument("--pages", type=int, default=50, help="open pages (50)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn gevent workers (2)")
    parser.add_argument("--pay-share", type=float, default=0.5, help="share of successful holds then paid (0.5)")
    parser.add_argument("--reconnect-min", type=float, default=0.5, help="a page drops its stream after … (0.5 s)")
    parser.add_argument("--reconnect-max", type=float, default=3.0, help="… to this many seconds (3 s)")
    parser.add_argument("--tail", type=float, default=5.0, help="seconds of reconnects after the writes (5)")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="at most this many seconds for the calm pages to catch up: until nothing arrives for 3 s (30)")
    parser.add_argument("--seed", type=int, default=11)
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    info = begin(args)
    head = os.popen(f"git -C {ROOT} rev-parse --short HEAD").read().strip()
    print(f"# FitTribe live order — {head}, {info['nproc']} CPU(s), {info['cpu_model']}, load average "
          f"{' '.join(map(str, info['loadavg_before']))} before; {args.holds} concurrent holds, {args.pages} pages "
          f"reconnecting every {args.reconnect_min}–{args.reconnect_max} s, {args.workers} worker(s)")
    print("# bench settings: STREAM_CAP_PER_CLIENT=0, RATELIMIT_STREAM='1000000 per minute', TRUSTED_PROXIES=1 "
          "(one X-Forwarded-For address per visitor), RATELIMIT_LOGIN raised", flush=True)
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="live-order-") as tmp_name:
        with running_site(Tree(f"this checkout {head}", ROOT), args.workers, args.database_url, args.redis_url,
                          Path(tmp_name)) as site:
            pos_col = outbox_position_column(site.db_url)
            log(f"SSE ids are events.{pos_col}")
            emails = add_members(site, args.holds)
            started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                members = list(pool.map(lambda email: Browser(site.url, email), emails))
            log(f"{len(members)} members logged in in {time.monotonic() - started:.1f} s")
            admin = Browser(site.url, "admin@fittribe.example")
            trainer = Browser(site.url, "trainer@fittribe.example")
            user_ids = ids_of(site, "SELECT email, id FROM users")
            trainer_ids = ids_of(site, "SELECT slug, id FROM trainer_profiles")
            member_ids = [user_ids[e] for e in emails]
            for n in range(1, args.rounds + 1):
                results.append(run_round(site, n, args, members, member_ids, admin, trainer, trainer_ids, user_ids,
                                         pos_col, rng))
                print_round(n, results[-1])
    print()
    verdicts = []
    for n, result in enumerate(results, 1):
        totals = Counter()
        for c in result["per_kind"].values():
            totals.update(c)
        verdicts.append((f"round {n}: lost / duplicated / out-of-order = 0/0/0",
                         totals["lost"] == 0 and totals["duplicated"] == 0 and totals["out_of_order"] == 0,
                         f"{totals['lost']}/{totals['duplicated']}/{totals['out_of_order']} of {totals['expected']} expected"))
    lat = sorted(v for r in results for v in [r["latency_s"].get("all", {}).get("p99")] if v is not None)
    print(f"commit → delivery p99 per round (commit ≈ events.created_at): {', '.join(f'{v:.3f} s' for v in lat)}")
    return finish("fittribe-live-order", verdicts, {"machine": info, "position_column": pos_col, "rounds": results},
                  args.json_out)

if __name__ == "__main__":
    run_as_script(main)
