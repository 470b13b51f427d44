"""What the two live benchmarks (live_pages.py, live_order.py) share: a code tree to run (this
checkout or a git worktree of a baseline commit), its own PostgreSQL database and Redis db, real
gunicorn + `flask worker` started from that tree, worker CPU from /proc, a raw SSE reader and the
few regular expressions that read htmx attributes out of a page.

Loopback only. Every process started here is stopped by pid, every database dropped and every
worktree removed on the way out (also on an error, Ctrl-C or SIGTERM)."""
from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from search import (BenchError, empty_redis_db, free_port, log, percentile, psycopg_url, rounded,  # noqa: E402,F401
                    throwaway_database, with_database)

PY = sys.executable
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEMO_PASSWORD = "fittribe-demo"
TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# Code trees
# --------------------------------------------------------------------------------------------

@dataclass
class Tree:
    label: str
    root: Path


@contextlib.contextmanager
def baseline_tree(ref: str, tmp: Path):
    """A detached git worktree of `ref` with its static files built the way `make assets` does
    (htmx from this checkout's node_modules, then `flask digest compile`); the same .venv runs it."""
    path = tmp / f"baseline-{ref}"
    subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT, check=True,
                   capture_output=True, text=True)
    try:
        vendor = path / "static" / "vendor"
        shutil.rmtree(vendor, ignore_errors=True)
        (vendor / "ext").mkdir(parents=True)
        dist = ROOT / "node_modules" / "htmx.org" / "dist"
        if not dist.exists():
            raise BenchError("node_modules/htmx.org is missing: run `make assets` in this checkout first")
        shutil.copy(dist / "htmx.min.js", vendor)
        shutil.copy(dist / "ext" / "hx-sse.min.js", vendor / "ext")
        for step in (["digest", "clean"], ["digest", "compile"]):
            subprocess.run([PY, "-m", "flask", "--app", "wsgi", *step], cwd=path, check=True, capture_output=True,
                           env={**os.environ, "DATABASE_URL": "sqlite://"})
        log(f"baseline worktree of {ref} at {path}")
        yield Tree(f"baseline {ref}", path)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True)


# --------------------------------------------------------------------------------------------
# A running site: database, Redis db, gunicorn, background worker
# --------------------------------------------------------------------------------------------

@dataclass
class Site:
    tree: Tree
    url: str
    db_url: str  # psycopg URL of the throwaway database
    master: subprocess.Popen
    worker: subprocess.Popen
    workers: list[int] = field(default_factory=list)  # gunicorn worker pids
    env: dict = field(default_factory=dict)
    log_path: Path | None = None

    def server_errors(self) -> dict[str, int]:
        """Exception names in gunicorn's log so far (what a 5xx came from), most frequent first."""
        if self.log_path is None or not self.log_path.exists():
            return {}
        names = Counter(re.findall(r"\b([A-Z]\w*(?:Error|Exception|Timeout))\b", self.log_path.read_text(errors="replace")))
        return dict(names.most_common(5))


def app_env(db_url: str, redis_url: str, tmp: Path, extra: dict | None = None) -> dict:
    """The app's settings for a bench run. Every simulated page sends its own X-Forwarded-For
    (TRUSTED_PROXIES=1), so per-address limits count pages as separate visitors; pages that
    share one logged-in cookie would still hit the per-user stream cap, so it is off, and the
    connect limit is raised: the bench opens thousands of streams in seconds."""
    prefix = f"bench-live-{os.getpid()}-{secrets.token_hex(3)}:"
    return {
        **os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "FITTRIBE_ENV": "development",
        "SSE_CHANNEL_PREFIX": prefix, "RATELIMIT_KEY_PREFIX": prefix + "limits",
        "STREAM_CAP_PER_CLIENT": "0", "RATELIMIT_STREAM": "1000000 per minute",
        "RATELIMIT_LOGIN": "1000 per minute", "TRUSTED_PROXIES": "1", "ACCESS_LOG": "",
        "INSTANCE_PATH": str(tmp / "instance"), "MAIL_OUTBOX_DIR": str(tmp / "mail"),
        "WORKER_CONNECTIONS": "30000", **(extra or {}),
    }


