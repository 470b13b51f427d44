"""Operations: structured request logs with a request id, Prometheus metrics, error-spike alerts,
and the /healthz and /metrics endpoints (fittribe/web/ops.py)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from ..web import ops as views
    from . import alerts, logs

    logs.init_app(app)
    alerts.init_app(app)
    app.register_blueprint(views.bp)
