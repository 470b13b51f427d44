"""Every key the app keeps in Redis is under its configured prefix: two deployments (or test
runs) sharing one Redis database never see each other's presence, stream leases, error counters,
clock or rate limits."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import redis as redis_lib
from sqlalchemy import select

from fittribe import clock, ratelimits
from fittribe.extensions import db
from fittribe.models import TrainerProfile
from fittribe.ops import alerts
from fittribe.realtime import presence
from fittribe.realtime.connection import redis_client, redis_key
from fittribe.realtime.hub import sse
from fittribe.services import analytics
from tests.conftest import REDIS_CLAIM_KEY, RUN_ID


def test_two_apps_with_different_prefixes_on_one_redis_db_keep_apart(app, database_url, demo):
    from fittribe import create_app

    other = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url, REDIS_URL=app.config["REDIS_URL"],
                       RATELIMIT_STORAGE_URI=app.config["RATELIMIT_STORAGE_URI"], SSE_HEARTBEAT_SECONDS=1.0,
                       RATELIMIT_KEY_PREFIX=f"other-{RUN_ID}", SSE_CHANNEL_PREFIX=f"other-{RUN_ID}:",
                       CLOCK_ADJUSTABLE=True, ERROR_SPIKE_THRESHOLD=100)
    try:
        with app.app_context():
            maya = db.session.scalar(select(TrainerProfile.id).where(TrainerProfile.slug == "maya-chen"))
            presence.set_available(maya, True)
            presence.stream_opened(maya, "tab")
            redis_client().zadd(redis_key("streams", "user:1"), {"page": time.time() + 60})
            alerts.record_server_error(app)
            clock.set_offset(timedelta(days=3))
            assert ratelimits.hit("1 per minute", "test", "me") and not ratelimits.hit("1 per minute", "test", "me")
            assert presence.status(maya).online and analytics.live() == analytics.Live(1, 1)
            minute = alerts.current_minute()
            assert redis_client().get(redis_key("5xx", minute)) == b"1"

        with other.app_context():
            assert presence.status(maya) == presence.Status(None, False)
            assert presence.sweep() == 0  # nothing of the first app's to end or announce
            assert analytics.live() == analytics.Live(0, 0)
            assert redis_client().get(redis_key("5xx", minute)) is None
            assert clock.now() - datetime.now(timezone.utc) < timedelta(minutes=1)
            assert ratelimits.hit("1 per minute", "test", "me")

        with app.app_context():
            assert presence.status(maya).online  # untouched by the other app's sweep
            mine, theirs = app.config["REDIS_KEY_PREFIX"], other.config["REDIS_KEY_PREFIX"]
        # Nothing written outside the two prefixes (rate limits: the `limits` library's own
        # "LIMITS:LIMITER/" before RATELIMIT_KEY_PREFIX).
        allowed = (mine, theirs, f"LIMITS:LIMITER/{app.config['RATELIMIT_KEY_PREFIX']}/",
                   f"LIMITS:LIMITER/{other.config['RATELIMIT_KEY_PREFIX']}/", REDIS_CLAIM_KEY)
        stray = [key for key in redis_lib.Redis.from_url(app.config["REDIS_URL"]).scan_iter()
                 if not key.decode().startswith(allowed)]
        assert stray == []
    finally:
        with other.app_context():
            db.engine.dispose()
        # create_app points the process-wide SSE hub at its own settings: point it back.
        sse.configure(app.config["REDIS_URL"], app.config["SSE_CHANNEL_PREFIX"], app.config["SSE_HEARTBEAT_SECONDS"],
                      app.config["REDIS_POOL_SIZE"])
