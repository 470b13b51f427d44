"""Admin analytics: the figures for a small known dataset, the period filter, CSV exports, who may
see them, the page without JavaScript, and the live hook (metrics-changed on the admin channel)."""
from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event as sa_event, func, select

from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, Event, Payment, PaymentStatus, Role, TrainerProfile, User
from fittribe.realtime.connection import redis_key
from fittribe.services import analytics
from fittribe.services import booking as booking_service
from fittribe.services import payments
from fittribe.services.analytics import PeriodError
from tests.helpers import HTMX, text_of

ADMIN = "admin@fittribe.example"
ROUTES = ["/admin/analytics", "/admin/analytics/figures", "/admin/analytics/charts",
          "/admin/analytics.csv?table=daily"]


def _today_start() -> datetime:
    return datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def _moment(days_ago: int) -> datetime:
    """An instant on the UTC day `days_ago` days back, already in the past (today: halfway
    between midnight and now, so the test can't straddle midnight into tomorrow)."""
    now = datetime.now(timezone.utc)
    if days_ago == 0:
        return _today_start() + (now - _today_start()) / 2
    return _today_start() - timedelta(days=days_ago) + timedelta(hours=12)


def _day(days_ago: int) -> str:
    return (_today_start() - timedelta(days=days_ago)).date().isoformat()


@pytest.fixture
def dataset(app, demo):
    """On top of the demo's confirmed booking paid today (6,500 USD, Maya):

    | # | trainer | status | created | payments |
    |---|---|---|---|---|
    | 2 | Kwame | completed | 3 days ago | 5,500 USD taken 3 days ago |
    | 3 | Lucía | cancelled | 3 days ago | 4,500 USD taken 3 days ago, refunded today |
    | 4 | Anna | expired | 10 days ago | 8,000 USD failed |
    | 5 | Diego | held | today | – |
    | 6 | Anna | cancelled | 10 days ago | – (never paid) |
    | 7 | Anna | no-show | 10 days ago | 7,000 EUR taken 10 days ago (other member) |
    | 8 | Maya | completed | 40 days ago, 03:00 UTC | 6,500 USD taken then |
    """
    with app.app_context():
        trainers = {t.slug.split("-")[0]: t for t in db.session.scalars(select(TrainerProfile))}
        member = db.session.scalar(select(User).where(User.email == "member@fittribe.example"))
        other = User(email="other@fittribe.example", name="Other Member", role=Role.MEMBER, password_hash="x",
                     created_at=_moment(50))
        db.session.add(other)
        db.session.flush()
        future = datetime.now(timezone.utc) + timedelta(days=30)

        def add(n, trainer, status, created, pays=(), currency="USD", who=member):
            booking = Booking(trainer_id=trainers[trainer].id, member_id=who.id, status=status,
                              starts_at=future + timedelta(days=n), ends_at=future + timedelta(days=n, hours=1),
                              price_cents=0, currency=currency, created_at=created,
                              hold_expires_at=future if status is BookingStatus.HELD else None)
            db.session.add(booking)
            db.session.flush()
            for pay_status, cents, taken, refunded in pays:
                db.session.add(Payment(booking_id=booking.id, provider="simulated", provider_ref=f"pi_{n}_{cents}",
                                       amount_cents=cents, currency=currency, status=pay_status, created_at=taken,
                                       refunded_at=refunded))

        add(2, "kwame", BookingStatus.COMPLETED, _moment(3), [(PaymentStatus.SUCCEEDED, 5500, _moment(3), None)])
        add(3, "lucia", BookingStatus.CANCELLED, _moment(3),
            [(PaymentStatus.REFUNDED, 4500, _moment(3), _moment(0))])
        add(4, "anna", BookingStatus.EXPIRED, _moment(10), [(PaymentStatus.FAILED, 8000, _moment(10), None)])
        add(5, "diego", BookingStatus.HELD, _moment(0))
        add(6, "anna", BookingStatus.CANCELLED, _moment(10))
        add(7, "anna", BookingStatus.NO_SHOW, _moment(10), [(PaymentStatus.SUCCEEDED, 7000, _moment(10), None)],
            currency="EUR", who=other)
        old = _today_start() - timedelta(days=40) + timedelta(hours=3)
        add(8, "maya", BookingStatus.COMPLETED, old, [(PaymentStatus.SUCCEEDED, 6500, old, None)])
        # The demo's booking and payment were made "now": pin them inside today as well.
        db.session.execute(Booking.__table__.update().where(Booking.price_cents == 6500)
                           .values(created_at=_moment(0)))
        db.session.execute(Payment.__table__.update().where(Payment.provider_ref.like("pi_demo_%"))
                           .values(created_at=_moment(0)))
        db.session.commit()


