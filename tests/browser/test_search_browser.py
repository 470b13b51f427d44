"""Trainer search and sign-up in a real browser (Chromium via Playwright) against the live
gunicorn server: htmx swaps only the fragment and keeps the URL in sync, and without JS the
same pages work as plain forms and links."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, Response, expect
from sqlalchemy import func, select

from tests.browser.pages import MARKER, assert_same_document

pytestmark = pytest.mark.browser

ALL_BY_RATING = ["Maya Chen", "Lucía Fernández", "Anna Kowalski", "Kwame Mensah", "Diego Santos"]
PAGE_SIZE = 12


# --- helpers ---------------------------------------------------------------------------------

def cards(page: Page):
    return page.locator("#results .trainer-card h3")


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    # htmx wires the page up on DOMContentLoaded, before goto() returns (it waits for "load").
    assert page.evaluate("typeof htmx") == "object", "htmx did not load"
    page.evaluate(f"{MARKER} = 42")


def is_fragment_get(path: str, **params: str):
    def matches(response: Response) -> bool:
        parts = urlsplit(response.url)
        query = parse_qs(parts.query)
        return (parts.path == path and response.request.method == "GET"
                and response.request.headers.get("hx-request") == "true"
                and all(query.get(name) == [value] for name, value in params.items()))

    return matches


def assert_fragment(response: Response) -> str:
    headers = response.request.headers
    assert headers.get("hx-request") == "true" and headers.get("hx-request-type") == "partial", headers
    body = response.text()
    assert "<html" not in body.lower() and "<body" not in body.lower(), body[:300]
    return body


def user_count(app) -> int:
    from fittribe.extensions import db
    from fittribe.models import User

    with app.app_context():
        try:
            return db.session.scalar(select(func.count(User.id)))
        finally:
            db.session.remove()


# --- with JS: htmx ------------------------------------------------------------------------------

def test_filters_swap_results_in_place_push_url_and_back_restores(page: Page, live_server, demo):
    open_page(page, f"{live_server}/trainers")
    expect(cards(page)).to_have_text(ALL_BY_RATING)

    with page.expect_response(is_fragment_get("/trainers", specialty="mobility")) as first:
        page.get_by_label("Specialty").select_option("mobility")
    assert first.value.status == 200
    assert "Mobility" in assert_fragment(first.value)
    expect(cards(page)).to_have_text(["Maya Chen", "Lucía Fernández", "Anna Kowalski"])
    expect(page).to_have_url(re.compile(r"/trainers\?.*specialty=mobility"))
    assert_same_document(page)

    # Typed key by key: the `input delay:300ms` trigger debounces them into one search.
    with page.expect_response(is_fragment_get("/trainers", q="yoga", specialty="mobility")) as second:
        page.get_by_label("Name or goal").press_sequentially("yoga")
    assert second.value.status == 200
    body = assert_fragment(second.value)
    assert "Lucía Fernández" in body and "Maya Chen" not in body
    expect(cards(page)).to_have_text(["Lucía Fernández"])
    expect(page.locator("#results .result-count")).to_have_text("1 trainer found")
    expect(page).to_have_url(re.compile(r"/trainers\?.*q=yoga"))
    assert query_of(page.url)["specialty"] == ["mobility"]
    assert_same_document(page)

    # Back: htmx 4 intercepts the traversal and re-GETs the full page for that URL (HTMX4.md §7).
    def is_restore(response: Response) -> bool:
        return response.request.headers.get("hx-history-restore-request") == "true"

    with page.expect_response(is_restore) as restore:
        page.go_back()
    assert restore.value.status == 200
    assert "<html" in restore.value.text().lower()
    assert query_of(restore.value.url).get("q", [""]) == [""]
    expect(page).to_have_url(re.compile(r"/trainers\?.*specialty=mobility"))
    assert "yoga" not in page.url
    expect(cards(page)).to_have_text(["Maya Chen", "Lucía Fernández", "Anna Kowalski"])
    expect(page.get_by_label("Name or goal")).to_have_value("")
    expect(page.get_by_label("Specialty")).to_have_value("mobility")
    assert_same_document(page)

    with page.expect_response(is_restore):
        page.go_back()
    expect(page).to_have_url(f"{live_server}/trainers")
    expect(cards(page)).to_have_text(ALL_BY_RATING)
    assert_same_document(page)


def test_sort_select_reorders_results_live(page: Page, live_server, demo):
    open_page(page, f"{live_server}/trainers")
    expect(cards(page)).to_have_text(ALL_BY_RATING)

    with page.expect_response(is_fragment_get("/trainers", sort="price_asc")) as response:
        page.get_by_label("Sort by").select_option(label="Price: low to high")
    assert_fragment(response.value)
    expect(cards(page)).to_have_text(
        ["Diego Santos", "Lucía Fernández", "Kwame Mensah", "Maya Chen", "Anna Kowalski"])
    expect(page.locator("#results .trainer-card").first).to_contain_text("$40")
    expect(page).to_have_url(re.compile(r"/trainers\?.*sort=price_asc"))

    with page.expect_response(is_fragment_get("/trainers", sort="price_desc")):
        page.get_by_label("Sort by").select_option("price_desc")
    expect(cards(page)).to_have_text(
        ["Anna Kowalski", "Maya Chen", "Kwame Mensah", "Lucía Fernández", "Diego Santos"])
    assert_same_document(page)


@pytest.fixture
def many_trainers(app, demo):
    """The demo trainers plus 15 generated ones, so the results span more than one page."""
    from fittribe.extensions import db
    from fittribe.models import TrainerProfile, User
    from fittribe.seed import seed_bulk_trainers

    with app.app_context():
        seed_bulk_trainers(15)
        listed = db.session.scalar(
            select(func.count(TrainerProfile.id)).join(TrainerProfile.user)
            .where(TrainerProfile.is_approved.is_(True), User.is_suspended.is_(False)))
        db.session.remove()
    assert PAGE_SIZE < listed <= 2 * PAGE_SIZE, listed
    return listed


def card_links(page: Page) -> list[str]:
    # Read as attributes, not with evaluate(), so it works the same with JS disabled.
    return [link.get_attribute("href") for link in page.locator("#results .trainer-card h3 a").all()]


def test_pagination_link_swaps_results_in_place(page: Page, live_server, many_trainers):
    open_page(page, f"{live_server}/trainers?sort=price_asc")
    expect(page.locator("#results .trainer-card")).to_have_count(PAGE_SIZE)
    first_page = card_links(page)

    with page.expect_response(is_fragment_get("/trainers", page="2", sort="price_asc")) as response:
        page.locator("#results .pagination").get_by_role("link", name="Next →").click()
    assert_fragment(response.value)
    expect(page.locator("#results .pagination [aria-current=page]")).to_have_text("2")
    expect(page.locator("#results .trainer-card")).to_have_count(many_trainers - PAGE_SIZE)
    assert not set(card_links(page)) & set(first_page)
    assert query_of(page.url)["page"] == ["2"] and query_of(page.url)["sort"] == ["price_asc"]
    assert_same_document(page)


def test_signup_errors_swap_into_the_form_and_store_nothing(page: Page, live_server, app):
    open_page(page, f"{live_server}/signup")
    form = page.locator("#signup-form")
    form.get_by_label("Your name").fill("Nora New")
    form.get_by_label("Email", exact=True).fill("not-an-email")
    form.get_by_label("Password", exact=True).fill("correct horse battery")
    form.get_by_label("Repeat password").fill("correct horse battery staple")

    def is_signup_post(response: Response) -> bool:
        return urlsplit(response.url).path == "/signup" and response.request.method == "POST"

    with page.expect_response(is_signup_post) as response:
        form.get_by_role("button", name="Create account").click()
    assert response.value.status == 422
    body = assert_fragment(response.value)
    assert body.lstrip().startswith('<form id="signup-form"'), body[:200]

    expect(page.locator("#email-error")).to_contain_text("Enter a valid email address")
    expect(page.locator("#confirm-error")).to_contain_text("The passwords don't match.")
    expect(page.get_by_label("Email", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Repeat password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#name-error")).to_have_count(0)
    expect(page.locator("#password-error")).to_have_count(0)
    # Swapped in place (outerHTML of the form), not nested or duplicated; typed values kept.
    expect(page.locator("form#signup-form")).to_have_count(1)
    expect(page.get_by_label("Your name")).to_have_value("Nora New")
    expect(page.get_by_label("Email", exact=True)).to_have_value("not-an-email")
    expect(page).to_have_url(f"{live_server}/signup")
    assert_same_document(page)
    assert user_count(app) == 0


# --- without JS: plain forms and links -----------------------------------------------------------

@pytest.fixture
def no_js_page(new_context) -> Page:
    return new_context(java_script_enabled=False).new_page()


def is_document(response: Response) -> bool:
    return response.request.resource_type == "document"


def test_without_js_the_filter_form_submits_as_a_full_page_get(no_js_page: Page, live_server, demo):
    page = no_js_page
    page.goto(f"{live_server}/trainers")
    expect(cards(page)).to_have_text(ALL_BY_RATING)

    page.get_by_label("Specialty").select_option("mobility")
    page.get_by_label("Sort by").select_option("price_asc")
    # No JS, no live search: the results only change once the form is submitted.
    expect(cards(page)).to_have_count(5)

    with page.expect_response(is_document) as response:
        page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    assert response.value.status == 200
    assert "hx-request" not in response.value.request.headers
    assert "<html" in response.value.text().lower()
    query = query_of(page.url)
    assert urlsplit(page.url).path == "/trainers"
    assert query["specialty"] == ["mobility"] and query["sort"] == ["price_asc"]
    expect(cards(page)).to_have_text(["Lucía Fernández", "Maya Chen", "Anna Kowalski"])
    expect(page.get_by_label("Specialty")).to_have_value("mobility")

    with page.expect_response(is_document):
        page.get_by_role("link", name="Clear filters").click()
    expect(page).to_have_url(f"{live_server}/trainers")
    expect(cards(page)).to_have_text(ALL_BY_RATING)


def test_without_js_pagination_links_are_plain_links(no_js_page: Page, live_server, many_trainers):
    page = no_js_page
    page.goto(f"{live_server}/trainers?sort=price_asc")
    expect(page.locator("#results .trainer-card")).to_have_count(PAGE_SIZE)
    first_page = card_links(page)

    with page.expect_response(is_document) as response:
        page.locator("#results .pagination").get_by_role("link", name="Next →").click()
    page.wait_for_load_state()
    assert "hx-request" not in response.value.request.headers
    assert query_of(page.url)["page"] == ["2"] and query_of(page.url)["sort"] == ["price_asc"]
    expect(page.locator("#results .pagination [aria-current=page]")).to_have_text("2")
    expect(page.locator("#results .trainer-card")).to_have_count(many_trainers - PAGE_SIZE)
    assert not set(card_links(page)) & set(first_page)

    with page.expect_response(is_document):
        page.locator("#results .pagination").get_by_role("link", name="← Previous").click()
    expect(page.locator("#results .pagination [aria-current=page]")).to_have_text("1")
    assert card_links(page) == first_page
