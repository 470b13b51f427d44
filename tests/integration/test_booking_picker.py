"""The profile's booking picker through the Flask test client (the page as a browser without JS
gets it): a session length and a day chosen by plain links, bad choices falling back to the
defaults, a visitor's time leading to log in and back to that time, a time taken meanwhile, a
length the trainer does not offer refused, and the push every open profile gets."""
from __future__ import annotations

import re
from decimal import Decimal
from datetime import date, datetime, timedelta, timezone
from html import unescape
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, Event, TrainerProfile, User
from fittribe.realtime import live
from fittribe.realtime.channels import trainer_channel
from fittribe.services import booking as booking_service
from fittribe.services import picker
from tests.helpers import HTMX, csrf_token_from, text_of

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Shown(HTMLParser):
    """What a person sees of the calendar: the elements not inside a `hidden` one."""

    def __init__(self, html: str):
        super().__init__()
        self.stack: list[bool] = []  # per open element: is it (or an ancestor) hidden?
        self.times: list[str] = []  # <time datetime> of the times shown
        self.current: list[dict] = []  # attributes of shown elements with aria-current
        self.hidden_lengths: set[str] = set()
        self.lengths: list[str] = []
        self.days: list[str] = []  # .day-times panels shown
        self.links: list[str] = []  # a visitor's time links shown (one per time, in order)
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        hidden = (self.stack[-1] if self.stack else False) or "hidden" in attrs
        if "length-times" in (attrs.get("class") or ""):
            self.lengths.append(attrs["data-length"])
            if hidden:
                self.hidden_lengths.add(attrs["data-length"])
        if not hidden:
            if tag == "time" and "datetime" in attrs:
                self.times.append(attrs["datetime"])
            if tag == "a" and attrs.get("class") == "slot-link":
                self.links.append(attrs["href"])
            if "aria-current" in attrs:
                self.current.append(attrs)
            if "day-times" in (attrs.get("class") or ""):
                self.days.append(attrs["data-day"])
        if tag not in VOID:
            self.stack.append(hidden)

    def handle_endtag(self, tag):
        if tag not in VOID and self.stack:
            self.stack.pop()

    @property
    def length(self) -> str:
        (shown,) = [length for length in self.lengths if length not in self.hidden_lengths]
        return shown

    @property
    def day(self) -> str:
        (shown,) = self.days
        return shown


def maya(session) -> TrainerProfile:
    return session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))


def free_times(app, length: int, day: date, zone: str) -> list[str]:
    """The trainer's free starts of `length` minutes on `day` (of `zone`), as the page writes them."""
    with app.app_context():
        trainer = maya(db.session)
        clock = ZoneInfo(zone)
        return [s.starts_at.astimezone(clock).isoformat() for s in booking_service.slots_for(trainer, length, days=20)
                if s.starts_at.astimezone(clock).date() == day]


def maya_zone(app) -> str:
    with app.app_context():
        return maya(db.session).time_zone


def a_weekday_ahead(app) -> date:
    """A Monday, Wednesday or Friday (Maya's long days, 06-10 and 17-20 her time) at least two days
    ahead on her clock: well past the minimum notice whatever the hour the suite runs at."""
    today = datetime.now(ZoneInfo(maya_zone(app))).date()
    day = today + timedelta(days=2)
    while day.weekday() not in (0, 2, 4):
        day += timedelta(days=1)
    return day


def test_the_length_choice_changes_the_times(app, client, demo):
    zone, day = maya_zone(app), a_weekday_ahead(app)
    shown = {}
    for length in (30, 60):
        page = Shown(client.get(f"/trainers/maya-chen?day={day}&length={length}").get_data(as_text=True))
        assert (page.length, page.day) == (str(length), day.isoformat())
        assert page.times == free_times(app, length, day, zone) != []
        current = {(a.get("id"), a.get("aria-current")) for a in page.current}
        assert (f"length-{length}", "true") in current and (f"day-{length}-{day}", "true") in current
        shown[length] = page.times
    half_past_nine = datetime.combine(day, datetime.min.time().replace(hour=9, minute=30), ZoneInfo(zone)).isoformat()
    assert half_past_nine in shown[30] and half_past_nine not in shown[60]  # fits 30 minutes before 10:00, not 60

    # htmx: the calendar alone, and the profile's address with the choice for the history.
    response = client.get(f"/trainers/maya-chen/calendar?day={day}&length=60", headers=HTMX)
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="calendar"') and "<html" not in html
    assert response.headers["HX-Push-Url"] == f"/trainers/maya-chen?day={day}&length=60"
    assert Shown(html).times == shown[60]
    assert f'data-day="{day}" data-length="60"' in html  # the page's choice, kept outside the live element


