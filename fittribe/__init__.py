"""FitTribe application factory."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Flask, abort, g, request
from werkzeug.middleware.proxy_fix import ProxyFix
from whitenoise import WhiteNoise

from config import BASE_DIR, INSTANCE_DIR, config_for, limits_storage_uri

from .extensions import compress, csrf, db, limiter, login_manager, migrate, static_digest, talisman

# No inline script or style anywhere: htmx's indicator CSS is a constructable stylesheet,
# and hx-headers JSON is data, so 'self' covers everything the pages need.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "img-src": ["'self'", "data:"],
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def _content_security_policy(app: Flask) -> dict:
    """Photos kept in an S3 bucket are read from its public address: images from there too."""
    policy = dict(CONTENT_SECURITY_POLICY)
    if app.config["PHOTO_STORAGE"] == "s3" and app.config["S3_PUBLIC_URL"]:
        policy["img-src"] = [*policy["img-src"], app.config["S3_PUBLIC_URL"]]
    return policy


def create_app(config_name: str | None = None, **overrides) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(INSTANCE_DIR),
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
    )
    app.config.from_object(config_for(config_name))
    app.config.update(overrides)
    _derive_settings(app)
    app.config.setdefault("FLASK_STATIC_DIGEST_COMPRESSION", ["gzip", "brotli"])
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    from .web.params import register_converters

    register_converters(app)  # before any route: every <int:…> and <slug> is bounded
    _init_extensions(app)
    from .ops import init_app as init_ops

    init_ops(app)  # logs, metrics and alerts hook every request; /healthz, /metrics
    _register_blueprints(app)
    _register_hooks(app)

    from .cli import register_cli
    from .web.errors import register_error_handlers

    register_error_handlers(app)
    register_cli(app)
    _serve_static(app)
    if app.config["TRUSTED_PROXIES"]:
        proxies = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    _admit_stream_connects(app)
    return app


def _admit_stream_connects(app: Flask) -> None:
    """Outermost: a stream connect waits for its slot before any of the app's work, and one that
    gets none in time costs the process almost nothing (fittribe/realtime/admission.py)."""
    from .realtime.admission import ConnectGate

    config = app.config
    app.wsgi_app = ConnectGate(app.wsgi_app, "/stream", config["STREAM_CONNECTS_IN_FLIGHT"],
                               config["STREAM_CONNECT_WAIT_SECONDS"])


def _derive_settings(app: Flask) -> None:
    """Defaults that follow another setting, once the overrides are in."""
    config = app.config
    config["REDIS_KEY_PREFIX"] = config.get("REDIS_KEY_PREFIX") or config["SSE_CHANNEL_PREFIX"]
    config["PRESENCE_TTL"] = config.get("PRESENCE_TTL") or 1.5 * config["SSE_HEARTBEAT_SECONDS"]


def _init_extensions(app: Flask) -> None:
    @app.before_request  # before CSRFProtect reads the form: the one route that takes a larger body
    def allow_photo_uploads() -> None:
        if request.endpoint == "dashboard.profile_photo":
            request.max_content_length = app.config["PHOTO_UPLOAD_MAX_LENGTH"]

    _share_redis_pool_with_limiter(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    compress.init_app(app)
    static_digest.init_app(app)
    talisman.init_app(
        app,
        force_https=app.config["FORCE_HTTPS"],
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        content_security_policy=_content_security_policy(app),
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
    )
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    from .web.access import Visitor

    login_manager.anonymous_user = Visitor

    from .models import User
    from .services.accounts import user_for_session
    from .web.params import parse_int

    @login_manager.user_loader
    def load_user(session_id: str) -> User | None:
        """User.get_id() as stored in the cookie: "<id>.<session version>". A revoked (logged out,
        password reset, suspended) session or remember cookie is anonymous."""
        user_id, _, version = session_id.partition(".")
        user_id, version = parse_int(user_id), parse_int(version)
        return None if user_id is None or version is None else user_for_session(user_id, version)


def _share_redis_pool_with_limiter(app: Flask) -> None:
    """Rate-limit counters use the process's small blocking Redis pool: a burst of thousands of
    stream connects must not open thousands of Redis connections."""
    storage = app.config["RATELIMIT_STORAGE_URI"]
    redis_url = app.config.get("REDIS_URL")
    if redis_url and storage == limits_storage_uri(redis_url) and "RATELIMIT_STORAGE_OPTIONS" not in app.config:
        from .realtime.connection import redis_client

        with app.app_context():
            pool = redis_client(redis_url).connection_pool
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {"connection_pool": pool}


NO_LIVE_ENDPOINTS = {None, "static", "sse.stream", "ops.healthz", "ops.metrics", "calendar_feed.feed",
                     "bookings.ics", "analytics.export"}


def _register_blueprints(app: Flask) -> None:
    from .web.htmx import is_partial_request

    from .realtime import live, outbox
    from .realtime.stream import sse
    from .web import (admin, analytics, auth, bookings, calendar_feed, dashboard, google, media, notifications,
                      payments, public, reviews, trainers, zones)

    for module in (public, trainers, bookings, payments, auth, dashboard, notifications, admin, analytics,
                   calendar_feed, google, reviews, media, zones):
        app.register_blueprint(module.bp)
    app.register_blueprint(sse, url_prefix="/stream")
    sse.configure(app.config.get("REDIS_URL"), app.config["SSE_CHANNEL_PREFIX"], app.config["SSE_HEARTBEAT_SECONDS"],
                  app.config["REDIS_POOL_SIZE"], app=app)
    outbox.init_app(app)  # events are published after each commit
    app.jinja_env.globals["live_fragments"] = live.FRAGMENTS

    @app.before_request
    def remember_live_position() -> None:
        """A full page carries the outbox position it was rendered at, read before anything it
        shows: its stream's first connect replays whatever happened after (base.html)."""
        if request.method == "GET" and request.endpoint not in NO_LIVE_ENDPOINTS and not is_partial_request():
            g.live_position = outbox.latest_position()


