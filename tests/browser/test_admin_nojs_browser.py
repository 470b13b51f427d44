"""The admin area with JavaScript switched off: everything works as plain pages and forms (only
the live updates are missing) — analytics with its date range, users with search and suspension,
approvals, and the review moderation queue."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from fittribe.extensions import db
from fittribe.seed import seed_history
from tests.browser.pages import log_in

pytestmark = pytest.mark.browser


def test_admin_pages_work_without_javascript(app, live_server, demo, new_context):
    with app.app_context():
        seed_history()  # past sessions, payments and reported reviews to moderate
        db.session.remove()
    page = new_context(java_script_enabled=False).new_page()
    log_in(page, live_server, "admin@fittribe.example", lands_on="/admin/trainers")

    # Analytics: figures and charts render server-side; the date range is a plain GET form.
    page.get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Analytics", exact=True)).to_be_visible()
    expect(page.locator("#analytics-figures")).to_contain_text("USD")
    expect(page.locator("#analytics-charts svg").first).to_be_visible()
    page.get_by_role("textbox", name="From").fill("2026-01-01")
    page.get_by_role("textbox", name="To").fill("2025-01-01")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("alert")).to_be_visible()  # a clear message for an impossible range

    # Users: search, then suspend with a reason on the confirmation page.
    page.get_by_role("link", name="Users").click()
    page.get_by_label("Name or email").fill("lucia")
    page.get_by_role("button", name="Search").click()
    row = page.locator("tr", has_text="lucia@fittribe.example")
    row.get_by_role("link", name="Suspend…").click()
    page.get_by_label("Reason (kept in the audit log)").fill("Testing moderation without JS")
    page.get_by_role("button", name="Yes, suspend").click()
    expect(page.locator("#flashes")).to_contain_text("is suspended")
    expect(page.get_by_text("Testing moderation without JS")).to_be_visible()

    # Approvals: approve the trainer waiting for review.
    page.get_by_role("link", name="Trainer approvals").click()
    page.locator("tr", has_text="Jordan Pending").get_by_role("button", name="Approve").click()
    expect(page.locator("#flashes")).to_contain_text("is approved")

    # Reviews: hide a reported review through the confirm step.
    page.get_by_role("link", name="Flagged reviews").click()
    page.get_by_role("link", name="Hide review…").first.click()
    page.get_by_label("Reason for hiding").fill("Abusive language")
    page.get_by_role("button", name="Yes, hide the review").click()
    expect(page.get_by_role("button", name="Restore review").first).to_be_visible()
