"""Search fragment and homepage benchmark for FitTribe.

Run from the project root (after `make assets`):

    .venv/bin/python bench/search.py            # or: make bench

What it does, all on 127.0.0.1 and cleaned up afterwards (also on error and Ctrl-C):

1. creates a throwaway PostgreSQL database `fittribe_bench_<pid>_<hex>` on the server of
   BENCH_DATABASE_URL, runs the Alembic migrations and seeds the demo data plus
   `--trainers` (10,000) bulk trainers, then drops the database at the end;
2. claims an empty Redis db number on BENCH_REDIS_URL and flushes it at the end;
3. starts ONE gunicorn gevent worker (gunicorn.conf.py) on a free port;
4. times the htmx search fragment (GET /trainers?... with HX-Request headers) for a mix of
   typical queries: sequentially on one keep-alive connection, then with a few client threads;
5. measures the homepage first load (document + stylesheets + scripts, bytes on the wire);
6. prints a table and one final JSON line, and exits 1 if a target is missed.

Server-side time is the `Server-Timing: app;dur=` header the app adds (Flask request handling,
before response compression); round trip is measured by the client around the whole request.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import brotli
import psycopg
import redis as redis_lib
import requests

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_CLAIM_KEY = "fittribe:bench-run-claim"

# Targets (server-side Server-Timing for the fragment; bytes on the wire for the homepage).
TARGET_SEARCH_P50_MS = 20.0
TARGET_SEARCH_P99_MS = 60.0
TARGET_HOME_BYTES = 60_000  # 60 KB, decimal kilobytes (the stricter reading)

# Typical filtered searches a visitor makes from the search page, in turn. One is spelled the way
# the htmx form sends it (every field, empty ones included).
QUERIES = [
    "specialty=strength&max_price=100",
    "q=coach&language=en",
    "min_rating=4&sort=price_asc",
    "specialty=yoga&language=es&page=2",
    "sort=rating&page=1",
    "q=&specialty=hiit&min_price=&max_price=80&min_rating=&language=&sort=rating&page=1",
    "q=marathon&sort=price_desc",
    "specialty=mobility&min_rating=4.5&language=de",
]
FRAGMENT_HEADERS = {"HX-Request": "true", "HX-Request-Type": "partial", "Accept-Encoding": "gzip, br"}
HOME_HEADERS = {"Accept-Encoding": "br, gzip", "Accept": "text/html,*/*;q=0.8"}
SERVER_TIMING_RE = re.compile(r"(?:^|,)\s*app;dur=([0-9.]+)")


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------------------------
# Machine, database and Redis
# --------------------------------------------------------------------------------------------

def machine_info(admin_url: str) -> dict:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.OperationalError as error:
        raise BenchError(f"PostgreSQL is not reachable at {admin_url}: {error}") from error
    return {"nproc": nproc, "cpu_model": cpu_model, "postgresql": pg_version,
            "python": platform.python_version(), "kernel": platform.release(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()]}


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def psycopg_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


@contextlib.contextmanager
def throwaway_database(server_url: str):
    """CREATE DATABASE fittribe_bench_<pid>_<hex>; always DROP ... WITH (FORCE) on the way out."""
    admin_url = psycopg_url(server_url)
    name = f"fittribe_bench_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        raise BenchError(f"PostgreSQL is not reachable at {admin_url}: {error}") from error
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    log(f"created database {name}")
    try:
        yield name, with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        log(f"dropped database {name}")


@contextlib.contextmanager
def empty_redis_db(server_url: str):
    """The first empty Redis db number (1..n-1), claimed atomically, flushed at the end."""
    base = urlsplit(server_url)
    try:
        probe = redis_lib.Redis.from_url(server_url, socket_connect_timeout=3)
        probe.ping()
        databases = int(probe.config_get("databases").get("databases", 16))
    except redis_lib.ResponseError:
        databases = 16  # CONFIG disabled: assume the default
    except redis_lib.RedisError as error:
        raise BenchError(f"Redis is not reachable at {server_url}: {error}") from error
    token = f"{os.getpid()}-{secrets.token_hex(3)}"
    for number in range(1, databases):
        client = redis_lib.Redis.from_url(urlunsplit(base._replace(path=f"/{number}")), socket_connect_timeout=3)
        if client.dbsize() == 0 and client.set(REDIS_CLAIM_KEY, token, nx=True, ex=3600):
            break
    else:
        raise BenchError(f"no empty Redis database number on {server_url}")
    url = urlunsplit(base._replace(path=f"/{number}"))
    log(f"using Redis {url}")
    try:
        yield url
    finally:
        client.flushdb()
        log(f"flushed Redis db {number}")


def site_env(db_url: str, redis_url: str, workdir: Path, name: str) -> dict:
    """The environment of a throwaway development site on `db_url`/`redis_url`: this shell's,
    without any app setting of its own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLASK_", "SQLALCHEMY", "RATELIMIT_", "DATABASE_", "REDIS_"))}
    env.update({"FITTRIBE_ENV": "development", "REDIS_URL": redis_url,
                "DATABASE_URL": db_url.replace("postgresql://", "postgresql+psycopg://", 1),
                "RATELIMIT_KEY_PREFIX": f"{name}-{os.getpid()}", "INSTANCE_PATH": str(workdir / "instance"),
                "PYTHONUNBUFFERED": "1"})
    return env


