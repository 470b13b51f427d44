"""A session's live status moves by itself on both dashboards (member and trainer, two browser
contexts, no reload): starting soon → live now → completed, driven by a controllable clock
(fittribe/clock.py, shared with the live server through Redis) and the worker's status job,
which the test runs itself as the worker would."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from fittribe import clock
from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus
from fittribe.services import booking as booking_service
from fittribe.services import session_status
from tests.browser.pages import assert_same_document, log_in, open_live_page

pytestmark = pytest.mark.browser

PUSH_TIMEOUT_MS = 5_000


def seeded_session(app) -> tuple[int, datetime]:
    with app.app_context():
        try:
            booking = db.session.scalar(select(Booking).where(Booking.status == BookingStatus.CONFIRMED))
            return booking.id, booking.starts_at
        finally:
            db.session.remove()


def time_passes_to(app, moment: datetime) -> None:
    """Move every process's clock to `moment`, then run the worker's jobs for that moment."""
    with app.app_context():
        try:
            clock.set_offset(moment - datetime.now(timezone.utc))
            booking_service.complete_finished(now=moment)
            session_status.announce_phase_changes(now=moment)
        finally:
            db.session.remove()


def test_session_status_moves_on_both_dashboards_without_reload(app, live_server, demo, member_context,
                                                                 trainer_context):
    booking_id, start = seeded_session(app)
    pages = []
    for context, email in ((member_context, "member@fittribe.example"), (trainer_context, "trainer@fittribe.example")):
        page = context.new_page()
        log_in(page, live_server, email)
        open_live_page(page)
        pages.append(page)

    def status_everywhere(text: str) -> None:
        for page in pages:
            row = page.locator(f"#upcoming .session-row[data-booking='{booking_id}']")
            expect(row.locator(".session-status")).to_have_text(text, timeout=PUSH_TIMEOUT_MS)

    status_everywhere("Confirmed")
    time_passes_to(app, start - timedelta(minutes=20))
    status_everywhere("Starting in 20 min")
    time_passes_to(app, start - timedelta(minutes=8))
    status_everywhere("Starting in 8 min")
    for page in pages:
        expect(page.locator(f".session-row[data-booking='{booking_id}']").get_by_role("button", name="Join")).to_be_visible()
    time_passes_to(app, start + timedelta(minutes=1))
    status_everywhere("Live now")
    time_passes_to(app, start + timedelta(hours=1, minutes=1))
    status_everywhere("Completed")
    for page in pages:
        expect(page.locator(".past-sessions")).to_contain_text("Completed")
        assert_same_document(page)
