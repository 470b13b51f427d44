"""What the browser tests do on pages: log in through the real form, wait for the page's live
stream, and detect reloads (a window marker set before a change must survive it)."""
from __future__ import annotations

from playwright.sync_api import Page, expect

MARKER = "window.__noReload"
PASSWORD = "fittribe-demo"


def log_in(page: Page, base_url: str, email: str, lands_on: str = "/dashboard/") -> None:
    """Through the real login form (posted by htmx, or plainly with JavaScript off); members and
    trainers land on their dashboard, admins on trainer approvals (`lands_on="/admin/trainers"`)."""
    page.goto(f"{base_url}/login")
    form = page.locator("#login-form")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password", exact=True).fill(PASSWORD)
    form.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base_url}{lands_on}")


def expect_live(page: Page) -> None:
    """The header indicator (static/js/live.js) says the page's SSE stream is connected."""
    status = page.locator("#live-status")
    expect(status).to_have_attribute("data-state", "live", timeout=10_000)  # first connect on a busy box
    expect(status).to_have_text("Live")
    expect(status).to_be_visible()


def open_live_page(page: Page, url: str | None = None) -> None:
    """Open `url` (or stay on the current page), wait until its stream is connected, then mark
    the document so a reload can be detected."""
    if url is not None:
        page.goto(url)
    assert page.evaluate("typeof htmx") == "object", "htmx did not load"
    expect_live(page)
    page.evaluate(f"{MARKER} = 42")


def assert_same_document(page: Page) -> None:
    assert page.evaluate(MARKER) == 42, "the page was reloaded: the window marker is gone"