def figures_for(app, first: str | None = None, last: str | None = None, zone: str = "UTC"):
    with app.app_context():
        return analytics.figures(analytics.parse_period(first, last, zone))


def amounts(revenue) -> dict[str, int]:
    return {r.currency: r.net_cents for r in revenue}


# --- the numbers ----------------------------------------------------------------------------

def test_revenue_is_taken_minus_refunded_per_currency_and_window(app, dataset):
    figures = figures_for(app)
    assert amounts(figures.revenue["today"]) == {"USD": 6500 - 4500}  # demo payment, Lucía's refund
    assert amounts(figures.revenue["7d"]) == {"USD": 6500 + 5500 + 4500 - 4500}
    assert amounts(figures.revenue["30d"]) == {"USD": 12000, "EUR": 7000}  # the failed 8,000 never counts
    assert amounts(figures.revenue["period"]) == {"USD": 12000, "EUR": 7000}
    assert [(r.currency, r.refunded_cents) for r in figures.refunded] == [("USD", 4500)]
    assert {r.currency: r.taken_cents for r in figures.revenue["period"]} == {"USD": 16500, "EUR": 7000}


def test_bookings_by_status_conversion_and_people(app, dataset):
    figures = figures_for(app)
    assert {s.value: n for s, n in figures.bookings_by_status.items()} == {
        "held": 1, "confirmed": 1, "completed": 1, "cancelled": 2, "no_show": 1, "expired": 1}
    assert figures.bookings == 7 and figures.cancelled_after_payment == 1
    # confirmed + completed + no-show + cancelled after payment, over every booking created
    assert figures.converted == 4 and figures.conversion == pytest.approx(4 / 7)
    assert (figures.active_members, figures.active_trainers) == (2, 5)
    assert figures.new_users == {Role.MEMBER: 1, Role.TRAINER: 6, Role.ADMIN: 1}  # "other" signed up 50 days ago


def test_revenue_by_trainer_top_list(app, dataset):
    rows = [(t.name, t.currency, t.payments, t.refunded_cents, t.net_cents) for t in figures_for(app).top_trainers]
    assert rows == [("Anna Kowalski", "EUR", 1, 0, 7000), ("Maya Chen", "USD", 1, 0, 6500),
                    ("Kwame Mensah", "USD", 1, 0, 5500), ("Lucía Fernández", "USD", 1, 4500, 0)]


def test_daily_series(app, dataset):
    with app.app_context():
        days = analytics.daily(analytics.parse_period(None, None, "UTC"))
    assert len(days) == 30 and days[-1].day.isoformat() == _day(0)
    by_day = {d.day.isoformat(): d for d in days}
    assert (by_day[_day(0)].bookings, by_day[_day(0)].net_cents) == (2, {"USD": 2000})
    assert (by_day[_day(3)].bookings, by_day[_day(3)].net_cents) == (2, {"USD": 10000})
    assert (by_day[_day(10)].bookings, by_day[_day(10)].net_cents) == (3, {"EUR": 7000})
    assert sum(d.bookings for d in days) == 7
    assert analytics.currencies(days) == ["USD", "EUR"]


