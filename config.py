"""Settings per stage. Every value comes from the environment; .env.example documents each."""
import os
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("INSTANCE_PATH", BASE_DIR / "instance"))


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    return None if value is None else [item.strip() for item in value.split(",") if item.strip()]


def trusted_hosts(site_url: str, *local: str) -> list[str]:
    """TRUSTED_HOSTS (comma-separated; ".example.com" takes subdomains too), or SITE_URL's host
    plus `local` names. A request for any other Host is refused (400) before a view runs."""
    return _list("TRUSTED_HOSTS") or [urlsplit(site_url).hostname or "localhost", *local]


def database_url(raw: str | None) -> str:
    """Normalise DATABASE_URL to psycopg 3. Unset: a local server (`make run` starts an embedded
    one and sets DATABASE_URL, see fittribe/devserver.py)."""
    raw = raw or "postgresql://postgres@127.0.0.1:5432/fittribe"
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


def limits_storage_uri(redis_url: str | None) -> str:
    """Flask-Limiter's name for the same Redis (a unix socket is `redis+unix://`)."""
    if not redis_url:
        return "memory://"
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://"):]
    return redis_url


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-secret-change-me")
    SQLALCHEMY_DATABASE_URI = database_url(os.environ.get("DATABASE_URL"))
    # hide_parameters: a failed query's values (calendar tokens, e-mails) stay out of error logs.
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "hide_parameters": True}
    # Redis serves rate limits now and SSE/presence later. `make run` starts an embedded
    # redis-server and exports REDIS_URL; without one, limits fall back to process memory.
    REDIS_URL = os.environ.get("REDIS_URL")
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI") or limits_storage_uri(REDIS_URL)
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "fittribe")
    # X-RateLimit-* headers cost two extra Redis round trips per limited request (every stream
    # connect): off. A 429 still says when to retry (Retry-After, see web/errors.py).
    RATELIMIT_HEADERS_ENABLED = False
    # Redis down: limits keep counting in each process's memory until it answers again (checked
    # with growing pauses, up to about a minute) instead of failing every limited request with a
    # 500. Fail safe rather than open: login and signup stay throttled, at worst N workers x the
    # limit. (RATELIMIT_SWALLOW_ERRORS would let every request through: not for login.)
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_LOGIN = os.environ.get("RATELIMIT_LOGIN", "10 per minute;50 per hour")
    RATELIMIT_SIGNUP = os.environ.get("RATELIMIT_SIGNUP", "5 per minute;30 per hour")
    RATELIMIT_PASSWORD_RESET = os.environ.get("RATELIMIT_PASSWORD_RESET", "5 per minute;20 per hour")
    # Holds, payments, cancellations and moves: per member, and per address as a coarse flood guard
    # (many members may share one address behind a NAT).
    RATELIMIT_BOOKING = os.environ.get("RATELIMIT_BOOKING", "20 per minute")
    RATELIMIT_BOOKING_PER_ADDRESS = os.environ.get("RATELIMIT_BOOKING_PER_ADDRESS", "300 per minute")

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    REMEMBER_COOKIE_DURATION = 60 * 60 * 24 * 30
    FORCE_HTTPS = _bool("FORCE_HTTPS", False)
    # How many proxies (load balancer, nginx) sit in front of gunicorn. With N > 0 the client's
    # address and scheme are taken from the last N X-Forwarded-For/-Proto entries, so rate limits
    # and stream caps count visitors, not the proxy. 0 (direct): those headers are ignored, as
    # anyone could send them.
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", 0))

    # Bodies above this are refused (413) before they are read or parsed: forms and webhooks are
    # a few kilobytes.
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", 1024 * 1024))
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    PASSWORD_RESET_MAX_AGE = int(os.environ.get("PASSWORD_RESET_MAX_AGE", 3600))

    # Mail: SMTP when MAIL_SERVER is set, otherwise messages land in instance/mail/ and the log.
    MAIL_SERVER = os.environ.get("MAIL_SERVER")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", 587))
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_USE_TLS = _bool("MAIL_USE_TLS", True)
    MAIL_FROM = os.environ.get("MAIL_FROM", "FitTribe <no-reply@fittribe.example>")
    # Every absolute link we mail, hand to a payment provider or put in a calendar starts with
    # this (fittribe/services/links.py), never with the request's Host header, which anyone can forge.
    SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:5000")
    # Flask refuses (400) a request whose Host is not listed; ports are ignored. Development and
    # tests also answer localhost and 127.0.0.1 (make run, the test client, the live test server).
    TRUSTED_HOSTS = trusted_hosts(SITE_URL, "localhost", "127.0.0.1")
    MAIL_OUTBOX_DIR = os.environ.get("MAIL_OUTBOX_DIR", str(INSTANCE_DIR / "mail"))

    # Real time (see fittribe/realtime). Redis pub/sub channels are global to the server, so
    # every deployment (and every test run) names its own prefix.
    SSE_CHANNEL_PREFIX = os.environ.get("SSE_CHANNEL_PREFIX", "fittribe:sse:")
    # Every Redis key the app names (presence, stream leases, error counters, clock, session
    # phases) starts with this; unset, it is SSE_CHANNEL_PREFIX (fittribe/realtime/connection.py).
    REDIS_KEY_PREFIX = os.environ.get("REDIS_KEY_PREFIX") or None
    SSE_HEARTBEAT_SECONDS = float(os.environ.get("SSE_HEARTBEAT_SECONDS", 15))
    SSE_REPLAY_LIMIT = int(os.environ.get("SSE_REPLAY_LIMIT", 1000))
    STREAM_CAP_PER_CLIENT = int(os.environ.get("STREAM_CAP_PER_CLIENT", 12))  # 0 = no cap
    RATELIMIT_STREAM = os.environ.get("RATELIMIT_STREAM", "120 per minute")
    # A page gives up on a stream connect that has not answered within this (base.html), then
    # retries after htmx's backoff. Each process lets STREAM_CONNECTS_IN_FLIGHT connects run at
    # once and answers 503 + Retry-After to one that waited STREAM_CONNECT_WAIT_SECONDS for a slot
    # (fittribe/realtime/admission.py): an answer the page gets before its own timeout.
    SSE_CONNECT_TIMEOUT_SECONDS = float(os.environ.get("SSE_CONNECT_TIMEOUT_SECONDS", 5))
    STREAM_CONNECTS_IN_FLIGHT = int(os.environ.get("STREAM_CONNECTS_IN_FLIGHT", 8))
    STREAM_CONNECT_WAIT_SECONDS = float(os.environ.get("STREAM_CONNECT_WAIT_SECONDS", 3))
    # A connection's presence lease, renewed by each heartbeat: a connection that stops being
    # renewed counts as gone this long after its last heartbeat. Unset: 1.5 heartbeats.
    PRESENCE_TTL = float(os.environ["PRESENCE_TTL"]) if os.environ.get("PRESENCE_TTL") else None
    PRESENCE_GRACE = float(os.environ.get("PRESENCE_GRACE", 5))  # offline this long after the last page closes
    AVAILABLE_NOW_HOURS = float(os.environ.get("AVAILABLE_NOW_HOURS", 8))
    OUTBOX_RELAY_AFTER = float(os.environ.get("OUTBOX_RELAY_AFTER", 3))
    OUTBOX_RETENTION_HOURS = float(os.environ.get("OUTBOX_RETENTION_HOURS", 24))
    REDIS_POOL_SIZE = int(os.environ.get("REDIS_POOL_SIZE", 2))

    # Booking
    HOLD_MINUTES = int(os.environ.get("HOLD_MINUTES", 10))
    MAX_ACTIVE_HOLDS = int(os.environ.get("MAX_ACTIVE_HOLDS", 3))
    # Cancellation policy: a member cancelling at least this long before the start gets a full
    # refund, later none; a trainer (or admin) cancelling always refunds in full.
    CANCEL_FULL_REFUND_HOURS = float(os.environ.get("CANCEL_FULL_REFUND_HOURS", 24))
    # A no-show may be reported from this many minutes after the start until this many hours after the end.
    NO_SHOW_AFTER_START_MINUTES = float(os.environ.get("NO_SHOW_AFTER_START_MINUTES", 10))
    NO_SHOW_REPORT_HOURS = float(os.environ.get("NO_SHOW_REPORT_HOURS", 48))
    # Reviews: a member may review a completed session for this many days after its end.
    REVIEW_WINDOW_DAYS = int(os.environ.get("REVIEW_WINDOW_DAYS", 30))
    RATELIMIT_REVIEWS = os.environ.get("RATELIMIT_REVIEWS", "10 per minute;60 per hour")  # reviews, replies, flags
    # Payments: Stripe when both keys are set (test-mode keys in development), otherwise the
    # simulated provider. STRIPE_API_BASE only changes for tests against a local fake server.
    STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY")
    STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET")
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "https://api.stripe.com")
    # Platform fee on Stripe Connect destination charges (trainers with a connected account).
    PLATFORM_FEE_PERCENT = int(os.environ.get("PLATFORM_FEE_PERCENT", 15))
    # Video rooms when Zoom is not configured: an unguessable Jitsi room on this host.
    JITSI_BASE_URL = os.environ.get("JITSI_BASE_URL", "https://meet.jit.si")
    # Zoom Server-to-Server OAuth: used for meetings when all three are set (services/meetings.py).
    ZOOM_ACCOUNT_ID = os.environ.get("ZOOM_ACCOUNT_ID")
    ZOOM_CLIENT_ID = os.environ.get("ZOOM_CLIENT_ID")
    ZOOM_CLIENT_SECRET = os.environ.get("ZOOM_CLIENT_SECRET")
    ZOOM_API_BASE = os.environ.get("ZOOM_API_BASE", "https://api.zoom.us/v2")
    ZOOM_OAUTH_URL = os.environ.get("ZOOM_OAUTH_URL", "https://zoom.us/oauth/token")
    # Retries of one Zoom call on 429/5xx/connection errors, and the first pause (doubled each time).
    ZOOM_RETRIES = int(os.environ.get("ZOOM_RETRIES", 2))
    ZOOM_RETRY_BACKOFF = float(os.environ.get("ZOOM_RETRY_BACKOFF", 0.5))

    # Google Calendar (services/google_calendar.py): shown only when the client id and secret and a
    # token key are set. GOOGLE_TOKEN_KEYS: comma-separated Fernet keys (`Fernet.generate_key()`);
    # the first encrypts stored tokens, all decrypt (rotate by putting a new key first).
    GOOGLE_CLIENT_ID = os.environ.get("GOOGLE_CLIENT_ID")
    GOOGLE_CLIENT_SECRET = os.environ.get("GOOGLE_CLIENT_SECRET")
    GOOGLE_TOKEN_KEYS = os.environ.get("GOOGLE_TOKEN_KEYS")
    # The OAuth redirect registered with Google; unset: this site's /account/google/callback.
    GOOGLE_REDIRECT_URI = os.environ.get("GOOGLE_REDIRECT_URI")
    # Where Google posts push notifications (must be public HTTPS in production).
    GOOGLE_WEBHOOK_URL = os.environ.get("GOOGLE_WEBHOOK_URL", SITE_URL.rstrip("/") + "/webhooks/google/calendar")
    # Only tests change these, to a local fake Google.
    GOOGLE_AUTH_URL = os.environ.get("GOOGLE_AUTH_URL", "https://accounts.google.com/o/oauth2/v2/auth")
    GOOGLE_TOKEN_URL = os.environ.get("GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token")
    GOOGLE_REVOKE_URL = os.environ.get("GOOGLE_REVOKE_URL", "https://oauth2.googleapis.com/revoke")
    GOOGLE_API_BASE = os.environ.get("GOOGLE_API_BASE", "https://www.googleapis.com")
    # Retries of one Google call on 429/5xx/connection errors, and the first pause (doubled each time).
    GOOGLE_RETRIES = int(os.environ.get("GOOGLE_RETRIES", 2))
    GOOGLE_RETRY_BACKOFF = float(os.environ.get("GOOGLE_RETRY_BACKOFF", 0.5))
    # The worker re-reads busy times this often even without a push notification (one may be lost).
    GOOGLE_BUSY_REFRESH_MINUTES = float(os.environ.get("GOOGLE_BUSY_REFRESH_MINUTES", 15))
    # Push channels are asked to live this long and renewed when less than GOOGLE_WATCH_RENEW_HOURS remain.
    GOOGLE_WATCH_TTL_HOURS = float(os.environ.get("GOOGLE_WATCH_TTL_HOURS", 168))
    GOOGLE_WATCH_RENEW_HOURS = float(os.environ.get("GOOGLE_WATCH_RENEW_HOURS", 24))

    # Tests shift the session-status clock through Redis (fittribe/clock.py); never in production.
    CLOCK_ADJUSTABLE = _bool("CLOCK_ADJUSTABLE", False)

    # Trainer photos: uploads are checked, cropped square and re-encoded (services/photos.py), then
    # kept by the storage PHOTO_STORAGE names: "local" (a folder served at /media/) or "s3" (any
    # S3-compatible bucket; needs `pip install -r requirements-s3.txt`, credentials from the usual
    # AWS_* variables, and S3_PUBLIC_URL, the address the bucket's files are read from).
    PHOTO_STORAGE = os.environ.get("PHOTO_STORAGE", "local")
    PHOTO_DIR = os.environ.get("PHOTO_DIR") or str(INSTANCE_DIR / "media")
    PHOTO_MAX_BYTES = int(os.environ.get("PHOTO_MAX_BYTES", 5 * 1024 * 1024))
    # The photo upload alone may send more than MAX_CONTENT_LENGTH: a photo plus the form around it.
    PHOTO_UPLOAD_MAX_LENGTH = PHOTO_MAX_BYTES + 1024 * 1024
    PHOTO_SIZE = int(os.environ.get("PHOTO_SIZE", 320))  # pixels, square
    S3_BUCKET = os.environ.get("S3_BUCKET") or None
    S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL") or None  # None = AWS itself
    S3_PUBLIC_URL = os.environ.get("S3_PUBLIC_URL") or None
    # Intro videos: an https link to one of these hosts (shown as a link, never embedded).
    INTRO_VIDEO_HOSTS = tuple(os.environ.get(
        "INTRO_VIDEO_HOSTS", "youtube.com,www.youtube.com,youtu.be,vimeo.com,www.vimeo.com,player.vimeo.com").split(","))

    SEARCH_PAGE_SIZE = int(os.environ.get("SEARCH_PAGE_SIZE", 12))
    HOMEPAGE_HIGHLIGHTS = int(os.environ.get("HOMEPAGE_HIGHLIGHTS", 6))
    SERVER_TIMING = _bool("SERVER_TIMING", True)

    # Operations (fittribe/ops): JSON logs, /healthz, /metrics, error-spike alerts to admins.
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
    HEALTHCHECK_TIMEOUT = float(os.environ.get("HEALTHCHECK_TIMEOUT", 2))
    # /metrics answers requests made directly from localhost or a private network, and any request
    # carrying "Authorization: Bearer <METRICS_TOKEN>" when this is set.
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN") or None
    # Admins are alerted once in a minute that reaches this many 5xx answers; 0 turns alerts off.
    ERROR_SPIKE_THRESHOLD = int(os.environ.get("ERROR_SPIKE_THRESHOLD", 10))
    # At most one admin alert of a kind (forged webhooks, failed payments, …) per this many seconds;
    # the next one says how many were held back. 0 sends every one.
    ADMIN_ALERT_WINDOW = int(os.environ.get("ADMIN_ALERT_WINDOW", 600))


class DevelopmentConfig(Config):
    DEBUG = False  # gunicorn serves dev too; set FLASK_DEBUG=1 for the Werkzeug debugger


class TestingConfig(Config):
    TESTING = True
    SQLALCHEMY_DATABASE_URI = database_url(
        os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    RATELIMIT_STORAGE_URI = limits_storage_uri(REDIS_URL)
    # Limits stay on, as in production: each test starts with empty counters.


class ProductionConfig(Config):
    CLOCK_ADJUSTABLE = False
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", True)
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    FORCE_HTTPS = _bool("FORCE_HTTPS", True)
    TRUSTED_HOSTS = trusted_hosts(Config.SITE_URL)


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_for(name: str | None = None) -> type[Config]:
    return CONFIGS[name or os.environ.get("FITTRIBE_ENV", "development")]
