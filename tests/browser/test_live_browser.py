"""Live updates in a real browser (Chromium via Playwright) against the live gunicorn + gevent
server: one browser context acts, another has a page open and sees the change arrive over the
page's SSE stream (htmx's hx-sse:connect on #live) without reloading. Each page carries a
window marker set before the change and checked after it, so a reload would fail the test.

No `flask worker` runs in tests: where the presence sweeper matters, the test runs
`presence.sweep()` itself, as the worker would."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, Request, expect
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import Event, TrainerProfile, User
from fittribe.realtime import presence
from fittribe.realtime.connection import redis_client, redis_key
from fittribe.services.notify import notify
from tests.browser.pages import assert_same_document, expect_live, log_in, open_live_page
from tests.helpers import presence_announcements

pytestmark = pytest.mark.browser

MEMBER = "member@fittribe.example"
TRAINER = "trainer@fittribe.example"
# A pushed fragment reaches an open page within milliseconds; this leaves room for a slow box.
PUSH_TIMEOUT_MS = 5_000


# --- helpers ---------------------------------------------------------------------------------

def user_id(app, email: str) -> int:
    with app.app_context():
        try:
            return db.session.scalar(select(User.id).where(User.email == email))
        finally:
            db.session.remove()


def trainer_profile_id(app, slug: str) -> int:
    with app.app_context():
        try:
            return db.session.scalar(select(TrainerProfile.id).where(TrainerProfile.slug == slug))
        finally:
            db.session.remove()


def send_notification(app, to_user: int, message: str) -> int:
    """What a service does: notify inside its transaction, then commit (the outbox publishes
    after the commit). Returns the id of the SSE event that carries it."""
    with app.app_context():
        try:
            notify(to_user, "test", message, "/notifications/")
            db.session.commit()
            return db.session.scalar(select(Event.position).order_by(Event.id.desc()).limit(1))
        finally:
            db.session.remove()


def run_sweeper(app) -> int:
    with app.app_context():
        try:
            return presence.sweep()
        finally:
            db.session.remove()


def presence_leases(app, trainer: int) -> set[str]:
    with app.app_context():
        return {lease.decode() for lease in redis_client().zrange(presence.lease_key(trainer), 0, -1)}


def open_streams_of(app, user: int) -> int:
    """Streams the server holds open for this user (the per-client cap's leases: added when a
    stream opens, removed when the server sees it close)."""
    with app.app_context():
        return redis_client().zcard(redis_key("streams", f"user:{user}"))


def maya_badge(page: Page):
    card = page.locator("#results .trainer-card").filter(has=page.get_by_role("link", name="Maya Chen"))
    return card.locator(".presence")


# --- presence --------------------------------------------------------------------------------

def test_presence_badge_follows_the_trainer_live(app, live_server, demo, member_context, trainer_context):
    maya = trainer_profile_id(app, "maya-chen")
    member_page = member_context.new_page()
    log_in(member_page, live_server, MEMBER)
    open_live_page(member_page, f"{live_server}/trainers")
    badge = maya_badge(member_page)
    expect(badge).to_have_count(1)
    expect(badge).to_have_text("Offline")
    expect(badge).to_have_class(re.compile(r"\bpresence-offline\b"))

    # A live page alone does not make her "Online now": the switch is off.
    trainer_page = trainer_context.new_page()
    log_in(trainer_page, live_server, TRAINER)
    open_live_page(trainer_page)
    switch = trainer_page.locator("#available-switch")
    expect(switch.locator(".presence")).to_have_text("Offline")
    expect(switch).to_contain_text("a FitTribe page of yours is open")  # the definition, by the switch

    # The "available now" switch: htmx swaps the form in place; members see her online at once.
    trainer_page.get_by_role("button", name="I'm available now").click()
    expect(switch.locator(".status")).to_have_text("Available now")
    expect(switch.get_by_role("button", name="Switch off")).to_be_visible()
    expect(switch.locator(".presence")).to_have_text("Online now")  # what members see, said on her page
    expect(badge).to_have_text("Online now", timeout=PUSH_TIMEOUT_MS)
    expect(badge).to_have_class(re.compile(r"\bpresence-online\b"))
    expect(member_page.locator(f".presence-of-{maya}")).to_have_count(1)  # replaced, not added
    assert presence_announcements(app, maya) == [True]
    assert_same_document(member_page)
    assert_same_document(trainer_page)

    # She closes her page. The server notices the stream is gone (next heartbeat, 1 s), gives it
    # PRESENCE_GRACE (0.5 s) and the sweeper ends the lease: the switch alone does not keep her online.
    trainer_context.close()
    deadline = time.monotonic() + 8
    while presence_announcements(app, maya) != [True, False]:
        assert time.monotonic() < deadline, f"the closed page's lease was never swept: {presence_leases(app, maya)}"
        time.sleep(presence.SWEEP_SECONDS)
        run_sweeper(app)
    expect(badge).to_have_text("Offline", timeout=PUSH_TIMEOUT_MS)
    expect(badge).to_have_class(re.compile(r"\bpresence-offline\b"))
    expect_live(member_page)
    assert_same_document(member_page)


# --- notifications ---------------------------------------------------------------------------

def test_notification_arrives_in_toast_badge_and_list(app, live_server, demo, member_context):
    member = user_id(app, MEMBER)
    page = member_context.new_page()
    log_in(page, live_server, MEMBER)
    open_live_page(page)  # the member dashboard the login landed on
    toast = page.locator("#notification-toast")
    count = page.locator("#unread-count")
    expect(count).to_have_text("0 unread")
    expect(count).to_have_class(re.compile(r"\bcount-zero\b"))
    expect(toast).to_be_empty()

    send_notification(app, member, "Your session with Maya is confirmed")
    expect(toast.get_by_role("status")).to_have_text("Your session with Maya is confirmed", timeout=PUSH_TIMEOUT_MS)
    expect(toast.get_by_role("link")).to_have_attribute("href", "/notifications/")
    expect(count).to_have_text("1 unread")
    expect(count).not_to_have_class(re.compile(r"\bcount-zero\b"))
    expect(page.locator("#unread-count")).to_have_count(1)
    assert_same_document(page)

    # A second page of the same member: the notifications list, rendered with the first one.
    inbox = member_context.new_page()
    open_live_page(inbox, f"{live_server}/notifications/")
    items = inbox.locator("#notification-list > li")
    expect(items).to_have_text(["Your session with Maya is confirmed"])
    expect(inbox.locator("#unread-count")).to_have_text("1 unread")

    send_notification(app, member, "Maya sent you a message")
    expect(items).to_have_text(["Maya sent you a message", "Your session with Maya is confirmed"],
                               timeout=PUSH_TIMEOUT_MS)
    expect(items.first).to_have_class(re.compile(r"\bunread\b"))
    expect(items.first.get_by_role("link")).to_have_attribute("href", "/notifications/")
    for tab in (inbox, page):  # every open page of the member gets it
        expect(tab.locator("#notification-toast").get_by_role("status")).to_have_text(
            "Maya sent you a message", timeout=PUSH_TIMEOUT_MS)
        expect(tab.locator("#unread-count")).to_have_text("2 unread")
        assert_same_document(tab)
    expect(page.locator("#notification-list")).to_have_count(0)  # the dashboard has no list to fill


# --- reconnect and replay --------------------------------------------------------------------
#
# Chromium's offline emulation (context.set_offline) does NOT cut a fetch stream that is already
# open (checked with Chromium 156): navigator.onLine turns false and the window gets "offline",
# but the open /stream response keeps delivering events; only NEW requests fail. So going
# offline alone cannot drop the stream. The stream is dropped the way production drops it
# instead: the SSE hub loses its Redis connection (here: Redis kills it), reconnects, and ends
# every open stream so browsers resume from the outbox (fittribe/realtime/hub.py). The context
# is offline meanwhile, so htmx's reconnects fail until it is back online.

def kill_hub_redis_connection(app) -> int:
    """Have Redis drop the live server's SSE hub subscriber: the pattern subscriber on this
    run's own Redis db number (other runs and apps on the same server are left alone)."""
    with app.app_context():
        client = redis_client()
        own_db = client.connection_pool.connection_kwargs.get("db", 0)
        hubs = [c for c in client.client_list() if int(c["db"]) == own_db and int(c.get("psub", 0)) > 0]
        for hub in hubs:
            client.client_kill_filter(_id=hub["id"])
        return len(hubs)