def test_period_filter_and_the_admins_time_zone(app, dataset):
    old = figures_for(app, _day(45), _day(35))
    assert old.bookings == 1 and amounts(old.revenue["period"]) == {"USD": 6500}
    assert amounts(old.revenue["today"]) == {"USD": 2000}  # the fixed windows don't move with the period
    assert sum(old.new_users.values()) == 0
    # Booking 8 was made at 03:00 UTC: still the day before in Los Angeles.
    assert figures_for(app, _day(40), _day(40)).bookings == 1
    assert figures_for(app, _day(40), _day(40), "America/Los_Angeles").bookings == 0
    assert figures_for(app, _day(41), _day(41), "America/Los_Angeles").bookings == 1


@pytest.mark.parametrize("first, last, message", [
    ("yesterday", None, "“from” must be a date written as YYYY-MM-DD"),
    (None, "2026-02-30", "“to” must be a date written as YYYY-MM-DD"),
    ("2026-03-10", "2026-03-01", "is after the “to” date"),
    ("2024-01-01", "2025-12-31", "at most 366 days"),
    ("0001-01-01", "0001-01-02", "between 2000 and 2100"),
])
def test_bad_periods_are_refused_with_a_clear_message(app, visitor, demo, first, last, message):
    with pytest.raises(PeriodError, match=message):
        analytics.parse_period(first, last, "UTC")
    visitor.login(ADMIN)
    query = "&".join(f"{k}={v}" for k, v in (("from", first), ("to", last)) if v)
    page = visitor.get(f"/admin/analytics?{query}")
    assert page.status_code == 400 and message in text_of(page)
    assert 'aria-invalid="true"' in page.get_data(as_text=True)  # the form is back, ready to fix
    for path in ("/admin/analytics/figures", "/admin/analytics.csv?table=daily&"):
        response = visitor.get(f"{path}{'?' if '?' not in path else ''}{query}", headers=HTMX)
        assert response.status_code == 400 and message in text_of(response)


def test_default_period_is_the_last_30_days(app):
    now = datetime(2026, 3, 29, 12, tzinfo=timezone.utc)  # the day Europe/Berlin moves to summer time
    period = analytics.parse_period("", "", "Europe/Berlin", now=now)
    assert (period.first.isoformat(), period.last.isoformat()) == ("2026-02-28", "2026-03-29")
    assert period.start == datetime(2026, 2, 27, 23, tzinfo=timezone.utc)
    assert period.end == datetime(2026, 3, 29, 22, tzinfo=timezone.utc)  # midnight CEST
    assert analytics.parse_period(None, "2026-01-31", "UTC").first.isoformat() == "2026-01-02"


def test_bar_chart_geometry():
    from fittribe.web.charts import TOP, bar_chart, compact

    chart = bar_chart([200, -100, 0], ["1 Nov", "2 Nov", "3 Nov"], lambda c: f"{c} c")
    up, down, empty = chart.bars
    assert up.y == TOP and up.y + up.height == chart.zero_y  # the largest value fills the height above 0
    assert down.y == chart.zero_y and down.height == pytest.approx(up.height / 2, abs=0.1)  # below the line
    assert empty.height == 0 and up.title == "1 Nov: 200 c" and chart.highest == "200 c on 1 Nov"
    assert up.path == f"M{up.x} {up.y}h{up.width}v{up.height}h-{up.width}z"
    assert [t.text for t in chart.date_labels] == ["1 Nov", "2 Nov", "3 Nov"]
    assert bar_chart([], [], str).bars == [] and bar_chart([0, 0], ["a", "b"], str).highest == "0 on a"
    assert (compact(35), compact(2400), compact(2000), compact(-1_250_000)) == ("35", "2.4k", "2k", "-1.2M")


# --- the page -----------------------------------------------------------------------------