def flask_cmd(tree: Tree, args: list[str], env: dict, timeout: float = 300) -> str:
    result = subprocess.run([PY, "-m", "flask", "--app", "wsgi", *args], cwd=tree.root, env=env,
                            capture_output=True, text=True, timeout=timeout, start_new_session=True)
    if result.returncode != 0:
        raise BenchError(f"`flask {' '.join(args)}` failed in {tree.root}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def children_of(pid: int) -> list[int]:
    pids = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in task.read_text().split()]
    return pids


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (threads included), from /proc/<pid>/stat."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def _stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def running_site(tree: Tree, workers: int, database_url: str, redis_url: str, tmp: Path,
                 extra_env: dict | None = None):
    """A fresh database (migrated with `flask db upgrade`, seeded with `flask seed`), a claimed
    Redis db, gunicorn with `workers` gevent workers and one `flask worker`, all of `tree`."""
    with throwaway_database(database_url) as (_, db_url), empty_redis_db(redis_url) as redis_db:
        env = app_env(db_url, redis_db, tmp, extra_env)
        started = time.monotonic()
        flask_cmd(tree, ["db", "upgrade"], env)
        flask_cmd(tree, ["seed"], env)
        log(f"{tree.label}: migrated and seeded in {time.monotonic() - started:.1f} s")
        port = free_port()
        env = {**env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers)}
        with open(tmp / f"gunicorn-{port}.log", "w+") as glog, open(tmp / f"worker-{port}.log", "w+") as wlog:
            master = subprocess.Popen([PY, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=tree.root,
                                      env=env, stdout=glog, stderr=subprocess.STDOUT, start_new_session=True)
            bg = subprocess.Popen([PY, "-m", "flask", "--app", "wsgi", "worker"], cwd=tree.root, env=env,
                                  stdout=wlog, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                url = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 60
                while True:
                    with contextlib.suppress(requests.RequestException):
                        if requests.get(url + "/trainers", timeout=3).status_code == 200:
                            break
                    if master.poll() is not None or time.monotonic() > deadline:
                        glog.seek(0)
                        raise BenchError(f"gunicorn did not start:\n{glog.read()[-3000:]}")
                    time.sleep(0.3)
                pids = children_of(master.pid)
                while len(pids) < workers and time.monotonic() < deadline:
                    time.sleep(0.2)
                    pids = children_of(master.pid)
                log(f"{tree.label}: gunicorn {url} ({workers} gevent worker(s), pids {pids}), flask worker pid {bg.pid}")
                yield Site(tree, url, psycopg_url(db_url), master, bg, pids, env, Path(glog.name))
            finally:
                _stop(bg)
                _stop(master)


def outbox_columns(db_url: str) -> set[str]:
    with psycopg.connect(db_url) as conn:
        return {name for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'")}


def outbox_position_column(db_url: str) -> str:
    """`position` when the outbox has the commit-ordered column (#11), else `id`."""
    return "position" if "position" in outbox_columns(db_url) else "id"


# --------------------------------------------------------------------------------------------
# Synchronous browser sessions (the people who make the changes)
# --------------------------------------------------------------------------------------------

CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"|name="csrf_token" type="hidden" value="([^"]+)"'
                     r'|name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    match = CSRF_RE.search(page)
    if not match:
        raise BenchError("no CSRF token on the page")
    return next(g for g in match.groups() if g)


_ip_counter = iter(range(1, 10 ** 7))


def fake_ip() -> str:
    """A distinct client address per simulated visitor (sent as X-Forwarded-For)."""
    n = next(_ip_counter)
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


class Browser(requests.Session):
    """One visitor: its own cookies and address."""

    def __init__(self, base: str, email: str | None = None):
        super().__init__()
        self.trust_env = False
        self.base = base
        self.headers["X-Forwarded-For"] = fake_ip()
        if email:
            page = self.get(base + "/login")
            response = self.post(base + "/login", data={"csrf_token": csrf_of(page.text), "email": email,
                                                        "password": DEMO_PASSWORD}, allow_redirects=False)
            if response.status_code not in (302, 303):
                raise BenchError(f"login as {email} failed: HTTP {response.status_code}")

    def page(self, path: str) -> str:
        response = self.get(self.base + path, timeout=60)
        if response.status_code != 200:
            raise BenchError(f"GET {path}: HTTP {response.status_code}")
        return response.text

    def post_form(self, path: str, data: dict, page_path: str | None = None) -> requests.Response:
        token = csrf_of(self.page(page_path or path))
        return self.post(self.base + path, data={"csrf_token": token, **data}, allow_redirects=False, timeout=60)

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.cookies)


# --------------------------------------------------------------------------------------------
# Page markup: the #live element, htmx attributes, elements by id
# --------------------------------------------------------------------------------------------

LIVE_RE = re.compile(r'<[a-z][^>]*\bid="live"[^>]*>', re.I)
ATTR_RE = re.compile(r'([:\w-]+)\s*=\s*(?:"([^"]*)"|\'([^\']*)\')')
OPEN_TAG_RE = re.compile(r"<([a-zA-Z][\w-]*)((?:\s+[^\s=>]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*(/?)>")
DATETIME_RE = re.compile(r'datetime="([^"]+)"')


def attrs(tag: str) -> dict[str, str]:
    return {m.group(1).lower(): html.unescape(m.group(2) if m.group(2) is not None else m.group(3))
            for m in ATTR_RE.finditer(tag)}


def stream_path(page: str) -> str:
    match = LIVE_RE.search(page)
    if not match:
        raise BenchError("the page has no #live element")
    url = attrs(match.group(0)).get("hx-sse:connect")
    if not url:
        raise BenchError("#live has no hx-sse:connect")
    return url


def element_end(doc: str, start: int, tag: str) -> int:
    """End of the element whose opening tag starts at `start` (same-name nesting counted)."""
    depth = 0
    for match in re.finditer(r"<(/?)%s\b[^>]*?(/?)>" % re.escape(tag), doc[start:], re.I):
        if match.group(1):
            depth -= 1
        elif not match.group(2):
            depth += 1
        if depth == 0:
            return start + match.end()
    return len(doc)


_INSTANTS: dict[str, frozenset[float]] = {}


def instants(fragment: str) -> frozenset[float]:
    """Every `datetime="…"` in a fragment as a UTC timestamp, whatever zone it was rendered in.
    Thousands of simulated pages hold the same (interned) fragment: it is read once, so the
    client's own work does not end up in the page's figures."""
    found = _INSTANTS.get(fragment)
    if found is None:
        if len(_INSTANTS) > 4000:
            _INSTANTS.clear()
        found = _INSTANTS[fragment] = frozenset(_read_instants(fragment))
    return found


def _read_instants(fragment: str) -> set[float]:
    from datetime import datetime

    found = set()
    for value in DATETIME_RE.findall(fragment):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                found.add(moment.timestamp())
    return found


# --------------------------------------------------------------------------------------------
# A raw SSE connection (the technique of ../shared/bench/sse_load.py: no HTTP library per stream)
# --------------------------------------------------------------------------------------------

class RawSSE(asyncio.Protocol):
    """Status line + headers, then a chunked (or plain) body split into SSE messages. Calls
    on_event(id, event, data) per message (id/event None when absent) and on_close(error) once."""

    __slots__ = ("request", "on_event", "on_close", "transport", "head", "in_body", "chunked", "need", "skip",
                 "cbuf", "sbuf", "ended", "status", "nbytes", "on_open")

    def __init__(self, request: bytes, on_event, on_close, on_open=None):
        self.request, self.on_event, self.on_close, self.on_open = request, on_event, on_close, on_open
        self.transport = None
        self.head = b""
        self.in_body = self.chunked = self.ended = False
        self.need, self.skip = -1, 0
        self.cbuf = self.sbuf = b""
        self.status = None
        self.nbytes = 0

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc):
        if self.on_close:
            close, self.on_close = self.on_close, None
            close(exc if exc else ("ended" if self.status == 200 else f"HTTP {self.status}"))

    def data_received(self, data):
        self.nbytes += len(data)
        if not self.in_body:
            head = self.head + data
            cut = head.find(b"\r\n\r\n")
            if cut < 0:
                self.head = head
                return
            self.head = b""
            data = head[cut + 4:]
            lines = head[:cut].split(b"\r\n")
            try:
                self.status = int(lines[0].split(b" ", 2)[1])
            except (IndexError, ValueError):
                self.status = 0
            if self.status != 200:
                self.transport.close()
                return
            self.chunked = any(k.strip().lower() == b"transfer-encoding" and b"chunked" in v.lower()
                               for k, _, v in (ln.partition(b":") for ln in lines[1:]))
            self.in_body = True
            if self.on_open:
                self.on_open()
        if self.chunked:
            data = self._dechunk(data)
        if data:
            buf = (self.sbuf + data).replace(b"\r\n", b"\n")
            while (cut := buf.find(b"\n\n")) >= 0:
                self._message(buf[:cut])
                buf = buf[cut + 2:]
            self.sbuf = buf
        if self.ended:
            self.transport.close()

    def _message(self, block: bytes) -> None:
        event_id = event = None
        data = []
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            elif line.startswith(b"id:"):
                event_id = line[3:].strip().decode()
            elif line.startswith(b"event:"):
                event = line[6:].strip().decode()
        if data or event or event_id:  # an id alone: htmx keeps it for its next Last-Event-ID
            self.on_event(event_id, event, b"\n".join(data).decode())

    def _dechunk(self, data):
        if self.cbuf:
            data, self.cbuf = self.cbuf + data, b""
        out, pos, n = [], 0, len(data)
        while pos < n and not self.ended:
            if self.need > 0:
                take = min(self.need, n - pos)
                out.append(data[pos:pos + take])
                pos += take
                self.need -= take
                if self.need == 0:
                    self.skip = 2
            elif self.skip > 0:
                take = min(self.skip, n - pos)
                pos += take
                self.skip -= take
                if self.skip == 0:
                    self.need = -1
            else:
                j = data.find(b"\r\n", pos)
                if j < 0:
                    self.cbuf = data[pos:]
                    break
                try:
                    size = int(data[pos:j].split(b";", 1)[0], 16)
                except ValueError:
                    self.transport.close()
                    break
                pos = j + 2
                if size == 0:
                    self.ended = True
                else:
                    self.need = size
        return b"".join(out)


def stream_request(host: str, path: str, cookie: str, ip: str, last_event_id: str | None) -> bytes:
    """The GET htmx's SSE extension sends (fetch with the page's cookies and HX headers)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Accept: text/html, text/event-stream",
             "HX-Request: true", "Cache-Control: no-cache", f"X-Forwarded-For: {ip}"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if last_event_id:
        lines.append(f"Last-Event-ID: {last_event_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def pct_summary(values: list[float]) -> dict:
    values = sorted(values)
    if not values:
        return {"p50": None, "p99": None, "max": None}
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": values[-1]}


def finish(benchmark: str, verdicts: list[tuple[str, bool, str]], result: dict, json_out: str | None) -> int:
    """PASS/FAIL lines, the JSON result line (also to `json_out`), and the exit code: 1 on a FAIL."""
    for name, ok, detail in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {name}  ({detail})")
    result = {"benchmark": benchmark, **result, "pass": all(ok for _, ok, _ in verdicts)}
    line = json.dumps(rounded(result), default=str, separators=(",", ":"))
    if json_out:
        Path(json_out).write_text(line + "\n")
    print(line)
    return 0 if result["pass"] else 1


def add_common_args(parser) -> None:
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--json-out", help="write the JSON result line here too")


def begin(args) -> dict:
    """Clean up on SIGTERM too, allow as many open files as the system lets (thousands of streams,
    inherited by the servers started here), and describe the machine."""
    from search import cleanup_on_sigterm, machine_info

    cleanup_on_sigterm()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return machine_info(psycopg_url(args.database_url))
