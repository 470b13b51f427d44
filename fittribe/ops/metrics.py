"""Prometheus metrics.

Under gunicorn every worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR (made and
emptied by gunicorn.conf.py before the workers start) and /metrics adds up all the workers' files.
Without that variable (tests in-process, the CLI) the default single-process registry is used.
prometheus_client picks its mode when it is first imported, so the variable must be set before."""
from __future__ import annotations

import os

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

__all__ = ["CONNECTS_SHED", "CONTENT_TYPE_LATEST", "EVENTS_PUBLISHED", "OPEN_STREAMS", "REQUEST_SECONDS", "WEBHOOKS", "exposition"]

# Labels stay few and bounded: the route template (url_rule), never the raw path.
REQUEST_SECONDS = Histogram("fittribe_http_request_duration_seconds",
                            "Time to answer a request (an SSE stream: until it starts streaming)",
                            ("method", "route", "status"))
OPEN_STREAMS = Gauge("fittribe_sse_open_streams", "SSE streams open now",
                     multiprocess_mode="livesum")  # live workers only: a dead worker's streams are gone
CONNECTS_SHED = Counter("fittribe_sse_connects_shed", "Stream connects answered 503 + Retry-After: no slot "
                        "came free in time (fittribe/realtime/admission.py)")
EVENTS_PUBLISHED = Counter("fittribe_events_published", "Outbox events published to Redis, by channel kind",
                           ("channel",))
WEBHOOKS = Counter("fittribe_webhooks", "Payment webhooks received, by provider and outcome", ("provider", "outcome"))

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    REQUEST_SECONDS.labels(method if method in KNOWN_METHODS else "other", route or "unmatched",
                           f"{status // 100}xx").observe(seconds)


def exposition() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()  # a fresh one per scrape, as prometheus_client's docs ask
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