def test_page_shows_the_figures_as_plain_html(app, visitor, dataset):
    visitor.login(ADMIN)
    response = visitor.get("/admin/analytics")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = text_of(response)
    assert '<form class="panel analytics-range" method="get"' in html  # the period works without JS
    assert "<script>" not in html and " style=" not in html  # nothing the CSP would block
    assert "20.00 USD" in page and "120.00 USD" in page and "70.00 EUR" in page and "45.00 USD" in page
    assert "57.1%" in page and "4 of 7 paid and confirmed" in page
    assert 'role="img"' in html and "<title id=\"revenue-chart-title\">Net revenue per day (USD)</title>" in html
    assert 'id="daily"' in html and '<th scope="row">' in html  # the charts' data, readable without the picture
    assert "How these figures are counted" in page
    assert 'aria-current="page">Analytics</a>' in html
    # The live parts re-fetch themselves with the same period, throttled.
    first, last = _day(29), _day(0)
    assert (f'hx-get="/admin/analytics/figures?from={first}&amp;to={last}" hx-swap="innerHTML" '
            f'hx-trigger="metrics-changed from:#live throttle:2s, live:resync') in html
    assert f'hx-get="/admin/analytics/charts?from={first}&amp;to={last}"' in html


def test_fragments_for_htmx_and_the_page_for_a_normal_request(app, visitor, dataset):
    visitor.login(ADMIN)
    query = f"?from={_day(45)}&to={_day(35)}"
    fragment = visitor.get("/admin/analytics/figures" + query, headers=HTMX)
    text = text_of(fragment)
    assert fragment.status_code == 200 and "<html" not in text and "<h1>" not in text
    assert 'id="bookings-total">1<' in fragment.get_data(as_text=True) and "65.00 USD" in text
    charts = visitor.get("/admin/analytics/charts" + query, headers=HTMX)
    assert charts.status_code == 200 and "<html" not in text_of(charts) and 'id="bookings-chart"' in text_of(charts)
    full = visitor.get("/admin/analytics/figures" + query)  # opened in a tab: the whole page
    assert "<h1>Analytics</h1>" in text_of(full) and "How these figures are counted" in text_of(full)


def test_live_counts_come_from_redis(app, visitor, dataset):
    from fittribe.realtime import presence
    from fittribe.realtime.connection import redis_client

    with app.app_context():
        client = redis_client()
        client.zadd(redis_key("streams", "user:1"), {"a": time.time() + 60, "gone": time.time() - 1})
        client.zadd(redis_key("streams", "ip:127.0.0.1"), {"b": time.time() + 60})
        maya, kwame = db.session.scalars(select(TrainerProfile.id).where(
            TrainerProfile.slug.in_(["maya-chen", "kwame-mensah"])).order_by(TrainerProfile.slug.desc()))
        presence.set_available(maya, True)
        presence.stream_opened(maya, "a")
        presence.set_available(kwame, True)  # no page open: not online
        assert analytics.live() == analytics.Live(open_streams=2, online_trainers=1)
    visitor.login(ADMIN)
    html = visitor.get("/admin/analytics/figures", headers=HTMX).get_data(as_text=True)
    assert 'id="open-streams">2<' in html and 'id="online-trainers">1<' in html


def test_the_page_takes_few_queries(app, visitor, dataset):
    visitor.login(ADMIN)
    statements = []
    with app.app_context():
        engine = db.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    sa_event.listen(engine, "before_cursor_execute", listener)
    try:
        assert visitor.get("/admin/analytics/figures", headers=HTMX).status_code == 200
        figures_statements = len(statements)
        assert visitor.get("/admin/analytics").status_code == 200
    finally:
        sa_event.remove(engine, "before_cursor_execute", listener)
    # the user + five for the figures; the page adds the unread badge (its days come from the same results)
    # and the live position it was rendered at
    assert figures_statements <= 6, statements[:figures_statements]
    assert len(statements) - figures_statements <= 8, [s[:90] for s in statements[figures_statements:]]


# --- CSV ----------------------------------------------------------------------------------------

