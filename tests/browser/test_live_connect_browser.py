"""A page whose FIRST stream connect fails or gets no answer still goes live: live.js retries it
with backoff (htmx itself only retries streams that were connected once)."""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import Route, expect

pytestmark = pytest.mark.browser


def test_a_failed_first_connect_is_retried(live_server, demo, new_context):
    page = new_context().new_page()
    attempts: list[str] = []

    def first_fails(route: Route) -> None:
        attempts.append(route.request.url)
        if len(attempts) == 1:
            route.abort("connectionrefused")
        else:
            route.continue_()

    page.route("**/stream*", first_fails)
    page.goto(f"{live_server}/trainers/maya-chen")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=10_000)
    assert len(attempts) == 2


def test_a_first_connect_without_an_answer_times_out_and_is_retried(live_server, demo, new_context):
    page = new_context().new_page()
    attempts: list[float] = []

    def first_hangs(route: Route) -> None:
        attempts.append(time.monotonic())
        if len(attempts) > 1:
            route.continue_()
        # the first one is never answered: the connect timeout (5 s) has to give up on it

    page.route("**/stream*", first_hangs)
    page.goto(f"{live_server}/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=15_000)
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 5
