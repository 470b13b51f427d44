"""HTTP conventions: error pages, security headers, compression and static file caching."""
import json
import re
from pathlib import Path

import pytest

from tests.helpers import HTMX, text_of

STATIC = Path(__file__).resolve().parents[2] / "static"
PAGES = ["/", "/trainers", "/trainers/maya-chen", "/login", "/signup", "/password/forgot", "/nope"]


@pytest.mark.parametrize("path", PAGES)
def test_security_headers_and_no_inline_script_or_style(client, demo, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    html = response.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert not re.search(r"\son[a-z]+=|\shx-on:|\sstyle=", html), "inline handler or style"


def test_404_page_and_fragment(client):
    page = client.get("/no-such-page")
    assert page.status_code == 404 and "We couldn't find that page" in text_of(page) and "<html" in text_of(page)
    fragment = client.get("/no-such-page", headers=HTMX)
    assert fragment.status_code == 404 and "<html" not in text_of(fragment)
    assert client.get("/trainers/no-such-trainer").status_code == 404


def test_405_is_readable(client):
    response = client.post("/trainers")
    assert response.status_code in (400, 405)  # CSRF check runs first on unsafe methods
    assert "<html" in text_of(response)


def test_500_page_rolls_back_and_is_readable(app, client, demo, monkeypatch):
    import fittribe.web.public as public

    def explode(limit):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(public, "top_trainers", explode)
    page = client.get("/")
    assert page.status_code == 500
    assert "Something went wrong on our side" in text_of(page) and "database on fire" not in text_of(page)
    fragment = client.get("/", headers=HTMX)
    assert fragment.status_code == 500 and "<html" not in text_of(fragment)


def test_nul_bytes_are_a_clear_400(client):
    response = client.get("/trainers?q=a%00b")
    assert response.status_code == 400 and "invalid character" in text_of(response)


def test_html_is_compressed_and_varies_on_htmx_headers(client, demo):
    for encoding in ("br", "gzip"):
        response = client.get("/", headers={"Accept-Encoding": encoding})
        assert response.headers["Content-Encoding"] == encoding
        assert {"HX-Request", "HX-Request-Type", "Accept-Encoding"} <= set(response.vary)


def test_event_streams_are_never_compressed(app):
    assert "text/event-stream" not in app.config["COMPRESS_MIMETYPES"]


def test_server_timing_header(client):
    assert re.fullmatch(r"app;dur=\d+\.\d\d", client.get("/trainers").headers["Server-Timing"])


@pytest.fixture(scope="module")
def manifest():
    path = STATIC / "cache_manifest.json"
    assert path.exists(), "static files are not built: run `make assets` (make test does)"
    return json.loads(path.read_text())


def test_static_assets_are_digested_compressed_and_cached_forever(client, demo, manifest):
    html = client.get("/").get_data(as_text=True)
    urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    assert {"/static/" + manifest[name] for name in ("css/app.css", "vendor/htmx.min.js",
                                                     "vendor/ext/hx-sse.min.js")} <= set(urls)
    for url in urls:
        assert re.search(r"-[0-9a-f]{32}\.", url), url
        response = client.get(url, headers={"Accept-Encoding": "br, gzip"})
        assert response.status_code == 200
        assert "immutable" in response.headers["Cache-Control"] and "max-age=31536000" in response.headers["Cache-Control"]
        if url.endswith((".css", ".js")):
            assert response.headers["Content-Encoding"] == "br"


def test_htmx_comes_from_npm_pinned_exactly():
    root = STATIC.parent
    package = json.loads((root / "package.json").read_text())
    lock = json.loads((root / "package-lock.json").read_text())
    version = package["dependencies"]["htmx.org"]
    assert re.fullmatch(r"4\.\d+\.\d+", version), "htmx.org must be pinned to an exact 4.x version"
    assert lock["packages"]["node_modules/htmx.org"]["version"] == version
    served = (STATIC / "vendor" / "htmx.min.js").read_bytes()
    assert served == (root / "node_modules" / "htmx.org" / "dist" / "htmx.min.js").read_bytes()