def read_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_csv_exports(app, visitor, dataset):
    visitor.login(ADMIN)
    first, last = _day(29), _day(0)
    response = visitor.get(f"/admin/analytics.csv?table=bookings_by_status&from={first}&to={last}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="fittribe-bookings-by-status-{first}-to-{last}.csv"')
    assert read_csv(response) == [["status", "bookings"], ["held", "1"], ["confirmed", "1"], ["completed", "1"],
                                  ["cancelled", "2"], ["no_show", "1"], ["expired", "1"],
                                  ["cancelled_after_payment", "1"]]

    rows = read_csv(visitor.get("/admin/analytics.csv?table=revenue_by_trainer"))
    assert rows[0] == ["trainer", "profile", "currency", "payments", "refunded", "net_revenue"]
    assert rows[1:] == [["Anna Kowalski", "anna-kowalski", "EUR", "1", "0.00", "70.00"],
                        ["Maya Chen", "maya-chen", "USD", "1", "0.00", "65.00"],
                        ["Kwame Mensah", "kwame-mensah", "USD", "1", "0.00", "55.00"],
                        ["Lucía Fernández", "lucia-fernandez", "USD", "1", "45.00", "0.00"]]

    daily = read_csv(visitor.get("/admin/analytics.csv?table=daily"))
    assert daily[0] == ["date", "bookings", "net_revenue_USD", "net_revenue_EUR"] and len(daily) == 31
    assert daily[-1] == [_day(0), "2", "20.00", "0.00"] and [_day(3), "2", "100.00", "0.00"] in daily

    assert visitor.get("/admin/analytics.csv?table=users").status_code == 400
    assert "Choose a table to export" in text_of(visitor.get("/admin/analytics.csv"))


def test_csv_quotes_text_that_a_spreadsheet_would_run(app, visitor, dataset):
    with app.app_context():
        db.session.execute(TrainerProfile.__table__.update().where(TrainerProfile.slug == "anna-kowalski")
                           .values(display_name="=HYPERLINK(\"http://evil\")"))
        db.session.commit()
    visitor.login(ADMIN)
    rows = read_csv(visitor.get("/admin/analytics.csv?table=revenue_by_trainer"))
    assert rows[1][0] == "'=HYPERLINK(\"http://evil\")"


# --- who may see it ------------------------------------------------------------------------

@pytest.mark.parametrize("path", ROUTES)
def test_only_admins(app, visitor, demo, path):
    response = visitor.get(path)
    assert response.status_code == 302 and "/login?next=" in response.headers["Location"]
    for email in ("member@fittribe.example", "trainer@fittribe.example"):
        visitor.login(email)
        assert visitor.get(path).status_code == 403
        assert visitor.get(path, headers=HTMX).status_code == 403
        visitor.logout()
    visitor.login(ADMIN)
    assert visitor.get(path).status_code == 200


def test_admin_nav_links_to_analytics(visitor, demo):
    visitor.login(ADMIN)
    assert 'href="/admin/analytics"' in visitor.get("/admin/trainers").get_data(as_text=True)


# --- live ------------------------------------------------------------------------------------

def metrics_events(after: int = 0) -> list[Event]:
    return list(db.session.scalars(select(Event).where(Event.id > after, Event.channel == "admin",
                                                       Event.type == "metrics-changed")))


def test_a_paid_booking_tells_open_analytics_pages(app, demo):
    with app.app_context():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
        member = db.session.scalar(select(User).where(User.email == "member@fittribe.example"))
        slot = booking_service.slots_for(trainer, 60, days=7)[0]
        before = db.session.scalar(select(func.max(Event.id))) or 0
        held = booking_service.hold(member, trainer, slot.starts_at, 60)
        assert len(metrics_events(before)) == 1  # the hold
        after_hold = db.session.scalar(select(func.max(Event.id)))
        assert payments.simulated_charge(held, "4242424242424242")["outcome"] == "confirmed"
        # One event per transaction, however many changes it made; its data is empty (each page re-fetches).
        paid = metrics_events(after_hold)
        assert len(paid) == 1 and paid[0].payload == {"data": ""}
        assert db.session.get(Booking, held.id).status is BookingStatus.CONFIRMED


def test_sign_ups_and_expired_holds_tell_them_too(app, visitor, demo):
    visitor.post_form("/signup", {"name": "New Person", "email": "new@fittribe.example", "password": "a-long-password-1",
                                  "confirm": "a-long-password-1", "role": "member", "time_zone": "UTC"})
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "new@fittribe.example")) is not None
        assert len(metrics_events()) == 1
        last = db.session.scalar(select(func.max(Event.id)))
        assert booking_service.expire_holds() == [] and metrics_events(last) == []  # nothing changed: no event