def _register_hooks(app: Flask) -> None:
    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.before_request
    def reject_nul_bytes() -> None:
        # PostgreSQL cannot store or compare NUL characters; refuse them up front with a clear 400.
        values = list(request.args.values()) + (list(request.form.values()) if request.form else [])
        if any("\x00" in value for value in values):
            abort(400, "The request contains an invalid character (NUL). Please remove it and try again.")

    @app.after_request
    def add_headers(response):
        if response.mimetype == "text/event-stream":
            return response  # nothing to vary or time: it lasts as long as the page
        # Every HTML route may answer with a page or a fragment depending on these headers.
        response.vary.update(("HX-Request", "HX-Request-Type"))
        user = g.get("_login_user")  # set once Flask-Login loaded the session's user
        if user is not None and user.is_authenticated and "Cache-Control" not in response.headers:
            # A page made for one logged-in person: no browser history cache or proxy keeps a copy.
            response.headers["Cache-Control"] = "private, no-store"
        zones.mark_zone_notice_shown(response)
        if app.config["SERVER_TIMING"] and "request_started" in g:
            elapsed_ms = (time.perf_counter() - g.request_started) * 1000
            response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.2f}"
        return response

    from .services import time_zones
    from .services.search import LANGUAGES
    from .web import zones

    app.add_template_filter(time_zones.zone_name, "zone_name")
    app.add_template_filter(time_zones.city, "city")
    app.jinja_env.globals.update(zone_notice_due=zones.zone_notice_due, switcher_link=zones.switcher_link)

    @app.template_filter("zone_gap")
    def zone_gap(zone: str, from_zone: str) -> str:
        """"8 hours ahead of you" (`from_zone`), now."""
        return time_zones.gap(zone, from_zone, datetime.now(timezone.utc))

    @app.template_filter("localtime")
    def localtime(timestamp: float, zone: str) -> str:
        """A Unix time as the viewer's local time, with the zone named."""
        moment = datetime.fromtimestamp(timestamp, ZoneInfo(zone))
        return moment.strftime("%H:%M %Z")

    @app.template_filter("in_zone")
    def in_zone(moment: datetime, zone: str) -> datetime:
        """A stored instant on the clock of `zone`."""
        return moment.astimezone(ZoneInfo(zone))

    @app.template_filter("zoneinfo")
    def zoneinfo(zone: str) -> ZoneInfo:
        return ZoneInfo(zone)

    @app.template_filter("isotime")
    def isotime(timestamp: float) -> str:
        return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")

    @app.template_filter("language_name")
    def language_name(code: str) -> str:
        return LANGUAGES.get(code, code)

    @app.context_processor
    def inject_globals():
        from flask_login import current_user

        from .services.notify import unread_count
        from .services.terms import current_terms

        def unread_notifications() -> int:
            return unread_count(current_user.id) if current_user.is_authenticated else 0

        return {"unread_notifications": unread_notifications, "live_trainer_id": None, "terms": current_terms()}


def _serve_static(app: Flask) -> None:
    """WhiteNoise serves static/ with the pre-compressed .br/.gz copies `flask digest compile`
    writes; digested names (app-<md5>.css) are cached for a year as immutable."""
    app.wsgi_app = WhiteNoise(
        app.wsgi_app,
        root=app.static_folder,
        prefix="static/",
        max_age=60,
        immutable_file_test=r"-[0-9a-f]{32}\.",
        add_headers_function=_static_headers,
    )


def _static_headers(headers, path: str, url: str) -> None:
    headers["X-Content-Type-Options"] = "nosniff"  # as Talisman adds to the app's own responses
