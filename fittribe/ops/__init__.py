"""Operations: structured request logs with a request id, Prometheus metrics, error-spike alerts,
and the /healthz and /metrics endpoints (fittribe/web/ops.py)."""
from __future__ import annotations

from flask import Flask


PROBES = frozenset({"/healthz", "/metrics"})


def init_app(app: Flask) -> None:
    from ..web import ops as views
    from . import alerts, logs

    logs.init_app(app)
    alerts.init_app(app)
    app.register_blueprint(views.bp)
    _probes_answer_any_host(app)


def _probes_answer_any_host(app: Flask) -> None:
    """Load balancers, Docker's HEALTHCHECK and Prometheus reach a node by its address
    (Host: 10.0.3.7:8000), not by the site's name, which TRUSTED_HOSTS would refuse (400). The
    probes build no links and say the same to any Host: they are served as if sent to the site."""
    trusted = app.config.get("TRUSTED_HOSTS")
    if not trusted:
        return
    site_host = trusted[0].lstrip(".")  # ".example.com" trusts example.com too
    serve = app.wsgi_app

    def probes_answer_any_host(environ, start_response):
        if environ.get("PATH_INFO") in PROBES:
            environ["HTTP_HOST"] = site_host
        return serve(environ, start_response)

    app.wsgi_app = probes_answer_any_host
