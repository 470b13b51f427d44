"""A local cluster without Docker: Debian's nginx with deploy/nginx.conf in front of gunicorn nodes
on free ports plus one `flask worker`, and a light asyncio SSE client that behaves like a page
(reconnects with htmx's delays and sends Last-Event-ID).

Used by tests/deploy/test_multi_node.py (a CI-sized run) and `make bench-cluster` (2,000 streams)."""
from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached in {timeout:.0f} s")
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


class Node:
    """One gunicorn web node (its own process group: master and worker die together)."""

    def __init__(self, env: dict, folder: Path, name: str):
        self.port = free_port()
        self.env = {**env, "BIND": f"127.0.0.1:{self.port}"}
        self.folder, self.name = folder, name
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.folder / f"{self.name}.log", "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                        cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()

    def wait_healthy(self, timeout: float = 60) -> None:
        wait_until(lambda: self.process.poll() is None and answers(self.url + "/healthz"), timeout,
                   f"{self.name} healthy (log: {self.folder / (self.name + '.log')})")

    def kill(self) -> None:
        """A crash: SIGKILL to the master and its worker at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """A deploy: SIGTERM to the master, which stops its worker gracefully."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout)

    def open_streams(self) -> int:
        """The node's own count (its /metrics answers local requests)."""
        text = requests.get(self.url + "/metrics", timeout=5).text
        return int(sum(float(v) for v in re.findall(r"^fittribe_sse_open_streams(?:\{[^}]*\})? (\S+)$", text, re.M)))


