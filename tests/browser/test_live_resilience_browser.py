"""The live promise in a real browser: a page that was offline while things changed shows all of
them soon after it is back; a connection that dies silently is noticed (heartbeats) and the page
catches up; a pushed calendar is on each viewer's own clock and still books (CSRF)."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import Booking, Review, ReviewFlag, Role, TrainerProfile, User
from fittribe.services import reviews as review_service
from fittribe.services.notify import notify
from tests.browser.pages import assert_same_document, expect_live, log_in, open_live_page
from tests.helpers import FreezableProxy, demo_hold

pytestmark = pytest.mark.browser

MEMBER = "member@fittribe.example"
ADMIN = "admin@fittribe.example"


@pytest.fixture
def history(app, demo):
    """The demo's past sessions, payments and reviews (as `flask seed` makes them)."""
    from fittribe.seed import seed_history

    with app.app_context():
        try:
            seed_history()
        finally:
            db.session.remove()


def _flag_three_reviews(app) -> list[str]:
    """A member reports three reviews (each a named "review-moderation" event for admins);
    returns the reviews' first words as the queue shows them."""
    with app.app_context():
        try:
            member = User(email="reporter@fittribe.example", name="Rae Reporter", role=Role.MEMBER)
            member.set_password("fittribe-demo")
            db.session.add(member)
            flagged = select(ReviewFlag.review_id)
            reviews = db.session.scalars(select(Review).where(Review.hidden_at.is_(None), Review.id.not_in(flagged))
                                         .order_by(Review.id).limit(3)).all()
            assert len(reviews) == 3
            for review in reviews:
                review_service.flag(review, member, "This looks like spam to me.")
                db.session.commit()
            return [f"review-{review.id}" for review in reviews]
        finally:
            db.session.remove()


def test_a_page_offline_for_20_s_shows_every_change_within_2_s_of_coming_back(app, live_server, history,
                                                                              new_context):
    """Offline, the stream outlives the blip and the events arrive, but the re-fetches they
    trigger fail (ERR_INTERNET_DISCONNECTED): they are retried, and at once when back online."""
    context = new_context()
    page = context.new_page()
    log_in(page, live_server, ADMIN, lands_on="/admin/trainers")
    open_live_page(page, f"{live_server}/admin/reviews")
    queue = page.locator("#review-moderation")
    before = queue.inner_html()

    context.set_offline(True)
    reviews = _flag_three_reviews(app)
    page.wait_for_timeout(20_000)
    for review in reviews:
        expect(queue.locator(f"#{review}")).to_have_count(0)  # nothing could be fetched
    assert queue.inner_html() == before

    context.set_offline(False)
    back = time.monotonic()
    for review in reviews:
        expect(queue.locator(f"#{review}")).to_have_count(1, timeout=2_000)
    assert time.monotonic() - back < 2.5
    expect_live(page)
    assert_same_document(page)


def test_a_silently_dead_connection_shows_reconnecting_and_catches_up(app, live_server, demo, new_context):
    """The path to the server stops moving bytes without closing (a frozen proxy): within two
    missed heartbeats (1 s in tests) the page says "Reconnecting…", and when the path comes
    back it is live again with what happened meanwhile."""
    proxy = FreezableProxy(int(live_server.rsplit(":", 1)[1]))
    try:
        context = new_context()
        page = context.new_page()
        log_in(page, proxy.url, MEMBER)
        open_live_page(page)
        status = page.locator("#live-status")

        proxy.frozen.set()
        frozen_at = time.monotonic()
        expect(status).to_have_attribute("data-state", "reconnecting", timeout=10_000)
        noticed = time.monotonic() - frozen_at
        assert noticed < 35  # the bound for a 15 s heartbeat; here about 3 s
        with app.app_context():
            try:
                member = db.session.scalar(select(User.id).where(User.email == MEMBER))
                notify(member, "test", "Sent while the path was dead")
                db.session.commit()
            finally:
                db.session.remove()
        page.wait_for_timeout(1_000)

        proxy.frozen.clear()
        expect(page.locator("#notification-toast")).to_contain_text("Sent while the path was dead", timeout=15_000)
        expect_live(page)
        assert_same_document(page)
    finally:
        proxy.close()


def _free_times(page) -> list[str]:
    return page.locator("#availability time").evaluate_all("els => els.map(e => e.getAttribute('datetime'))")


def test_a_visitor_in_tokyo_and_a_member_see_a_taken_time_vanish_on_their_own_clocks_and_book_from_the_push(
        app, live_server, demo, new_context):
    visitor = new_context(timezone_id="Asia/Tokyo").new_page()
    open_live_page(visitor, f"{live_server}/trainers/maya-chen")
    member = new_context(timezone_id="Europe/London").new_page()
    log_in(member, live_server, MEMBER)
    open_live_page(member, f"{live_server}/trainers/maya-chen")
    # The visitor's clock came from the browser (first visit: the live parts re-fetched on it).
    expect(visitor.locator("#availability")).to_contain_text("Asia/Tokyo (your time)")
    expect(member.locator("#availability")).to_contain_text("Europe/London")

    # A third person (the trainer's other member account: made here) holds Maya's first hour.
    with app.app_context():
        try:
            third = User(email="third@fittribe.example", name="Third Member", time_zone="UTC", role=Role.MEMBER)
            third.set_password("fittribe-demo")
            db.session.add(third)
            db.session.commit()
        finally:
            db.session.remove()
    booking_id = demo_hold(app, email="third@fittribe.example")
    with app.app_context():
        try:
            taken = db.session.get(Booking, booking_id).starts_at
            maya_zone = db.session.scalar(select(TrainerProfile.time_zone).where(TrainerProfile.slug == "maya-chen"))
        finally:
            db.session.remove()
    for page, zone in ((visitor, "Asia/Tokyo"), (member, "Europe/London")):
        # Each calendar lists the times on its viewer's clock; the taken one is gone within 1 s.
        expect(page.locator("#availability time").first).to_be_visible()
        offset = re.compile(r"\+09:00$" if zone == "Asia/Tokyo" else r"(\+00:00|\+01:00)$")
        deadline = time.monotonic() + 1.5
        while any(_same_instant(t, taken) for t in _free_times(page)):
            assert time.monotonic() < deadline, f"{zone}: the taken time is still shown"
            page.wait_for_timeout(50)
        assert all(offset.search(t) for t in _free_times(page)), _free_times(page)[:3]
        assert_same_document(page)
    assert maya_zone

    # The member books another time from the pushed calendar (no CSRF token was pushed).
    # (the last time of the last day in the strip: the first may fall inside the minimum notice by
    # the time of the click)
    member.locator("#availability .length-times:not([hidden]) .day-strip a.day").last.click()
    member.locator("#availability .slot-button:visible").last.click()
    expect(member).to_have_url(re.compile(r"/bookings/\d+"))
    expect(member.get_by_role("heading", name="Your time is held")).to_be_visible()


def _same_instant(iso: str, moment) -> bool:
    from datetime import datetime, timezone

    shown = datetime.fromisoformat(iso)
    stored = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return shown == stored