@pytest.mark.parametrize("query", [
    "day=2020-01-01", "day=9999-12-31", "day=2026-02-30", "day=x", "day=%C2%B2", "day=", "length=45", "length=0",
    "length=-1", "length=99999999999999999999", "length=abc", "time=garbage", "time=2020-01-06T13:00Z",
    "day=2026-07-06T00:00&length=sixty", "length=30&length=60&day=%00",
])
def test_bad_or_unavailable_choices_fall_back_to_the_defaults(app, client, demo, query):
    default = Shown(client.get("/trainers/maya-chen").get_data(as_text=True))
    assert default.length == "30" and default.times  # the shortest length, its first day with a free time
    response = client.get(f"/trainers/maya-chen?{query}")
    if "%00" in query:
        assert response.status_code == 400  # NUL is refused up front (fittribe/__init__.py)
        return
    assert response.status_code == 200
    page = Shown(response.get_data(as_text=True))
    assert (page.length, page.day) == (default.length, default.day) and page.times
    for partial in ("calendar", "availability"):
        assert client.get(f"/trainers/maya-chen/{partial}?{query}", headers=HTMX).status_code == 200


def test_a_day_outside_the_strip_falls_back_and_a_day_without_times_says_so(app, client, demo):
    today = datetime.now(ZoneInfo(maya_zone(app))).date()
    beyond = Shown(client.get(f"/trainers/maya-chen?day={today + timedelta(days=picker.CALENDAR_DAYS)}").get_data(as_text=True))
    assert beyond.day == Shown(client.get("/trainers/maya-chen").get_data(as_text=True)).day
    sunday = today + timedelta(days=(6 - today.weekday()) % 7 or 7)  # Maya works no Sunday
    page = client.get(f"/trainers/maya-chen?day={sunday}&length=60")
    assert Shown(page.get_data(as_text=True)).times == []
    assert "No free 60-minute times on" in text_of(page)


def test_a_length_the_trainer_does_not_offer_is_refused_and_any_she_offers_is_held(app, visitor, demo):
    day = a_weekday_ahead(app)
    start = free_times(app, 60, day, "UTC")[0]
    visitor.login("member@fittribe.example")
    refused = visitor.post_form("/trainers/maya-chen", {"starts_at": start, "length": "45"},
                                post_url="/trainers/maya-chen/hold")
    assert refused.status_code == 409 and "Choose one of this trainer's session lengths." in text_of(refused)
    with app.app_context():
        assert db.session.scalar(select(func.count(Booking.id)).where(Booking.status == BookingStatus.HELD)) == 0
    held = visitor.post_form("/trainers/maya-chen", {"starts_at": start, "length": "60"},
                             post_url="/trainers/maya-chen/hold")
    assert held.status_code == 303 and held.headers["Location"].startswith("/bookings/")
    with app.app_context():
        booking = db.session.get(Booking, int(held.headers["Location"].rsplit("/", 1)[1]))
        assert booking.ends_at - booking.starts_at == timedelta(minutes=60)


def _visitor_time_link(html: str) -> tuple[str, str]:
    """The first time the visitor is shown: its link (to log in) and its <time datetime>."""
    shown = Shown(html)
    assert shown.links, "no time links for visitors"
    return shown.links[0], shown.times[0]


def _log_in_from(visitor, login_url: str, email: str = "member@fittribe.example"):
    page = visitor.get(login_url).get_data(as_text=True)
    action = unescape(re.search(r'<form id="login-form"[^>]*action="([^"]+)"', page).group(1))
    return visitor.client.post(action, data={"csrf_token": csrf_token_from(page), "email": email,
                                             "password": "fittribe-demo"})