def test_stream_dropped_while_offline_resumes_with_last_event_id_and_replays(app, live_server, demo,
                                                                            member_context):
    member = user_id(app, MEMBER)
    page = member_context.new_page()
    log_in(page, live_server, MEMBER)
    open_live_page(page)
    toast = page.locator("#notification-toast").get_by_role("status")
    first = send_notification(app, member, "Booked: Tuesday 18:00")
    expect(toast).to_have_text("Booked: Tuesday 18:00", timeout=PUSH_TIMEOUT_MS)
    assert open_streams_of(app, member) == 1

    streams: list[Request] = []
    failed: list[Request] = []
    page.on("request", lambda request: streams.append(request) if "/stream" in request.url else None)
    page.on("requestfailed", lambda request: failed.append(request) if "/stream" in request.url else None)

    member_context.set_offline(True)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "offline")
    assert kill_hub_redis_connection(app) >= 1
    deadline = time.monotonic() + 8
    while open_streams_of(app, member):
        assert time.monotonic() < deadline, "the server did not end the page's stream"
        time.sleep(0.1)
    # htmx retries at once (backoff from 0.5 s); offline, the retry fails.
    deadline = time.monotonic() + 8
    while not failed:
        assert time.monotonic() < deadline, "htmx did not try to reconnect"
        page.wait_for_timeout(100)

    # No stream of the member is open now: only the replay can bring this one.
    second = send_notification(app, member, "Moved: Wednesday 19:00")
    page.wait_for_timeout(500)
    assert toast.text_content().strip() == "Booked: Tuesday 18:00"
    assert open_streams_of(app, member) == 0

    member_context.set_offline(False)
    expect(toast).to_have_text("Moved: Wednesday 19:00", timeout=15_000)
    expect(page.locator("#unread-count")).to_have_text("2 unread")
    expect_live(page)
    assert_same_document(page)
    assert open_streams_of(app, member) == 1

    # The reconnect that got through asked for what came after the last event the page saw.
    resumed = [r for r in streams if r not in failed]
    assert len(resumed) == 1, [(r.url, r.failure) for r in streams]
    assert resumed[0].headers.get("last-event-id") == str(first), resumed[0].headers
    assert resumed[0].response().status == 200
    assert all(r.headers.get("last-event-id") == str(first) for r in failed)
    assert second > first


# --- the connection indicator ----------------------------------------------------------------

def test_live_status_comes_back_after_a_network_blip_the_stream_survived(app, live_server, demo, member_context):
    member = user_id(app, MEMBER)
    page = member_context.new_page()
    log_in(page, live_server, MEMBER)
    open_live_page(page)
    status = page.locator("#live-status")

    member_context.set_offline(True)
    expect(status).to_have_attribute("data-state", "offline")
    expect(status).to_have_text("Offline")
    member_context.set_offline(False)
    # The open stream outlived the blip (see above): nothing reconnects, and the indicator must
    # not stay on "Offline" while the page is in fact live.
    expect(status).to_have_attribute("data-state", "live")
    expect(status).to_have_text("Live")
    send_notification(app, member, "Still here")
    expect(page.locator("#notification-toast").get_by_role("status")).to_have_text("Still here",
                                                                                   timeout=PUSH_TIMEOUT_MS)
    assert open_streams_of(app, member) == 1
    assert_same_document(page)
