"""The time-zone switcher and "your time": a visitor's pick goes in a long-lived, same-site cookie
(checked against the zone database), a member's into the account; bad zones, a missing CSRF token
and off-site `next` targets are refused; sign-up starts from the browser's zone; pages, pushes and
notifications show times on the reader's clock, labelled as theirs."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import Booking, Notification, TrainerProfile, User
from fittribe.realtime import live
from tests.helpers import SSEClient, csrf_token_from, demo_paid_session, live_login, text_of

MAYA_FREE = datetime(2026, 12, 7, 17, 30, tzinfo=UTC)  # Mon 09:30 in Los Angeles, Tue 02:30 in Tokyo
MEMBER = "member@fittribe.example"


def _maya_free_at(db_session, moment=MAYA_FREE) -> None:
    maya = db_session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
    maya.next_available_at = moment
    db_session.commit()


def _user(db_session, email: str = MEMBER) -> User:
    db_session.expire_all()
    return db_session.scalar(select(User).where(User.email == email))


def _pick(visitor, zone: str, next_url: str | None = "/trainers?q=maya", **extra):
    page = "/time-zone" + (f"?next={next_url}" if next_url else "")
    data = {"zone": zone, **({"next": next_url} if next_url is not None else {}), **extra}
    return visitor.post_form(page, data, post_url="/time-zone")


def _set_cookies(response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}


# --- the switcher ------------------------------------------------------------------------------

def test_the_switcher_lists_every_zone_by_region_city_first_with_the_current_one_chosen(visitor, demo):
    page = visitor.get("/time-zone?next=/trainers")
    html = text_of(page)
    assert page.status_code == 200 and "<h1>Your time zone</h1>" in html
    assert "We don't know your time zone yet" in html
    # A visitor may hand the clock back to the browser; then UTC, then regions sorted by city.
    options = re.findall(r'<option (?:selected )?value="([^"]*)">', html)
    assert options[:2] == ["", "UTC"] and len(options) > 400
    groups = re.findall(r'<optgroup label="([^"]+)">', html)
    assert groups[:2] == ["Africa", "Americas"] and "Europe" in groups and "Asia" in groups
    assert '<option value="Asia/Tokyo">Tokyo — Japan · UTC+9</option>' in html
    assert re.search(r'<option value="America/Argentina/Buenos_Aires">Buenos Aires — Argentina · UTC-3</option>', html)
    assert '<option value="America/Indiana/Knox">Knox (Indiana) — United States' in html
    assert 'name="next" type="hidden" value="/trainers"' in html

    visitor.client.set_cookie("tz", "Asia/Calcutta")  # an old alias Chrome still reports: kept, chosen
    html = text_of(visitor.get("/time-zone"))
    assert '<option selected value="Asia/Calcutta">Calcutta · UTC+5:30</option>' in html
    assert "Every time on FitTribe is shown on your clock: now <strong>Asia/Calcutta</strong>" in html


def test_a_visitor_picks_a_zone_into_a_long_lived_same_site_cookie_and_sees_times_on_it(visitor, db_session, demo):
    _maya_free_at(db_session)
    before = text_of(visitor.get("/trainers?q=maya"))
    assert "Mon 7 Dec, 09:30" in before and "America/Los Angeles (trainer's time)" in before
    assert "Times in each trainer's own time zone" in before and "Pick yours" in before

    response = _pick(visitor, "Asia/Tokyo")
    assert response.status_code == 303 and response.headers["Location"] == "/trainers?q=maya"
    cookies = _set_cookies(response)
    for name, value in (("tz", "Asia/Tokyo"), ("tz_picked", "1")):
        header = cookies[name]
        assert header.startswith(f"{name}={value};")
        assert "Max-Age=31536000" in header and "SameSite=Lax" in header and "Path=/" in header
        assert "HttpOnly" not in header  # live.js must see the pick to leave it alone
    assert visitor.client.get_cookie("tz").value == "Asia/Tokyo"

    after = text_of(visitor.get("/trainers?q=maya"))
    assert '<time datetime="2026-12-08T02:30:00+09:00">Tue 8 Dec, 02:30</time>' in after
    assert "your time" in after and "trainer's time" not in after
    assert "Times are now shown in Asia/Tokyo, your time." in after  # the flash, once
    assert "Times in Asia/Tokyo, your time" in after
    profile = text_of(visitor.get("/trainers/maya-chen"))
    assert "America/Los Angeles time" in profile and "17 hours behind you" in profile  # the hint

    # "Automatic" hands the clock back to the browser: both cookies go.
    response = _pick(visitor, "")
    assert response.status_code == 303
    cookies = _set_cookies(response)
    assert all("Expires=Thu, 01 Jan 1970" in cookies[name] for name in ("tz", "tz_picked"))
    assert visitor.client.get_cookie("tz") is None
    assert "America/Los Angeles (trainer's time)" in text_of(visitor.get("/trainers?q=maya"))


def test_a_member_picks_a_zone_for_the_account_and_every_page_follows_it(app, visitor, db_session, demo):
    booking_id = demo_paid_session(app, days_ahead=3)
    visitor.login(MEMBER)
    assert _user(db_session).time_zone == "Europe/London"
    response = _pick(visitor, "Asia/Tokyo", next_url="/dashboard/")
    assert response.status_code == 303 and response.headers["Location"] == "/dashboard/"
    assert _user(db_session).time_zone == "Asia/Tokyo"
    assert visitor.client.get_cookie("tz").value == "Asia/Tokyo"  # this device keeps it after logging out

    start = db_session.get(Booking, booking_id).starts_at
    local = start.astimezone(ZoneInfo("Asia/Tokyo"))
    dashboard = text_of(visitor.get("/dashboard/"))
    assert f'<time datetime="{local.isoformat()}">{local:%a %-d %b, %H:%M}</time>' in dashboard
    assert "Times in Asia/Tokyo, your time" in dashboard
    booking_page = text_of(visitor.get(f"/bookings/{booking_id}"))
    assert f"{local:%H:%M}" in booking_page and "your time (Asia/Tokyo)" in booking_page

    # An account has a clock of its own: no "automatic" for it.
    html = text_of(visitor.get("/time-zone"))
    assert '<option value="">' not in html and '<option selected value="Asia/Tokyo">' in html
    refused = _pick(visitor, "")
    assert refused.status_code == 422 and "Choose a time zone from the list." in text_of(refused)
    assert _user(db_session).time_zone == "Asia/Tokyo"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "localtime", "Factory", "../../etc/passwd", "asia/tokyo",
                                  "Asia/Tokyo\r\nSet-Cookie: x=1", "<script>", "A" * 5000])
def test_unknown_or_hostile_zones_are_refused_and_nothing_is_stored(visitor, db_session, demo, zone):
    response = _pick(visitor, zone)
    assert response.status_code == 422 and "Choose a time zone from the list." in text_of(response)
    assert "Set-Cookie: x" not in response.headers.get("Set-Cookie", "") and visitor.client.get_cookie("tz") is None
    visitor.login(MEMBER)
    response = _pick(visitor, zone)
    assert response.status_code == 422
    assert _user(db_session).time_zone == "Europe/London"


def test_a_nul_in_the_zone_is_a_400_and_a_forged_cookie_is_ignored(visitor, db_session, demo):
    assert _pick(visitor, "Asia/Tokyo\x00").status_code == 400
    _maya_free_at(db_session)
    for forged in ("localtime", "Mars/Olympus", "Asia/Tokyo;x", "%00", "A" * 4000):
        visitor.client.set_cookie("tz", forged)
        page = visitor.get("/trainers?q=maya")
        assert page.status_code == 200 and "America/Los Angeles (trainer's time)" in text_of(page), forged


def test_the_switcher_needs_the_csrf_token(client, db_session, demo):
    client.get("/time-zone")  # a session, but no token sent
    response = client.post("/time-zone", data={"zone": "Asia/Tokyo", "next": "/"})
    assert response.status_code == 400 and "Your form expired" in text_of(response)
    assert client.get_cookie("tz") is None


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
                                    "/%0d%0aLocation:%20https://evil.example", "http:/evil.example"])
def test_next_never_leaves_the_site(visitor, demo, target):
    response = _pick(visitor, "Asia/Tokyo", next_url=target)
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_next_comes_back_to_the_same_page_and_the_links_carry_it(visitor, demo):
    search = text_of(visitor.get("/trainers?q=maya&sort=available"))
    assert 'href="/time-zone?next=/trainers?q%3Dmaya%26sort%3Davailable"' in search
    response = _pick(visitor, "Europe/Paris", next_url="/trainers?q=maya&sort=available")
    assert response.headers["Location"] == "/trainers?q=maya&sort=available"


def test_a_visitor_without_a_zone_is_told_once_without_js(client, demo):
    first = text_of(client.get("/trainers"))
    assert "<noscript>" in first and "Pick your time zone once" in first
    assert "Pick your time zone once" not in text_of(client.get("/trainers"))  # told once
    assert "Times in each trainer's own time zone" in text_of(client.get("/"))  # the footer keeps offering it

    fresh = client.application.test_client()
    fresh.set_cookie("tz", "Asia/Tokyo")  # the browser told us (JS): nothing to say
    html = text_of(fresh.get("/trainers"))
    assert "Pick your time zone once" not in html and "Times in Asia/Tokyo, your time" in html


# --- sign-up and log-in ----------------------------------------------------------------------------

def _signup(visitor, email: str, **fields):
    data = {"role": "member", "name": "Kenji Sato", "email": email, "password": "a long password",
            "confirm": "a long password", **fields}
    return visitor.post_form("/signup", data)


def _zone_of(app, email: str) -> str | None:
    """Read outside the requests' app context: a test holding one would share `g` (and so the
    logged-in user) between the separate browsers below."""
    with app.app_context():
        try:
            return db.session.scalar(select(User.time_zone).where(User.email == email))
        finally:
            db.session.remove()


def test_sign_up_starts_from_the_browsers_zone_unless_another_is_chosen(app, demo):
    from tests.helpers import Browser

    tokyo = Browser(app.test_client())
    tokyo.client.set_cookie("tz", "Asia/Tokyo")
    assert '<option selected value="Asia/Tokyo">' in text_of(tokyo.get("/signup"))
    assert _signup(tokyo, "kenji@example.com").status_code == 303  # the form's own choice: Asia/Tokyo
    assert _zone_of(app, "kenji@example.com") == "Asia/Tokyo"

    # Sent with "Same as this browser" (the page came before live.js told us): the cookie decides.
    later = Browser(app.test_client())
    assert '<option selected value="">Same as this browser</option>' in text_of(later.get("/signup"))
    later.client.set_cookie("tz", "America/Sao_Paulo")
    assert _signup(later, "ana@example.com", time_zone="").status_code == 303
    assert _zone_of(app, "ana@example.com") == "America/Sao_Paulo"

    # An explicit choice wins over the cookie; no zone at all is a clear 422.
    paris = Browser(app.test_client())
    paris.client.set_cookie("tz", "Asia/Tokyo")
    assert _signup(paris, "marie@example.com", time_zone="Europe/Paris").status_code == 303
    assert _zone_of(app, "marie@example.com") == "Europe/Paris"
    nowhere = Browser(app.test_client())
    response = _signup(nowhere, "nobody@example.com", time_zone="")
    assert response.status_code == 422 and "Choose your time zone from the list" in text_of(response)
    assert _zone_of(app, "nobody@example.com") is None


def test_log_in_says_when_the_account_and_this_browser_are_on_different_clocks(visitor, demo):
    visitor.client.set_cookie("tz", "Asia/Tokyo")
    visitor.login(MEMBER)
    page = text_of(visitor.get("/dashboard/"))
    assert "Times are shown in your account's time zone, Europe/London; this browser is on Asia/Tokyo." in page


# --- notifications ---------------------------------------------------------------------------------

def test_notifications_say_each_readers_own_time(app, db_session, demo):
    booking_id = demo_paid_session(app, days_ahead=3)
    start = db_session.get(Booking, booking_id).starts_at
    told = dict(db_session.execute(select(User.email, Notification.message).join(User, User.id == Notification.user_id)
                                   .where(Notification.kind == "confirmed")).all())
    london, los_angeles = start.astimezone(ZoneInfo("Europe/London")), start.astimezone(ZoneInfo("America/Los_Angeles"))
    assert f"on {london:%a %-d %b %H:%M} (your time, Europe/London) is confirmed" in told[MEMBER]
    assert f"for {los_angeles:%a %-d %b %H:%M} (your time, America/Los Angeles)" in told["trainer@fittribe.example"]


# --- live pushes ----------------------------------------------------------------------------------

def _stream_url(html: str) -> str:
    return re.search(r'hx-sse:connect="([^"]+)"', html).group(1).replace("&amp;", "&")


def _live_pick(session, base: str, zone: str) -> None:
    token = csrf_token_from(session.get(f"{base}/time-zone").text)
    response = session.post(f"{base}/time-zone", data={"csrf_token": token, "zone": zone, "next": "/trainers"},
                            allow_redirects=False)
    assert response.status_code == 303, response.text[:300]


def test_pages_opened_after_a_change_get_pushes_on_the_new_clock(app, live_server, demo):
    """A visitor and a member each pick Asia/Tokyo, then open search: when Maya's next free time
    moves, their cards are pushed on Tokyo's clock; a visitor who picked nothing gets hers."""
    picked, member, unknown = requests.Session(), requests.Session(), requests.Session()
    _live_pick(picked, live_server, "Asia/Tokyo")
    live_login(member, live_server, MEMBER)
    _live_pick(member, live_server, "Asia/Tokyo")
    streams = {who: SSEClient(s, live_server + _stream_url(s.get(f"{live_server}/trainers?q=maya").text))
               for who, s in (("picked", picked), ("member", member), ("unknown", unknown))}
    try:
        for stream in streams.values():
            stream.next(comments=True)
        with app.app_context():
            maya = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
            maya.next_available_at = MAYA_FREE
            live.announce(live.NEXT_AVAILABLE, maya.id)
            db.session.commit()
            maya_id = maya.id
        pushes = {who: stream.events_until(lambda e: f'id="next-available-{maya_id}"' in e.get("data", ""))[-1]["data"]
                  for who, stream in streams.items()}
    finally:
        for stream in streams.values():
            stream.close()
    for who in ("picked", "member"):
        assert '<time datetime="2026-12-08T02:30:00+09:00">Tue 8 Dec, 02:30</time>' in pushes[who], who
        assert "your time" in pushes[who]
    assert "Mon 7 Dec, 09:30" in pushes["unknown"] and "(trainer's time)" in pushes["unknown"]