def run_flask(args: list[str], env: dict, timeout: float) -> str:
    command = [sys.executable, "-m", "flask", "--app", "wsgi", *args]
    try:
        # Own session: Ctrl-C reaches this script only, which stops the child and cleans up.
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                                start_new_session=True)
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"`flask {' '.join(args)}` took longer than {timeout:.0f}s") from error
    if result.returncode != 0:
        raise BenchError(f"`flask {' '.join(args)}` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def table_counts(db_url: str) -> dict:
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        listed = conn.execute(
            "SELECT count(*) FROM trainer_profiles t JOIN users u ON u.id = t.user_id "
            "WHERE t.is_approved AND NOT u.is_suspended").fetchone()[0]
        return {
            "users": conn.execute("SELECT count(*) FROM users").fetchone()[0],
            "trainer_profiles": conn.execute("SELECT count(*) FROM trainer_profiles").fetchone()[0],
            "listed_trainers": listed,
            "trainer_specialties": conn.execute("SELECT count(*) FROM trainer_specialties").fetchone()[0],
            "trainer_languages": conn.execute("SELECT count(*) FROM trainer_languages").fetchone()[0],
        }


# --------------------------------------------------------------------------------------------
# gunicorn
# --------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn_server(env: dict, log_path: Path, start_timeout: float):
    port = free_port()
    env = {**env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "ACCESS_LOG": ""}
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w+") as server_log:
        # Own session, so Ctrl-C in the terminal does not stop gunicorn under a running request:
        # the script is interrupted, and the finally below terminates the server.
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                   cwd=ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + start_timeout
            with requests.Session() as probe:
                probe.trust_env = False
                while True:
                    try:
                        if probe.get(url + "/trainers?page=1", timeout=2).status_code == 200:
                            break
                    except requests.RequestException:
                        pass
                    if process.poll() is not None or time.monotonic() > deadline:
                        server_log.flush()
                        server_log.seek(0)
                        raise BenchError(f"gunicorn did not start on {url}:\n{server_log.read()[-4000:]}")
                    time.sleep(0.2)
            log(f"gunicorn (1 gevent worker) answering on {url}, pid {process.pid}")
            try:
                yield url
            except requests.RequestException as error:
                server_log.flush()
                server_log.seek(0)
                raise BenchError(f"request to gunicorn failed: {error}\n{server_log.read()[-4000:]}") from error
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------

def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict:
    return {"p50": percentile(values, 50), "p90": percentile(values, 90), "p99": percentile(values, 99),
            "max": max(values), "mean": statistics.fmean(values)}


def decode_body(raw: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding == "br":
        return brotli.decompress(raw)
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(raw, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(raw)
    raise BenchError(f"unexpected Content-Encoding {encoding!r}")


@dataclass
class Fetched:
    status: int
    headers: requests.structures.CaseInsensitiveDict
    wire: bytes  # body as transferred (compressed)
    body: bytes  # decoded body
    seconds: float


def fetch(session: requests.Session, url: str, headers: dict, timeout: float) -> Fetched:
    started = time.perf_counter()
    with session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=False) as response:
        wire = response.raw.read(decode_content=False)
        seconds = time.perf_counter() - started
        body = decode_body(wire, response.headers.get("Content-Encoding", ""))
        return Fetched(response.status_code, response.headers, wire, body, seconds)


def server_ms(headers) -> float:
    match = SERVER_TIMING_RE.search(headers.get("Server-Timing", ""))
    if not match:
        raise BenchError("response has no `Server-Timing: app;dur=` header (SERVER_TIMING off?)")
    return float(match.group(1))


@dataclass
class Samples:
    server_ms: list[float] = field(default_factory=list)
    client_ms: list[float] = field(default_factory=list)
    wire_bytes: list[int] = field(default_factory=list)
    body_bytes: list[int] = field(default_factory=list)
    encodings: dict[str, int] = field(default_factory=dict)
    per_query_server_ms: dict[str, list[float]] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def add(self, query: str, result: Fetched) -> None:
        ms = server_ms(result.headers)
        self.server_ms.append(ms)
        self.client_ms.append(result.seconds * 1000)
        self.wire_bytes.append(len(result.wire))
        self.body_bytes.append(len(result.body))
        encoding = result.headers.get("Content-Encoding", "identity")
        self.encodings[encoding] = self.encodings.get(encoding, 0) + 1
        self.per_query_server_ms.setdefault(query, []).append(ms)

    def extend(self, other: "Samples") -> None:
        self.server_ms += other.server_ms
        self.client_ms += other.client_ms
        self.wire_bytes += other.wire_bytes
        self.body_bytes += other.body_bytes
        for key, value in other.encodings.items():
            self.encodings[key] = self.encodings.get(key, 0) + value
        for key, value in other.per_query_server_ms.items():
            self.per_query_server_ms.setdefault(key, []).extend(value)

    def report(self) -> dict:
        count = len(self.server_ms)
        return {
            "requests": count,
            "server_ms": summary(self.server_ms),
            "client_ms": summary(self.client_ms),
            "mean_bytes_wire": statistics.fmean(self.wire_bytes),
            "mean_bytes_uncompressed": statistics.fmean(self.body_bytes),
            "content_encoding": self.encodings,
            "throughput_rps": count / self.wall_seconds if self.wall_seconds else None,
            "per_query_server_ms": {q: summary(v) for q, v in self.per_query_server_ms.items()},
        }


def check_fragment(query: str, result: Fetched) -> None:
    if result.status != 200:
        raise BenchError(f"/trainers?{query} answered {result.status}: {result.body[:300]!r}")
    text = result.body.decode("utf-8", "replace")
    if "<html" in text[:500].lower():
        raise BenchError(f"/trainers?{query} answered a full page, not the fragment")
    if "trainer-card" not in text:
        raise BenchError(f"/trainers?{query} found no trainers: the benchmark would time an empty result")


def run_fragments(base_url: str, count: int, offset: int, timeout: float, stop: threading.Event) -> Samples:
    samples = Samples()
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: 127.0.0.1 only
        for i in range(offset, offset + count):
            if stop.is_set():
                break
            query = QUERIES[i % len(QUERIES)]
            result = fetch(session, f"{base_url}/trainers?{query}", FRAGMENT_HEADERS, timeout)
            check_fragment(query, result)
            samples.add(query, result)
    return samples


def bench_sequential(base_url: str, warmup: int, count: int, timeout: float) -> dict:
    stop = threading.Event()
    run_fragments(base_url, warmup, 0, timeout, stop)
    started = time.perf_counter()
    samples = run_fragments(base_url, count, 0, timeout, stop)
    samples.wall_seconds = time.perf_counter() - started
    return samples.report()


def bench_concurrent(base_url: str, threads: int, count: int, timeout: float) -> dict:
    stop = threading.Event()
    share = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    offsets = [sum(share[:i]) for i in range(threads)]
    started = time.perf_counter()
    total = Samples()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(run_fragments, base_url, n, off, timeout, stop) for n, off in zip(share, offsets)]
        try:
            for future in futures:
                total.extend(future.result())
        except BaseException:
            stop.set()
            raise
    total.wall_seconds = time.perf_counter() - started
    report = total.report()
    report["threads"] = threads
    return report


class AssetParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.assets: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "link" and "stylesheet" in (attributes.get("rel") or "").lower().split() and attributes.get("href"):
            self.assets.append(("stylesheet", attributes["href"]))
        elif tag == "script" and attributes.get("src"):
            self.assets.append(("script", attributes["src"]))


def bench_homepage(base_url: str, timeout: float) -> dict:
    resources = []
    with requests.Session() as session:  # fresh session: no cookies, nothing cached
        session.trust_env = False
        page = fetch(session, base_url + "/", HOME_HEADERS, timeout)
        if page.status != 200:
            raise BenchError(f"GET / answered {page.status}")
        parser = AssetParser()
        parser.feed(page.body.decode("utf-8", "replace"))
        resources.append(("document", base_url + "/", page))
        for kind, href in parser.assets:
            url = urljoin(base_url + "/", href)
            if urlsplit(url).netloc != urlsplit(base_url).netloc:
                raise BenchError(f"homepage references a non-local asset {url}")
            fetched = fetch(session, url, HOME_HEADERS, timeout)
            if fetched.status != 200:
                raise BenchError(f"GET {url} answered {fetched.status}")
            resources.append((kind, url, fetched))
    rows = [{
        "kind": kind,
        "path": urlsplit(url).path,
        "status": fetched.status,
        "content_encoding": fetched.headers.get("Content-Encoding", "identity"),
        "bytes_wire": len(fetched.wire),
        "bytes_uncompressed": len(fetched.body),
        "cache_control": fetched.headers.get("Cache-Control", ""),
        "client_ms": fetched.seconds * 1000,
    } for kind, url, fetched in resources]
    return {
        "resources": rows,
        "total_bytes_wire": sum(r["bytes_wire"] for r in rows),
        "total_bytes_uncompressed": sum(r["bytes_uncompressed"] for r in rows),
    }


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def print_table(headers: list[str], rows: list[list], align: str | None = None) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(values):
        return "  ".join(v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, align))

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))


