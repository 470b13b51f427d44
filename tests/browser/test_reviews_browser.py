"""Reviews live in Chromium against the gunicorn server: a member's new review, and an admin hiding
a reported one, reach a profile page that is already open in another browser, without a reload."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, TrainerProfile, User
from fittribe.services import reviews as review_service
from tests.browser.pages import assert_same_document, log_in, open_live_page

pytestmark = pytest.mark.browser

PUSH_TIMEOUT_MS = 5_000
MAYA = "maya-chen"


def completed_session(app, member_email: str, days_ago: int) -> int:
    """A finished session of Maya's, marked completed straight in the DB (no worker in tests)."""
    with app.app_context():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == MAYA))
        member = db.session.scalar(select(User).where(User.email == member_email))
        ends_at = datetime.now(timezone.utc) - timedelta(days=days_ago)
        booking = Booking(trainer_id=trainer.id, member_id=member.id, starts_at=ends_at - timedelta(hours=1),
                          ends_at=ends_at, status=BookingStatus.COMPLETED, price_cents=trainer.price_cents,
                          currency=trainer.currency)
        db.session.add(booking)
        db.session.commit()
        return booking.id



def review(app, booking_id: int, rating: int, text: str) -> int:
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        return review_service.post_review(booking, booking.member, rating, text).id


def test_a_new_review_and_the_new_average_reach_an_open_profile(app, live_server, demo, member_context, new_context):
    earlier = review(app, completed_session(app, "member@fittribe.example", days_ago=5), 5,
                     "Five stars from an earlier session, great coaching.")
    session_id = completed_session(app, "member@fittribe.example", days_ago=1)

    visitor = new_context().new_page()
    open_live_page(visitor, f"{live_server}/trainers/{MAYA}")
    expect(visitor.locator("#rating-summary")).to_contain_text("★ 5.0")
    expect(visitor.locator(f"#review-{earlier}")).to_be_visible()

    member = member_context.new_page()
    log_in(member, live_server, "member@fittribe.example")
    member.goto(f"{live_server}/bookings/{session_id}")
    form = member.locator("#review-form")
    form.get_by_label("4 stars: good").check()
    form.get_by_label("Your review").fill("Solid mobility work <b>and</b> a clear plan for the week.")
    form.get_by_role("button", name="Publish review").click()
    expect(member).to_have_url(f"{live_server}/trainers/{MAYA}#review-{earlier + 1}")

    # The visitor's open profile shows the review (as text) and the new average, without a reload.
    expect(visitor.locator("#reviews")).to_contain_text("Solid mobility work <b>and</b> a clear plan",
                                                       timeout=PUSH_TIMEOUT_MS)
    expect(visitor.locator("#rating-summary")).to_contain_text("★ 4.5", timeout=PUSH_TIMEOUT_MS)
    expect(visitor.locator("#rating-summary")).to_contain_text("(2)")
    expect(visitor.locator("#reviews .review").first).to_contain_text("Solid mobility work")  # newest first
    assert_same_document(visitor)


def test_an_admin_hides_a_reported_review_and_it_leaves_open_profiles(app, live_server, demo, new_context):
    kept = review(app, completed_session(app, "member@fittribe.example", days_ago=6), 5,
                  "Kept: thoughtful coaching and good humour.")
    reported = review(app, completed_session(app, "member@fittribe.example", days_ago=4), 1,
                      "Reported: this coach is a total fraud!!!")

    visitor = new_context().new_page()
    open_live_page(visitor, f"{live_server}/trainers/{MAYA}")
    expect(visitor.locator(f"#review-{reported}")).to_be_visible()
    expect(visitor.locator("#rating-summary")).to_contain_text("★ 3.0")

    admin = new_context().new_page()
    log_in(admin, live_server, "admin@fittribe.example", lands_on="/admin/trainers")
    open_live_page(admin, f"{live_server}/admin/reviews")
    expect(admin.locator("#review-moderation")).to_contain_text("Reported reviews (0)")

    # Another trainer reports it: the admin's open queue lists it at once.
    reporter = new_context().new_page()
    log_in(reporter, live_server, "lucia@fittribe.example")
    reporter.goto(f"{live_server}/trainers/{MAYA}")
    reporter.locator(f"#review-{reported}").locator("xpath=..").get_by_role("link", name="Report this review").click()
    reporter.get_by_label("What is wrong with this review?").fill("Insulting, and not about the session.")
    reporter.get_by_role("button", name="Send the report").click()
    expect(reporter.get_by_text("Thank you for the report.")).to_be_visible()
    expect(admin.locator("#review-moderation")).to_contain_text("Reported reviews (1)", timeout=PUSH_TIMEOUT_MS)
    expect(admin.locator("#review-moderation")).to_contain_text("Insulting, and not about the session.")
    expect(admin.locator("#notification-toast")).to_contain_text("reported a review of Maya Chen")
    assert_same_document(admin)

    # Hiding goes through the confirm step with a reason.
    admin.get_by_role("link", name="Hide review…").click()
    expect(admin.get_by_role("heading", name="Hide this review?")).to_be_visible()
    admin.get_by_label("Reason for hiding").fill("Abusive language")
    admin.get_by_role("button", name="Yes, hide the review").click()
    expect(admin.get_by_text("The review is hidden from Maya Chen's profile and rating.")).to_be_visible()
    expect(admin.locator("#review-moderation")).to_contain_text("Alex Admin hid review")

    # The visitor's open profile loses it, and the rating counts only the kept review.
    expect(visitor.locator(f"#review-{reported}")).to_have_count(0, timeout=PUSH_TIMEOUT_MS)
    expect(visitor.locator("#rating-summary")).to_contain_text("★ 5.0", timeout=PUSH_TIMEOUT_MS)
    expect(visitor.locator(f"#review-{kept}")).to_be_visible()
    assert_same_document(visitor)