def test_a_visitors_time_leads_to_log_in_and_back_to_a_hold_button_for_that_time(app, visitor, demo):
    day = a_weekday_ahead(app)
    page = visitor.get(f"/trainers/maya-chen?day={day}&length=60").get_data(as_text=True)
    login_url, shown_at = _visitor_time_link(page)
    assert urlsplit(login_url).path == "/login"
    back = parse_qs(urlsplit(login_url).query)["next"][0]
    assert back.startswith("/trainers/maya-chen?length=60&time=") and back.endswith("#calendar")

    response = _log_in_from(visitor, login_url)
    assert response.status_code == 303 and response.headers["Location"] == back
    landed = visitor.get(back)
    html, words = landed.get_data(as_text=True), text_of(landed)
    start = datetime.fromisoformat(shown_at).astimezone(ZoneInfo("Europe/London"))  # Sam's clock
    when = start.strftime("%A %-d %B, %H:%M")
    assert f"Hold {when} (60 min, $65)" in words
    form = html.split('<div class="picked-time"', 1)[1].split("</form>", 1)[0]
    assert f'name="starts_at" value="{start.isoformat()}"' in form and 'name="length" value="60"' in form
    assert 'name="csrf_token" value="' in form and 'value=""' not in form
    assert Shown(html).length == "60" and Shown(html).day == start.date().isoformat()

    token = csrf_token_from(html)
    held = visitor.client.post("/trainers/maya-chen/hold", data={"csrf_token": token, "starts_at": start.isoformat(),
                                                                 "length": "60"})
    assert held.status_code == 303 and held.headers["Location"].startswith("/bookings/")
    with app.app_context():
        booking = db.session.get(Booking, int(held.headers["Location"].rsplit("/", 1)[1]))
        assert booking.starts_at == start and booking.ends_at == start + timedelta(minutes=60)


def test_sign_up_from_the_log_in_page_also_comes_back_to_the_time(app, visitor, demo):
    page = visitor.get(f"/trainers/maya-chen?day={a_weekday_ahead(app)}&length=60").get_data(as_text=True)
    login_url, _ = _visitor_time_link(page)
    back = parse_qs(urlsplit(login_url).query)["next"][0]
    login_page = visitor.get(login_url).get_data(as_text=True)
    signup_url = unescape(re.search(r'<a href="(/signup\?[^"]+)">Create an account</a>', login_page).group(1))
    assert parse_qs(urlsplit(signup_url).query)["next"] == [back]
    form_page = visitor.get(signup_url).get_data(as_text=True)
    action = unescape(re.search(r'<form id="signup-form"[^>]*action="([^"]+)"', form_page).group(1))
    response = visitor.client.post(action, data={
        "csrf_token": csrf_token_from(form_page), "role": "member", "name": "New Member",
        "email": "new.member@example.com", "password": "a long enough password", "confirm": "a long enough password",
        "time_zone": "Asia/Tokyo"})
    assert response.status_code == 303 and response.headers["Location"] == back
    assert "Hold " in text_of(visitor.get(back))
    # A hostile `next` is ignored: the new member goes to the search as before.
    visitor.logout()
    evil = visitor.get("/signup?next=//evil.example/x").get_data(as_text=True)
    action = unescape(re.search(r'<form id="signup-form"[^>]*action="([^"]+)"', evil).group(1))
    response = visitor.client.post(action, data={
        "csrf_token": csrf_token_from(evil), "role": "member", "name": "Other Member",
        "email": "other.new@example.com", "password": "a long enough password", "confirm": "a long enough password",
        "time_zone": "UTC"})
    assert response.status_code == 303 and response.headers["Location"] == "/trainers"