def fmt_ms(value: float) -> str:
    return f"{value:.2f}"


def print_latency(title: str, report: dict) -> None:
    extra = f", {report['threads']} client threads" if "threads" in report else ", 1 client, keep-alive"
    print(f"\n{title} ({report['requests']} requests{extra}, {report['throughput_rps']:.0f} req/s)")
    rows = []
    for label, key in (("server (Server-Timing app)", "server_ms"), ("client round trip", "client_ms")):
        s = report[key]
        rows.append([label, fmt_ms(s["p50"]), fmt_ms(s["p90"]), fmt_ms(s["p99"]), fmt_ms(s["max"]), fmt_ms(s["mean"])])
    print_table(["ms", "p50", "p90", "p99", "max", "mean"], rows)
    encodings = ", ".join(f"{k}×{v}" for k, v in report["content_encoding"].items())
    print(f"fragment size: {report['mean_bytes_wire']:.0f} B on the wire ({encodings}), "
          f"{report['mean_bytes_uncompressed']:.0f} B uncompressed (mean)")


def print_per_query(report: dict) -> None:
    print("\nPer query, server ms (sequential run)")
    rows = [[q, fmt_ms(s["p50"]), fmt_ms(s["p90"]), fmt_ms(s["p99"]), fmt_ms(s["max"])]
            for q, s in report["per_query_server_ms"].items()]
    print_table(["/trainers?", "p50", "p90", "p99", "max"], rows)


