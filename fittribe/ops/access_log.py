"""gunicorn's access log with the app's redaction (ACCESS_LOG=- turns it on; the app's own JSON
request log is on anyway): no query string, no secret part of a path (calendar feed and reset
tokens), no referrer beyond its origin, no cookie or authorization header, no WSGI environ.

Kept free of Flask and prometheus_client imports: gunicorn's master loads the logger class before
on_starting has chosen Prometheus' multiprocess mode (gunicorn.conf.py)."""
from __future__ import annotations

from urllib.parse import urlsplit

from gunicorn.glogging import Logger

REDACTED = "[redacted]"
# Paths whose tail is a credential, set per worker from the app's routes (gunicorn.conf.py's
# post_worker_init, fittribe/ops/logs.py's secret_prefixes). Until then every path is cut short.
secret_prefixes: tuple[str, ...] | None = None
HIDDEN_HEADERS = frozenset({"cookie", "authorization", "referer", "stripe-signature", "simulated-signature"})


def loggable_path(path: str) -> str:
    if secret_prefixes is None:
        head, deeper, _ = path[1:].partition("/")
        return f"/{head}/{REDACTED}" if deeper else path
    for prefix in secret_prefixes:
        if path.startswith(prefix):
            return prefix + REDACTED
    return path


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "-"


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        path = loggable_path(environ.get("PATH_INFO") or "")
        atoms.update(r=f"{environ.get('REQUEST_METHOD')} {path} {environ.get('SERVER_PROTOCOL')}", U=path, q="",
                     f=_origin(environ.get("HTTP_REFERER", "")))
        for key in list(atoms):
            if key.endswith("}e") or (key.endswith("}i") and key[1:-2] in HIDDEN_HEADERS):
                atoms[key] = REDACTED
        return atoms