def test_a_time_taken_meanwhile_says_so_and_shows_the_days_other_times(app, visitor, demo):
    day = a_weekday_ahead(app)
    page = visitor.get(f"/trainers/maya-chen?day={day}&length=60").get_data(as_text=True)
    login_url, shown_at = _visitor_time_link(page)
    with app.app_context():  # someone else holds it while the visitor logs in
        other = User(email="quick@example.com", name="Quick Member", time_zone="UTC")
        other.set_password("fittribe-demo")
        db.session.add(other)
        db.session.commit()
        booking_service.hold(other, maya(db.session), datetime.fromisoformat(shown_at), 60)
    response = _log_in_from(visitor, login_url)
    landed = visitor.get(response.headers["Location"])
    start = datetime.fromisoformat(shown_at).astimezone(ZoneInfo("Europe/London"))
    words, shown = text_of(landed), Shown(landed.get_data(as_text=True))
    assert f"Sorry, {start.strftime('%A %-d %B, %H:%M')} (60 min) is no longer free." in words
    assert "The other free times that day are below." in words and 'class="picked-time"' not in words
    assert shown.length == "60" and shown.day == start.date().isoformat()
    assert shown.times == free_times(app, 60, start.date(), "Europe/London") != []
    assert start.isoformat() not in shown.times


def test_trainers_and_admins_see_the_times_but_no_hold_buttons(app, visitor, demo):
    day = a_weekday_ahead(app)
    start = free_times(app, 60, day, "UTC")[0]
    for email in ("lucia@fittribe.example", "admin@fittribe.example"):
        visitor.login(email)
        page = visitor.get(f"/trainers/maya-chen?length=60&time={picker.time_param(datetime.fromisoformat(start))}")
        html = page.get_data(as_text=True)
        assert Shown(html).times and "slot-button" not in html and "slot-link" not in html
        assert "picked-time" not in html and "/trainers/maya-chen/hold" not in html
        visitor.logout()


def hold_an_hour_on_a_weekday(app):
    """The demo member holds Maya's first free hour on a weekday ahead: (trainer, member, start)."""
    day = a_weekday_ahead(app)
    trainer = maya(db.session)
    member = db.session.scalar(select(User).where(User.email == "member@fittribe.example"))
    start = next(s.starts_at for s in booking_service.slots_for(trainer, 60, days=20)
                 if s.starts_at.astimezone(ZoneInfo(trainer.time_zone)).date() == day)
    booking_service.hold(member, trainer, start, 60)
    return trainer, member, start


def test_a_push_carries_every_day_and_length_without_the_held_time(app, demo):
    """The push the hub sends every open profile (live.render_for, one render per viewer variant):
    all days of the strip for each length, shown as the default choice (a page applies its own,
    static/js/live.js), the held time gone from every length."""
    with app.app_context():
        trainer, member, start = hold_an_hour_on_a_weekday(app)
        with app.test_request_context("/"):
            pushes = {zone: live.render_for(live.CALENDAR, trainer.id, live.Viewer(True, member.role, zone))
                      for zone in ("Asia/Tokyo", "Europe/London")}
        default = picker.choose(picker.lay_out(trainer, "Asia/Tokyo"))
    for zone, html in pushes.items():
        assert html.lstrip().startswith('<div id="availability" data-live') and 'hx-swap-oob="outerHTML"' in html
        assert 'id="calendar"' not in html  # the page's choice is not pushed
        assert set(re.findall(r'class="length-times" data-length="(\d+)"', html)) == {"30", "60"}
        panels = re.findall(r'class="day-times" data-day="([\d-]+)"', html)
        assert len(panels) == 2 * picker.CALENDAR_DAYS
        assert start.astimezone(ZoneInfo(zone)).isoformat() not in html
        assert re.findall(r'name="csrf_token" value="([^"]*)"', html) == [""] * html.count('name="csrf_token"')
    shown = Shown(pushes["Asia/Tokyo"])
    assert (shown.length, shown.day) == ("30", default.day.isoformat())


