#!/usr/bin/env python3
"""SSE fan-out benchmark: FitTribe's hub against stock flask-sse 1.0.0, side by side, same run,
same machine.

Each scenario starts a fresh gunicorn (gevent worker) on 127.0.0.1, opens N streams with the
shared load client (../shared/bench/sse_load.py), publishes M events through Redis exactly as
flask-sse's publish() does, and records publish->receive latency, losses, Redis connections,
worker RSS/fds per stream and worker CPU per delivered event, next to what a bare send() costs on
this machine (the kernel floor of any one-write-per-stream fan-out). Prints a table and one JSON line;
exits 1 when a target of the real-time issue is missed.

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/sse_fanout.py                    # the full set (about 5 minutes)
    .venv/bin/python bench/sse_fanout.py --quick            # 2,000 streams only
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_BENCH", ROOT.parent / "shared" / "bench"))
PY = sys.executable
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

# (label, app, streams, gunicorn workers, client processes)
FULL = [
    ("stock 2k", "stock", 2000, 1, 1), ("hub 2k", "hub", 2000, 1, 1),
    ("stock 5k", "stock", 5000, 1, 1), ("hub 5k", "hub", 5000, 1, 1),
    ("hub 10k", "hub", 10000, 1, 1),
    ("hub 20k/2w", "hub", 20000, 2, 2),
]
QUICK = [("stock 2k", "stock", 2000, 1, 1), ("hub 2k", "hub", 2000, 1, 1)]

TARGETS = {  # from the real-time issue
    "cpu_us_per_event": 15.0, "p99_5k_ms": 100.0, "p99_10k_ms": 200.0, "ramp_10k_s": 10.0,
    "p99_20k_ms": 300.0, "redis_conns_per_worker": 3, "rss_kb_per_stream": 20.0, "fds_per_stream": 1.0,
}


def named_redis_connections(prefix: str) -> int:
    import redis

    return sum(1 for c in redis.Redis.from_url(REDIS_URL).client_list() if c.get("name", "").startswith(prefix))


def loopback_send_floor(streams: int = 5000, rounds: int = 10) -> dict:
    """What one send() of a small event to each of `streams` loopback TCP sockets costs the sending
    process on this machine, with the reader in another process waiting in epoll as the load client
    does: the kernel part (which also runs the receiver's TCP stack and wakes it up) is a floor
    that no SSE server sending one write per stream per event can go under."""
    import selectors

    listener = socket.create_server(("127.0.0.1", 0), backlog=streams)
    port = listener.getsockname()[1]
    ready_r, ready_w = os.pipe()
    reader = os.fork()
    if reader == 0:
        try:
            selector, total = selectors.EpollSelector(), 0
            conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(streams)]
            for conn in conns:
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
            os.write(ready_w, b"x")
            while total < streams * rounds * 100:
                for key, _ in selector.select(timeout=5):
                    with contextlib.suppress(BlockingIOError):
                        total += len(key.fileobj.recv(65536))
        finally:
            os._exit(0)
    accepted = [listener.accept()[0] for _ in range(streams)]
    for conn in accepted:
        conn.setblocking(False)
    os.read(ready_r, 1)
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(rounds):
        for conn in accepted:
            conn.send(b"x" * 100)
        time.sleep(0.5)
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.waitpid(reader, 0)
    for conn in accepted + [listener]:
        conn.close()
    sends = streams * rounds
    return {"sys_us_per_send": round((after.ru_stime - before.ru_stime) * 1e6 / sends, 1),
            "user_us_per_send": round((after.ru_utime - before.ru_utime) * 1e6 / sends, 1)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_pids(master: int, count: int) -> list[int]:
    for _ in range(100):
        pids = []
        for task in Path(f"/proc/{master}/task").glob("*/children"):
            pids += [int(p) for p in task.read_text().split()]
        if len(pids) >= count:
            return pids
        time.sleep(0.1)
    raise RuntimeError("gunicorn workers did not start")


# Anonymous streams without Last-Event-ID never query the database: any reachable server will do.
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")

def start(app: str, workers: int, port: int, prefix: str, tmp: Path) -> subprocess.Popen:
    log = open(tmp / f"{app}-{port}.log", "w")
    if app == "stock":
        command = [PY, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-k", "gevent", "-w", str(workers),
                   "--worker-connections", "20000", "--no-control-socket", "stock_app:app"]
        return subprocess.Popen(command, cwd=SHARED, env={**os.environ, "REDIS_URL": REDIS_URL},
                                stdout=log, stderr=subprocess.STDOUT)
    env = {**os.environ, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers),
           "ACCESS_LOG": "", "REDIS_URL": REDIS_URL, "DATABASE_URL": DATABASE_URL,
           "SSE_CHANNEL_PREFIX": prefix, "STREAM_CAP_PER_CLIENT": "0", "RATELIMIT_STREAM": "10000000 per minute",
           "INSTANCE_PATH": str(tmp)}
    return subprocess.Popen([PY, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--no-control-socket", "wsgi:app"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_up(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "server exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /nope HTTP/1.0\r\n\r\n")
                if sock.recv(12).startswith(b"HTTP/1"):
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not come up")


def stop(server: subprocess.Popen) -> float:
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        return float("inf")
    return time.monotonic() - started


def run_clients(url: str, channel: str, streams: int, procs: int, pids: list[int], args, tmp: Path) -> dict:
    common = [PY, str(SHARED / "sse_load.py"), "--url", url, "--channel", channel, "--messages", str(args.messages),
              "--interval", str(args.interval), "--redis-url", REDIS_URL, "--publish-mode", "flask-sse",
              "--timeout", str(args.timeout)]
    for pid in pids:
        common += ["--pid", str(pid)]
    if streams >= 5000:
        common += ["--reader", "raw", "--uvloop", "--batch-size", "500"]
    if procs == 1:
        out = tmp / f"run-{time.monotonic_ns()}.json"
        subprocess.run(common + ["--clients", str(streams), "--json-out", str(out)], check=False,
                       stdout=subprocess.DEVNULL, timeout=args.timeout + 120)
        return json.loads(out.read_text())
    run_id = f"r{time.monotonic_ns()}"
    per = streams // procs
    parts, listeners = [], []
    for k in range(1, procs):
        part = tmp / f"{run_id}.p{k}.json"
        listeners.append(subprocess.Popen(common + ["--clients", str(per), "--run-id", run_id, "--listen-only",
                                                    "--json-out", str(part), "--lat-out", str(part)[:-5] + ".lat.json"],
                                          stdout=subprocess.DEVNULL))
        parts.append(part)
    first = tmp / f"{run_id}.p0.json"
    subprocess.run(common + ["--clients", str(streams - per * (procs - 1)), "--run-id", run_id, "--peers",
                             str(procs - 1), "--json-out", str(first), "--lat-out", str(first)[:-5] + ".lat.json"],
                   stdout=subprocess.DEVNULL, timeout=args.timeout + 120, check=False)
    for listener in listeners:
        listener.wait(timeout=args.timeout + 60)
    merged = subprocess.run([PY, str(SHARED / "merge_runs.py"), str(first), *map(str, parts)],
                            capture_output=True, text=True, check=True)
    return json.loads(merged.stdout.strip().splitlines()[-1])


def scenario(label: str, app: str, streams: int, workers: int, procs: int, args, tmp: Path) -> dict:
    port = free_port()
    prefix = f"bench-{os.getpid()}-{port}:"
    channel = prefix + "public" if app == "hub" else f"bench-stock-{port}"
    url = f"http://127.0.0.1:{port}/stream" + ("" if app == "hub" else f"?channel={channel}")
    server = start(app, workers, port, prefix, tmp)
    try:
        wait_up(port, server)
        pids = worker_pids(server.pid, workers)
        result = run_clients(url, channel, streams, procs, pids, args, tmp)
        # Stock: every Redis client the streams added; FitTribe: the connections it names.
        redis_conns = ((result.get("redis_connected_clients_open") or 0) - (result.get("redis_connected_clients_before") or 0)
                       if app == "stock" else named_redis_connections("fittribe"))
    finally:
        stop_s = stop(server)
    received = result.get("received") or 0
    connected = result.get("clients_connected") or 0
    rss_open, rss_before = result.get("worker_rss_kb_open"), result.get("worker_rss_kb_before")
    fds_open, fds_before = result.get("worker_fds_open"), result.get("worker_fds_before")
    row = {
        "label": label, "app": app, "streams": streams, "workers": workers, "connected": connected,
        "ramp_s": result.get("ramp_s"), "p50_ms": result["latency_ms"]["p50"], "p99_ms": result["latency_ms"]["p99"],
        "max_ms": result["latency_ms"]["max"], "expected": result.get("expected"), "lost": result.get("lost"),
        "duplicates": result.get("duplicates"),
        "redis_conns": redis_conns,
        "rss_kb_per_stream": round((rss_open - rss_before) / connected, 1) if connected and rss_open else None,
        "fds_per_stream": round((fds_open - fds_before) / connected, 2) if connected and fds_open else None,
        "cpu_us_per_event": round(result["worker_cpu_s_measure"] * 1e6 / received, 1)
        if received and result.get("worker_cpu_s_measure") is not None else None,
        # The part of it spent in the kernel (send() on loopback also runs the receiver's TCP stack).
        "cpu_sys_us_per_event": round(result["worker_cpu_sys_s_measure"] * 1e6 / received, 1)
        if received and result.get("worker_cpu_sys_s_measure") is not None else None,
        "connect_cpu_us": round((result["worker_cpu_s_open"] - result["worker_cpu_s_before"]) * 1e6 / connected)
        if connected and result.get("worker_cpu_s_open") is not None and result.get("worker_cpu_s_before") is not None
        else None,
        "worker_rss_mb": result.get("worker_rss_mb_end"), "stop_s": round(stop_s, 1),
    }
    print(f"# {label}: " + json.dumps(row), flush=True)
    return row


def check(rows: list[dict]) -> list[tuple[str, bool, str]]:
    hub = {r["label"]: r for r in rows if r["app"] == "hub"}
    results = []

    def add(name, ok, detail):
        results.append((name, bool(ok), detail))

    for r in hub.values():
        add(f"{r['label']}: 0 events lost", r["lost"] == 0 and r["connected"] == r["streams"],
            f"lost {r['lost']}, connected {r['connected']}/{r['streams']}")
        add(f"{r['label']}: ≤ {TARGETS['redis_conns_per_worker']} Redis connections per worker",
            r["redis_conns"] <= TARGETS["redis_conns_per_worker"] * r["workers"], f"{r['redis_conns']}")
        add(f"{r['label']}: ≤ {TARGETS['cpu_us_per_event']} µs worker CPU per delivered event",
            r["cpu_us_per_event"] is not None and r["cpu_us_per_event"] <= TARGETS["cpu_us_per_event"],
            f"{r['cpu_us_per_event']} µs")
        add(f"{r['label']}: ≤ {TARGETS['rss_kb_per_stream']} KB RSS and ≤ 1 fd per stream",
            (r["rss_kb_per_stream"] or 99) <= TARGETS["rss_kb_per_stream"] and (r["fds_per_stream"] or 9) <= 1.05,
            f"{r['rss_kb_per_stream']} KB, {r['fds_per_stream']} fds")
    for label, key, target in (("hub 5k", "p99_ms", "p99_5k_ms"), ("hub 10k", "p99_ms", "p99_10k_ms"),
                               ("hub 20k/2w", "p99_ms", "p99_20k_ms")):
        if label in hub:
            add(f"{label}: broadcast p99 ≤ {TARGETS[target]:.0f} ms", hub[label][key] <= TARGETS[target],
                f"{hub[label][key]} ms")
    if "hub 10k" in hub:
        add("hub 10k: connected in ≤ 10 s", (hub["hub 10k"]["ramp_s"] or 99) <= TARGETS["ramp_10k_s"],
            f"{hub['hub 10k']['ramp_s']} s")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 2,000-stream pair")
    parser.add_argument("--only", help="comma-separated scenario labels to run, e.g. 'hub 10k'")
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    plan = QUICK if args.quick else FULL
    if args.only:
        wanted = {label.strip() for label in args.only.split(",")}
        plan = [s for s in plan if s[0] in wanted]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"# machine: {os.cpu_count()} cores, {cpu}; open-file limit {hard}; Redis {REDIS_URL}")
    print(f"# {args.messages} broadcasts, {args.interval} s apart; load client on the same machine")
    floor = loopback_send_floor()
    print(f"# floor: a bare send() of 100 bytes to each of 5,000 loopback sockets read by another process "
          f"costs {floor['sys_us_per_send']} µs kernel + {floor['user_us_per_send']} µs user here", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sse-bench-") as tmp:
        for label, app, streams, workers, procs in plan:
            rows.append(scenario(label, app, streams, workers, procs, args, Path(tmp)))
    header = f"{'scenario':<12}{'conn':>7}{'ramp s':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'lost':>6}" \
             f"{'redis':>7}{'KB/str':>8}{'fd/str':>8}{'µs/evt':>8}{'stop s':>8}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        print(f"{r['label']:<12}{r['connected']:>7}{r['ramp_s']:>8}{r['p50_ms']:>8}{r['p99_ms']:>8}{r['max_ms']:>8}"
              f"{r['lost']:>6}{r['redis_conns']:>7}{str(r['rss_kb_per_stream']):>8}{str(r['fds_per_stream']):>8}"
              f"{str(r['cpu_us_per_event']):>8}{r['stop_s']:>8}")
    verdicts = check(rows)
    print()
    for name, ok, detail in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {name}  ({detail})")
    print(json.dumps({"rows": rows, "send_floor": floor, "pass": all(ok for _, ok, _ in verdicts)}))
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
