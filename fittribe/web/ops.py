"""/healthz for load balancers and /metrics for Prometheus. Both answer plain HTTP (no HTTPS
redirect), are never rate limited nor CSRF-checked, and set no session cookie."""
from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
from collections.abc import Callable

import redis
from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import Engine, text

from ..extensions import csrf, db, limiter, talisman
from ..ops import metrics as ops_metrics

bp = Blueprint("ops", __name__)
# Where Prometheus may scrape from without a token: this host and private networks (RFC 1918, IPv6
# unique-local). Spelled out: ipaddress's is_private also counts documentation and benchmark ranges.
SCRAPE_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7"))
log = logging.getLogger(__name__)
_health_clients: dict[str, redis.Redis] = {}


def _ping_database(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _ping_redis(url: str, timeout: float) -> None:
    # Its own client with short socket timeouts: the shared pool waits up to 10 s for a connection.
    client = _health_clients.get(url)
    if client is None:
        client = _health_clients[url] = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, client_name="fittribe-health")
    client.ping()


def _run_checks(checks: dict[str, Callable[[], None]], timeout: float) -> dict[str, str]:
    """Run the checks side by side and give each until the deadline: a database that does not
    answer (a connect hanging, a full pool) is reported as "timeout" instead of holding the probe."""
    results = {name: "timeout" for name in checks}
    errors: dict[str, Exception] = {}

    def run(name: str, check: Callable[[], None]) -> None:
        try:
            check()
            results[name] = "ok"
        except Exception as error:  # noqa: BLE001 - any failure means unhealthy
            errors[name] = error
            results[name] = "error"

    # Threads are greenlets under gunicorn's gevent worker, so this costs next to nothing there.
    threads = [threading.Thread(target=run, args=item, daemon=True) for item in checks.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    outcome = dict(results)
    for name, state in outcome.items():
        if state != "ok":  # the reason goes to the log only: the probe is public
            log.warning("Health check: %s %s (%r)", name, state, errors.get(name))
    return outcome


@bp.route("/healthz", methods=["GET", "HEAD"])
@csrf.exempt
@limiter.exempt
@talisman(force_https=False)  # load balancers probe over plain HTTP
def healthz():
    config = current_app.config
    timeout = config["HEALTHCHECK_TIMEOUT"]
    checks: dict[str, Callable[[], None]] = {"database": lambda engine=db.engine: _ping_database(engine)}
    if config.get("REDIS_URL"):
        checks["redis"] = lambda url=config["REDIS_URL"]: _ping_redis(url, timeout)
    results = _run_checks(checks, timeout)
    healthy = all(state == "ok" for state in results.values())
    results.setdefault("redis", "not configured")  # fallback mode: limits in memory, no live updates
    response = jsonify({"status": "ok" if healthy else "error", **results})
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def _may_read_metrics() -> bool:
    token = current_app.config.get("METRICS_TOKEN")
    if token and hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
        return True
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False  # relayed by a proxy: the peer address is the proxy's, not the client's
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in SCRAPE_NETWORKS)


@bp.get("/metrics")
@csrf.exempt
@limiter.exempt
@talisman(force_https=False)  # Prometheus scrapes over plain HTTP inside the network
def metrics():
    if not _may_read_metrics():
        # Plain text, not the HTML error page (which would start a session for its CSRF token).
        return Response("Forbidden\n", status=403, mimetype="text/plain")
    return Response(ops_metrics.exposition(), headers={"Content-Type": ops_metrics.CONTENT_TYPE_LATEST,
                                                        "Cache-Control": "no-store"})