class Cluster:
    """nginx + `nodes` gunicorn nodes + one worker on the given PostgreSQL and Redis."""

    def __init__(self, folder: Path, database_url: str, redis_url: str, sse_prefix: str, nodes: int = 2):
        self.folder = folder
        env = {
            **os.environ,
            "FITTRIBE_ENV": "development",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SSE_CHANNEL_PREFIX": sse_prefix,
            "TRUSTED_PROXIES": "1",
            # Every stream comes from 127.0.0.1 here: caps meant for one visitor would stop the test.
            "STREAM_CAP_PER_CLIENT": "0",
            "RATELIMIT_STREAM": "1000000 per minute",
            "RATELIMIT_KEY_PREFIX": f"cluster-{os.getpid()}",
            "WEB_CONCURRENCY": "1",
            "ACCESS_LOG": "",
            "LOG_LEVEL": "WARNING",
            "INSTANCE_PATH": str(folder),
        }
        self.env = env
        self.nodes = [Node(env, folder, f"web{i + 1}") for i in range(nodes)]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.worker: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None

    def nginx_conf(self) -> str:
        """deploy/nginx.conf with this cluster's ports, inside a minimal main configuration."""
        site = (ROOT / "deploy" / "nginx.conf").read_text()
        servers = re.findall(r"^\s*server web\d+:8000.*;$", site, re.M)
        assert len(servers) == 2, "deploy/nginx.conf must name web1:8000 and web2:8000"
        options = servers[0].split(":8000", 1)[1]  # " max_fails=0;"
        local = "\n".join(f"    server 127.0.0.1:{node.port}{options}" for node in self.nodes)
        site = site.replace(servers[0], local).replace(servers[1] + "\n", "")
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        temp = self.folder / "nginx-temp"
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read our temp folders
        return (f"{user}worker_processes 1;\nworker_rlimit_nofile 20000;\npid {self.folder / 'nginx.pid'};\n"
                f"error_log {self.folder / 'nginx-error.log'} warn;\n"
                "events { worker_connections 10000; }\n"
                f"http {{\n access_log off;\n client_body_temp_path {temp}/body;\n proxy_temp_path {temp}/proxy;\n"
                f" fastcgi_temp_path {temp}/fastcgi;\n uwsgi_temp_path {temp}/uwsgi;\n scgi_temp_path {temp}/scgi;\n"
                f"{site}\n}}\n")

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        log = open(self.folder / "worker.log", "ab")
        self.worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT,
                                       env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        (self.folder / "nginx-temp").mkdir(exist_ok=True)
        conf = self.folder / "nginx.conf"
        conf.write_text(self.nginx_conf())
        self.nginx = subprocess.Popen([NGINX, "-p", str(self.folder), "-c", str(conf), "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=open(self.folder / "nginx-error.log", "ab"),
                                      start_new_session=True)
        for node in self.nodes:
            node.wait_healthy()
        wait_until(lambda: answers(self.url + "/healthz"), 30, "nginx answering")

    def errors_logged(self, limit: int = 5) -> str:
        """The most frequent error lines of the nodes and the worker, for a failure message."""
        counts: dict[str, int] = {}
        for log in sorted(self.folder.glob("*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if "Error" in line or '"level": "ERROR"' in line:
                    try:  # a JSON log line: its exception's last line says what happened
                        record = json.loads(line)
                        line = f"{record['message']}: {(record.get('exc_info') or '').strip().splitlines()[-1:]}"
                    except (ValueError, KeyError, TypeError):
                        pass
                    key = f"{log.stem}: {re.sub(r'[0-9]{2}:[0-9:.]+|pid: [0-9]+|[0-9a-f]{32}', '…', line)[:300]}"
                    counts[key] = counts.get(key, 0) + 1
        top = sorted(counts.items(), key=lambda item: -item[1])[:limit]
        return "\n".join(f"{count} × {line}" for line, count in top) or "no errors logged"

    def close(self) -> None:
        for node in self.nodes:
            try:
                node.stop(15)
            except subprocess.TimeoutExpired:
                node.kill()
        for process in (self.worker, self.nginx):
            if process and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


@dataclass
class Page:
    """One open page's stream: the ticks it saw, and how long each reconnect took."""

    last_id: str | None = None
    ticks: list[int] = field(default_factory=list)
    down_since: float | None = None
    reconnects: list[tuple[float, float]] = field(default_factory=list)  # (when it broke, seconds to live again)
    connected: bool = False
    attempt: int = 0  # reconnects since the stream was last live (htmx doubles its delay each time)
    stale: int = 0
    errors: dict[int, int] = field(default_factory=dict)  # HTTP status >= 400 answered to a connect
    shed: int = 0  # 503 + Retry-After: the node had no slot for the connect in time (a deliberate answer)
    timeouts: int = 0  # connects that did not answer within the page's connect timeout


async def _read_body(reader: asyncio.StreamReader, headers: bytes):
    """The response body as it arrives: chunked (a stream), or Content-Length long (a stream
    refused by a stopping node: ": restarting"), or up to the end of the connection."""
    length = re.search(rb"^content-length: *(\d+)", headers, re.M)
    if length:
        yield await reader.readexactly(int(length.group(1)))
    elif b"transfer-encoding: chunked" in headers:
        while size := int((await reader.readline()).split(b";")[0].strip() or b"0", 16):
            yield (await reader.readexactly(size + 2))[:-2]
    else:
        while data := await reader.read(65536):
            yield data


def _take_event(page: Page, block: str) -> None:
    if block.startswith(": connected"):  # the stream is live (replay follows): the page is back
        page.connected = True
        page.attempt = 0
        if page.down_since is not None:
            page.reconnects.append((page.down_since, time.monotonic() - page.down_since))
            page.down_since = None
        return
    fields: dict[str, str] = {}
    for line in block.split("\n"):
        if line and not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = fields.get(name, "") + value.removeprefix(" ")
    if "id" in fields:
        page.last_id = fields["id"]
    if fields.get("event") == "tick":
        page.ticks.append(int(fields["data"]))
    elif fields.get("event") == "live:resync":  # too far behind to replay: the page re-fetches its parts
        page.stale += 1


async def _connect(page: Page, port: int):
    """Open /stream with the page's Last-Event-ID: (status, lower-cased headers, reader, writer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        last = f"Last-Event-ID: {page.last_id}\r\n" if page.last_id else ""
        writer.write(f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{last}\r\n".encode())
        status = int((await reader.readline()).split()[1])
        headers = b""
        while (line := await reader.readline()) not in (b"\r\n", b""):
            headers += line.lower()
        return status, headers, reader, writer
    except BaseException:
        writer.close()
        raise


async def follow(page: Page, port: int, stop: asyncio.Event, connect_timeout: float) -> None:
    """GET /stream through nginx for as long as `stop` is not set, reconnecting like a browser:
    a connect without an answer within `connect_timeout` is given up (htmx's connectTimeout)."""
    while not stop.is_set():
        writer = None
        try:
            try:
                status, headers, reader, writer = await asyncio.wait_for(_connect(page, port), connect_timeout)
            except asyncio.TimeoutError:
                page.timeouts += 1
                raise OSError("connect timed out") from None
            if status == 503 and b"retry-after:" in headers:
                page.shed += 1
            elif status != 200:
                page.errors[status] = page.errors.get(status, 0) + 1
            else:
                buffer = ""
                async for data in _read_body(reader, headers):
                    buffer += data.decode()
                    *blocks, buffer = buffer.split("\n\n")
                    for block in blocks:
                        _take_event(page, block)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            pass
        finally:
            if writer is not None:
                writer.close()
        if stop.is_set():
            return
        if page.down_since is None:
            page.down_since = time.monotonic()
        page.connected = False
        page.attempt += 1
        await asyncio.sleep(reconnect_delay(page.attempt))


def reconnect_delay(attempt: int) -> float:
    """htmx 4's SSE extension: 500 ms doubled per failed attempt, at most 60 s, ±30 % jitter."""
    delay = min(0.5 * 2 ** (attempt - 1), 60.0)
    return delay * random.uniform(0.7, 1.3)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"n={len(values)} p50={percentile(values, 0.5) * 1000:.0f} ms "
            f"p99={percentile(values, 0.99) * 1000:.0f} ms max={max(values) * 1000:.0f} ms "
            f"mean={statistics.fmean(values) * 1000:.0f} ms")