def print_homepage(home: dict) -> None:
    print("\nHomepage first load (fresh session, Accept-Encoding: br, gzip)")
    rows = [[r["path"] if len(r["path"]) < 60 else "…" + r["path"][-58:], r["content_encoding"], r["bytes_wire"],
             r["bytes_uncompressed"], r["cache_control"] or "-"] for r in home["resources"]]
    rows.append(["TOTAL", "", home["total_bytes_wire"], home["total_bytes_uncompressed"], ""])
    print_table(["resource", "encoding", "wire B", "raw B", "Cache-Control"], rows, align="llrrl")


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--trainers", type=int, default=10_000, help="bulk trainers to seed")
    parser.add_argument("--requests", type=int, default=1000, help="sequential fragment requests measured")
    parser.add_argument("--warmup", type=int, default=50, help="fragment requests before measuring")
    parser.add_argument("--threads", type=int, default=4, help="client threads for the concurrency run (0: skip)")
    parser.add_argument("--concurrent-requests", type=int, default=1000, help="requests in the concurrency run")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
                        help="PostgreSQL server (env BENCH_DATABASE_URL); a throwaway database is made on it")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
                        help="Redis server (env BENCH_REDIS_URL); an empty db number on it is used")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")
    parser.add_argument("--seed-timeout", type=float, default=900.0, help="seconds allowed for migrate/seed")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    for name in ("trainers", "requests", "warmup", "threads", "concurrent_requests"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.requests < 1:
        parser.error("--requests must be >= 1")
    return args


def rounded(value):
    """Floats to 2 decimals, inside dicts and lists too (for the JSON result line)."""
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)  # run the cleanup in the finally blocks


