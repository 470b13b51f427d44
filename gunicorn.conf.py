"""gunicorn settings: gevent workers so one process holds many open SSE streams."""
import multiprocessing
import os

port = os.environ.get("PORT")
bind = os.environ.get("BIND") or (f"0.0.0.0:{port}" if port else "127.0.0.1:5000")
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", min(2, multiprocessing.cpu_count())))
# Requests in progress per worker. An open SSE stream stops counting once its headers are out
# (the hub owns its socket), so this bounds page loads and stream connects, not open pages.
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", 10000))
# Streams are long-lived: a deploy should not wait gunicorn's default 30 s for them.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", 5))
timeout = 30
# Short keep-alive: after SIGTERM ends the streams, idle connections free the worker quickly.
keepalive = 2
# The app logs every request already (JSON, secrets redacted): gunicorn's own access log is off
# unless ACCESS_LOG names a file or "-" (stderr), and then it is redacted the same way.
accesslog = os.environ.get("ACCESS_LOG") or None
logger_class = "fittribe.ops.access_log.RedactingLogger"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's runtime control socket (~/.gunicorn/gunicorn.ctl) is shared by every server of the
# user: several servers (tests, benchmarks, make run) would replace each other's. Not used here.
control_socket_disable = True
# No "Server: gunicorn" (the software and, by its headers' order, its version): a neutral name.
import gunicorn.http.wsgi  # noqa: E402

gunicorn.http.wsgi.SERVER = "FitTribe"
# Set by on_starting when PROMETHEUS_MULTIPROC_DIR is not given, and removed on exit.
_metrics_tmpdir: str | None = None


def on_starting(server):
    """Prometheus multiprocess mode (fittribe/ops/metrics.py): each worker writes its samples to
    files in PROMETHEUS_MULTIPROC_DIR and /metrics adds them up. Set here, in the master, before any
    worker imports prometheus_client (it picks its mode on import); emptied, because files left by
    an earlier run's processes would be counted too. Unset: a private temporary folder."""
    global _metrics_tmpdir
    import tempfile
    from pathlib import Path

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        folder = _metrics_tmpdir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="fittribe-metrics-")
    Path(folder).mkdir(parents=True, exist_ok=True)
    for stale in Path(folder).glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    """A dead worker's open-streams gauge must stop counting (its counters and histograms stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _metrics_tmpdir:
        import shutil

        shutil.rmtree(_metrics_tmpdir, ignore_errors=True)


def worker_exit(server, worker):
    """However the worker stops (SIGTERM, max_requests, its parent gone), the streams the hub holds
    end with the last chunk, give back their leases and presence and log their line."""
    from fittribe.realtime.hub import sse

    sse.shutdown()
    sse.wait_ended(2)


def _redact_access_log_like_the_app():
    from fittribe.ops import access_log
    from fittribe.ops.logs import secret_prefixes
    from wsgi import app  # already imported by this worker

    access_log.secret_prefixes = secret_prefixes(app)


def post_worker_init(worker):
    """On SIGTERM, end every open SSE stream at once so the worker stops in about a second
    (browsers reconnect to the next worker and replay what they missed), and keep long-lived
    stream objects out of full garbage collections."""
    import gc

    from fittribe.realtime.hub import sse

    stop_worker = worker.handle_exit

    def handle_exit(sig, frame):
        stop_worker(sig, frame)
        sse.shutdown()

    worker.handle_exit = handle_exit
    _redact_access_log_like_the_app()
    # Re-register: gunicorn installed the bound method before this hook ran.
    import signal

    signal.signal(signal.SIGTERM, handle_exit)
    gc.freeze()
