"""In Chromium against the live server: the hold's countdown ticks with JavaScript and reads as plain
minutes without it; a trainer uploads a photo (a bad file is refused with a clear message) and
their face replaces the initials."""
from __future__ import annotations

import re
from io import BytesIO

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.pages import log_in
from tests.helpers import demo_hold

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("javascript", [True, False])
def test_the_hold_counts_down(app, live_server, demo, new_context, javascript):
    held = demo_hold(app, days_ahead=3)
    page = new_context(java_script_enabled=javascript).new_page()
    log_in(page, live_server, "member@fittribe.example")
    page.goto(f"{live_server}/bookings/{held}")
    countdown = page.locator(".countdown")
    if not javascript:
        expect(countdown).to_have_text(f"{app.config['HOLD_MINUTES']} minutes left")
        return
    expect(countdown).to_have_text(re.compile(r"^\d+:\d\d left$"))
    first = countdown.text_content()
    expect(countdown).not_to_have_text(first, timeout=3_000)  # it ticks
    minutes = int(countdown.text_content().split(":")[0])
    assert minutes in (app.config["HOLD_MINUTES"] - 1, app.config["HOLD_MINUTES"])
    pay, release = page.get_by_role("button", name=re.compile("^Pay")), page.get_by_role("button", name="Release this time")
    gap = release.bounding_box()["x"] - (pay.bounding_box()["x"] + pay.bounding_box()["width"])
    assert gap >= 16, f"Pay and Release are {gap:.0f} px apart"


def png(size) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(out, "PNG")
    return out.getvalue()


def test_a_trainer_uploads_a_photo_and_a_bad_file_is_refused(live_server, demo, new_context):
    page = new_context().new_page()
    log_in(page, live_server, "trainer@fittribe.example")
    page.goto(f"{live_server}/dashboard/profile")
    photo = page.get_by_label("Choose a photo")
    photo.set_input_files({"name": "notes.png", "mimeType": "image/png", "buffer": b"not an image at all"})
    page.get_by_role("button", name="Upload photo").click()
    expect(page.get_by_role("alert")).to_have_text(re.compile("This file is not a photo we can read"))
    photo = page.get_by_label("Choose a photo")
    photo.set_input_files({"name": "me.png", "mimeType": "image/png", "buffer": png((900, 600))})
    page.get_by_role("button", name="Upload photo").click()
    expect(page.get_by_text("Photo saved.")).to_be_visible()
    page.goto(f"{live_server}/trainers/maya-chen")
    face = page.locator(".profile-head img.avatar")
    expect(face).to_be_visible()
    assert page.evaluate("document.querySelector('.profile-head img.avatar').naturalWidth") > 0