def run_as_script(main) -> None:
    """Exit with main()'s code (1: a target missed or a correctness FAIL); 130 on Ctrl-C, 2 on a
    crash, so a crash is never mistaken for a measured result."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        sys.exit(130)
    except Exception:
        import traceback

        traceback.print_exc()
        sys.exit(2)


def cleanup_on_sigterm() -> None:
    """SIGTERM exits through the finally blocks, so the throwaway database is dropped."""
    signal.signal(signal.SIGTERM, _terminate)


def main(argv=None) -> int:
    args = parse_args(argv)
    cleanup_on_sigterm()
    if not list(ROOT.joinpath("static").rglob("*-" + "[0-9a-f]" * 32 + ".*")):
        log("warning: no digested static files; run `make assets` first")

    result: dict = {"benchmark": "fittribe-search", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    workdir = Path(tempfile.mkdtemp(prefix="fittribe-bench-"))
    try:
        result["machine"] = machine_info(psycopg_url(args.database_url))
        with throwaway_database(args.database_url) as (db_name, db_url), empty_redis_db(args.redis_url) as redis_url:
            # The app's settings come from the environment: keep the caller's out of the way.
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("FLASK_", "SQLALCHEMY", "RATELIMIT_", "DATABASE_", "REDIS_"))}
            env.update({
                "FITTRIBE_ENV": "development",
                "DATABASE_URL": db_url.replace("postgresql://", "postgresql+psycopg://", 1),
                "REDIS_URL": redis_url,
                "RATELIMIT_KEY_PREFIX": f"bench-{os.getpid()}",
                "INSTANCE_PATH": str(workdir / "instance"),
                "SERVER_TIMING": "1",
                "PYTHONUNBUFFERED": "1",
            })
            started = time.perf_counter()
            run_flask(["db", "upgrade"], env, args.seed_timeout)
            migrate_s = time.perf_counter() - started
            started = time.perf_counter()
            seed_out = run_flask(["seed", "--trainers", str(args.trainers)], env, args.seed_timeout)
            seed_s = time.perf_counter() - started
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")  # what autovacuum would do shortly after a bulk load
            result["database"] = {"name": db_name, "migrate_s": round(migrate_s, 2), "seed_s": round(seed_s, 2),
                                  "seed_output": seed_out.strip().splitlines()[-1:], **table_counts(db_url)}
            log(f"migrated in {migrate_s:.1f}s, seeded {args.trainers} trainers in {seed_s:.1f}s")

            with gunicorn_server(env, workdir / "gunicorn.log", start_timeout=30) as base_url:
                log(f"sequential: {args.warmup} warm-up + {args.requests} requests")
                sequential = bench_sequential(base_url, args.warmup, args.requests, args.timeout)
                result["search_sequential"] = sequential
                if args.threads and args.concurrent_requests:
                    log(f"concurrent: {args.threads} threads, {args.concurrent_requests} requests")
                    result["search_concurrent"] = bench_concurrent(base_url, args.threads,
                                                                   args.concurrent_requests, args.timeout)
                log("homepage first load")
                result["homepage"] = bench_homepage(base_url, args.timeout)
                result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    except (BenchError, requests.RequestException, psycopg.Error, redis_lib.RedisError) as error:
        log(f"error: {error}")
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    seq = result["search_sequential"]
    targets = [
        {"name": "search fragment p50 server-side", "value": round(seq["server_ms"]["p50"], 2),
         "limit": TARGET_SEARCH_P50_MS, "unit": "ms"},
        {"name": "search fragment p99 server-side", "value": round(seq["server_ms"]["p99"], 2),
         "limit": TARGET_SEARCH_P99_MS, "unit": "ms"},
        {"name": "homepage first load compressed", "value": result["homepage"]["total_bytes_wire"],
         "limit": TARGET_HOME_BYTES, "unit": "B"},
    ]
    for target in targets:
        target["pass"] = target["value"] <= target["limit"]
    result["targets"] = targets
    result["pass"] = all(t["pass"] for t in targets)

    m, d = result["machine"], result["database"]
    print(f"\nFitTribe search benchmark — {m['nproc']} CPU(s), {m['cpu_model']}, PostgreSQL {m['postgresql']}, "
          f"Python {m['python']}")
    print(f"Load average (1/5/15 min): {' '.join(map(str, m['loadavg_before']))} before, "
          f"{' '.join(map(str, m['loadavg_after']))} after"
          + ("  (busy before the run: other work may have slowed it down)"
             if m["loadavg_before"][0] > m["nproc"] / 2 else ""))
    print(f"Data: {d['trainer_profiles']} trainer profiles ({d['listed_trainers']} listed), "
          f"{d['trainer_specialties']} specialty links, {d['trainer_languages']} language rows; "
          f"seeded in {d['seed_s']:.1f}s (migrations {d['migrate_s']:.1f}s)")
    print_latency("Search fragment, sequential", seq)
    print_per_query(seq)
    if "search_concurrent" in result:
        print_latency("Search fragment, concurrent", result["search_concurrent"])
    print_homepage(result["homepage"])
    print("\nTargets")
    print_table(["target", "measured", "limit", "result"],
                [[t["name"], f"{t['value']} {t['unit']}", f"≤ {t['limit']:g} {t['unit']}",
                  "PASS" if t["pass"] else "FAIL"] for t in targets], align="lrrl")
    result = rounded(result)
    line = json.dumps(result, separators=(",", ":"), default=str)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print()
    print(line)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    run_as_script(main)