def test_a_time_picked_on_a_clock_behind_may_fall_the_day_after_the_strip_and_stays_holdable(app, demo):
    """A visitor on Los Angeles time picks the last evening of the strip; logged in on London time,
    that is the day after London's strip, which then reaches it (the time is still free)."""
    now = datetime(2026, 7, 7, 12, tzinfo=timezone.utc)  # Tuesday: 05:00 in Los Angeles, 13:00 in London
    with app.app_context():
        trainer = maya(db.session)
        last_day = picker.lay_out(trainer, "America/Los_Angeles", now=now).length(60).days[-1]
        assert last_day.date == date(2026, 7, 20)  # a Monday: she works 17:00-20:00 too
        picked = last_day.times[-1]  # 19:00 in Los Angeles = 03:00 on Tuesday 21 July in London
        london_day = picked.astimezone(ZoneInfo("Europe/London")).date()
        assert london_day == date(2026, 7, 21)
        plain = picker.lay_out(trainer, "Europe/London", now=now)
        assert plain.length(60).days[-1].date == date(2026, 7, 20)
        reaching = picker.lay_out(trainer, "Europe/London", now=now, through=london_day)
        choice = picker.choose(reaching, 60, time=picked)
    assert choice.time == picked and choice.day == london_day and choice.day_chosen
    assert len(reaching.lengths[0].days) == picker.CALENDAR_DAYS + 1


def test_a_booking_change_is_pushed_as_the_days_it_touched_alone(app, demo):
    """A live push of a hold carries only the days around it (each length's strip item and times,
    swapped by id, on the viewer's clock), not the two weeks; a replay still gets the whole."""
    with app.app_context():
        trainer, member, start = hold_an_hour_on_a_weekday(app)
        event = db.session.scalars(select(Event).where(Event.channel == trainer_channel(trainer.id))
                                   .order_by(Event.id.desc())).first()
        spans = event.payload["spans"]
        assert [[datetime.fromisoformat(a), datetime.fromisoformat(b)] for a, b in spans] == [
            [start, start + timedelta(minutes=60)]]
        viewer = live.Viewer(True, member.role, "Asia/Tokyo")
        with app.test_request_context("/"):
            parts = live.render_for(live.CALENDAR, trainer.id, viewer, spans)
            whole = live.render_for(live.CALENDAR, trainer.id, viewer)
        touched = picker.touched_days(trainer, "Asia/Tokyo", [(start, start + timedelta(minutes=60))])
    local = start.astimezone(ZoneInfo("Asia/Tokyo"))
    assert local.date().isoformat() in touched and len(touched) <= 2
    swapped = [re.search(r'\bid="([\w-]+)"', attributes).group(1)
               for attributes in re.findall(r'<\w+ hx-swap-oob="outerHTML"([^>]*)>', parts)]
    assert sorted(swapped) == sorted(
        f"{kind}-{minutes}-{day}" for kind in ("strip", "times") for minutes in (30, 60) for day in touched)
    assert 'id="availability"' not in parts and local.isoformat() not in parts
    assert len(parts) * 4 < len(whole)  # a few days of two weeks
    assert re.findall(r'name="csrf_token" value="([^"]*)"', parts) == [""] * parts.count('name="csrf_token"')


def test_a_trainer_moving_time_zone_pushes_her_whole_calendar(app, demo):
    """Her weekly hours then fall at other instants: every open profile gets the whole calendar
    (no times: every day may change); saving the profile with the same zone announces nothing."""
    from fittribe.services import trainers

    with app.app_context():
        trainer = maya(db.session)
        fields = dict(display_name=trainer.display_name, headline=trainer.headline, bio=trainer.bio,
                      price=Decimal(trainer.price_cents) / 100, years_experience=trainer.years_experience,
                      specialty_slugs=[s.slug for s in trainer.specialties], languages=trainer.languages)
        before = db.session.scalar(select(func.count(Event.id)))
        trainers.update_profile(trainer, trainers.ProfileUpdate(**fields, time_zone=trainer.time_zone))
        assert db.session.scalar(select(func.count(Event.id))) == before
        trainers.update_profile(trainer, trainers.ProfileUpdate(**fields, time_zone="Asia/Tokyo"))
        pushed = db.session.scalars(select(Event).where(Event.channel == trainer_channel(trainer.id))
                                    .order_by(Event.id.desc())).first()
    assert pushed.payload["fragment"] == "availability" and "spans" not in pushed.payload
