"""The private calendar feed: a secret URL per user, what it holds, and replacing or turning it off."""
import re
import secrets
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar
from sqlalchemy import select

from config import Config

from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, TrainerProfile, User
from tests.helpers import text_of

SITE = urlsplit(Config.SITE_URL)  # feed links and event ids come from the site's address, not the request
FEED_URL_RE = re.compile(r'value="(' + re.escape(Config.SITE_URL) + r'/calendar/([A-Za-z0-9_-]+)\.ics)"')
MEMBER, TRAINER = "member@fittribe.example", "trainer@fittribe.example"


def feed_link(visitor) -> tuple[str, str]:
    """Create the link from the account page; (feed URL, token) as the page shows them."""
    response = visitor.post_form("/account/calendar", {}, post_url="/account/calendar/link")
    assert response.status_code == 303
    match = FEED_URL_RE.search(visitor.get("/account/calendar").get_data(as_text=True))
    assert match, "no feed URL on the page"
    return match.group(1), match.group(2)


def fetch(app, token: str):
    """The feed as a calendar app fetches it: no cookies, no login."""
    return app.test_client().get(f"/calendar/{token}.ics")


def events(response) -> dict[str, dict]:
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    calendar = Calendar.from_ical(response.data)
    assert str(calendar["x-wr-calname"]) == "FitTribe sessions"
    return {str(e["uid"]): e for e in calendar.walk("VEVENT")}


def add_booking(slug: str, member_email: str, status: BookingStatus, starts_in: timedelta, **extra) -> int:
    trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == slug))
    member = db.session.scalar(select(User).where(User.email == member_email))
    if member is None:
        member = User(email=member_email, name="Other Member", password_hash="x")
        db.session.add(member)
    starts_at = datetime.now(timezone.utc).replace(microsecond=0) + starts_in
    booking = Booking(trainer=trainer, member=member, starts_at=starts_at, ends_at=starts_at + timedelta(hours=1),
                      status=status, price_cents=5000, currency="USD", **extra)
    db.session.add(booking)
    db.session.commit()
    return booking.id


@pytest.fixture
def sessions(app, demo):
    """Uids of the demo member's confirmed session and of bookings that must or must not show."""
    with app.app_context():
        demo_booking = db.session.scalar(select(Booking).where(Booking.member.has(email=MEMBER)))
        ids = dict(
            confirmed=demo_booking.id, meeting_url=demo_booking.meeting_url,
            other_member=add_booking("lucia-fernandez", "other@example.com", BookingStatus.CONFIRMED, timedelta(days=2)),
            held=add_booking("kwame-mensah", MEMBER, BookingStatus.HELD, timedelta(days=3),
                             hold_expires_at=datetime.now(timezone.utc) + timedelta(minutes=10)),
            last_week=add_booking("anna-kowalski", MEMBER, BookingStatus.COMPLETED, -timedelta(days=7)),
            long_ago=add_booking("anna-kowalski", MEMBER, BookingStatus.COMPLETED, -timedelta(days=40)),
            cancelled=add_booking("diego-santos", MEMBER, BookingStatus.CANCELLED, timedelta(days=4),
                                  cancelled_at=datetime.now(timezone.utc)),
        )
    return {key: f"booking-{value}@{SITE.hostname}" if key != "meeting_url" else value for key, value in ids.items()}


def test_the_page_requires_login(client):
    response = client.get("/account/calendar")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("token", ["nope", secrets.token_urlsafe(32)])
def test_unknown_token_is_404_and_sets_no_cookie(app, demo, token):
    response = fetch(app, token)
    assert response.status_code == 404 and "Set-Cookie" not in response.headers


def test_member_feed_holds_their_sessions_only(app, visitor, sessions):
    visitor.login(MEMBER)
    assert 'href="/account/calendar"' in text_of(visitor.get("/dashboard/"))
    assert "No calendar link yet" in text_of(visitor.get("/account/calendar"))
    url, token = feed_link(visitor)
    page = text_of(visitor.get("/account/calendar"))
    assert f"webcal://{SITE.netloc}/calendar/{token}.ics" in page and "From URL" in page and "Apple Calendar" in page
    response = fetch(app, token)
    assert "Set-Cookie" not in response.headers and response.headers["Cache-Control"] == "private, no-store"
    found = events(response)
    assert set(found) == {sessions["confirmed"], sessions["last_week"], sessions["cancelled"]}
    confirmed = found[sessions["confirmed"]]
    assert str(confirmed["url"]) == sessions["meeting_url"] and str(confirmed["status"]) == "CONFIRMED"
    assert str(confirmed["summary"]) == "FitTribe session with Maya Chen"
    # A cancelled session stays a while as CANCELLED, so subscribed calendars drop it.
    assert str(found[sessions["cancelled"]]["status"]) == "CANCELLED"


def test_trainer_feed_holds_the_sessions_they_teach(app, visitor, sessions):
    visitor.login(TRAINER)
    assert 'href="/account/calendar"' in text_of(visitor.get("/dashboard/"))
    _, token = feed_link(visitor)
    found = events(fetch(app, token))
    assert set(found) == {sessions["confirmed"]}  # same uid as the member's copy
    assert str(found[sessions["confirmed"]]["summary"]) == "FitTribe session with Sam Member"


def test_a_new_link_retires_the_old_one_after_confirming(app, visitor, demo):
    visitor.login(MEMBER)
    _, old = feed_link(visitor)
    asked = visitor.post_form("/account/calendar", {}, post_url="/account/calendar/link")
    assert asked.status_code == 200 and "Make a new link?" in text_of(asked)
    assert fetch(app, old).status_code == 200  # nothing changes until confirmed
    done = visitor.post_form("/account/calendar", {"confirm": "yes"}, post_url="/account/calendar/link")
    assert done.status_code == 303
    new = FEED_URL_RE.search(visitor.get("/account/calendar").get_data(as_text=True)).group(2)
    assert new != old and fetch(app, old).status_code == 404 and fetch(app, new).status_code == 200


def test_turning_the_feed_off_after_confirming(app, visitor, demo):
    visitor.login(MEMBER)
    _, token = feed_link(visitor)
    asked = visitor.post_form("/account/calendar", {}, post_url="/account/calendar/off")
    assert asked.status_code == 200 and "stop updating" in text_of(asked)
    assert fetch(app, token).status_code == 200
    done = visitor.post_form("/account/calendar", {"confirm": "yes"}, post_url="/account/calendar/off")
    assert done.status_code == 303 and "feed is off" in text_of(visitor.get(done.headers["Location"]))
    assert fetch(app, token).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(User.calendar_token).where(User.email == MEMBER)) is None


@pytest.mark.parametrize("action", ["link", "off"])
def test_the_forms_need_a_csrf_token(app, visitor, demo, action):
    visitor.login(MEMBER)
    _, token = feed_link(visitor)
    response = visitor.client.post(f"/account/calendar/{action}", data={"confirm": "yes"})
    assert response.status_code == 400
    assert fetch(app, token).status_code == 200  # still the same link


def test_feed_fetches_are_rate_limited(app, visitor, demo):
    visitor.login(MEMBER)
    _, token = feed_link(visitor)
    statuses = [fetch(app, token).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]
