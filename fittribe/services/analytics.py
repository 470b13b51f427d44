"""Admin analytics: how the business is doing, aggregated in the database.

The figures come from five GROUP BY statements over date ranges (no rows are walked in Python:
what comes back is one row per day, status or trainer), so the page stays fast with a hundred
thousand bookings; bench/analytics.py measures it. Periods are whole days in the admin's time
zone, turned into UTC instants once (DST-safe) before they reach SQL.

Definitions (shown on the page too):
* Money is counted when it moves: a payment adds its amount on the day it was taken (succeeded,
  or taken and later refunded); a refund subtracts it on the day it was refunded. Net revenue =
  taken − refunded, per currency (amounts in different currencies are never added up).
* Conversion = bookings created in the period that were paid and confirmed (now confirmed,
  completed, no-show, or cancelled after payment) ÷ every booking created in the period (holds
  that expired or are still open included).
* Active members / trainers = distinct people on a booking created in the period.

`announce_changed()` is the live hook: services that change bookings, payments or sign-ups call it
in their transaction, and open analytics pages re-fetch their figures."""
from __future__ import annotations

import time as clock
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import and_, event as sa_event, func, literal, or_, select, union_all
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from ..extensions import db
from ..models import Booking, BookingStatus, Payment, PaymentStatus, Role, TrainerProfile, User
from ..realtime import live as live_fragments, presence
from ..realtime.connection import REDIS_ERRORS, redis_client, redis_key

T = TypeVar("T")
DEFAULT_DAYS = 30
MAX_DAYS = 366
TOP_TRAINERS = 10
EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)
_ANNOUNCED = "analytics_announced"

# A booking in these statuses was paid and confirmed; a cancelled one only if money was taken.
PAID_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW)
TAKEN = (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED)  # a refunded payment was taken first


# --- the live hook ----------------------------------------------------------------------

def announce_changed() -> None:
    """Bookings, payments or users changed: open analytics pages re-fetch their figures (named
    SSE event on the admin channel). At most one event per transaction, however many calls."""
    session = db.session()
    if session.info.get(_ANNOUNCED):
        return
    session.info[_ANNOUNCED] = True
    live_fragments.announce(live_fragments.METRICS)


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_announced(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_ANNOUNCED, None)


# --- the period --------------------------------------------------------------------------

class PeriodError(ValueError):
    """The from/to dates can't be used; the message is for the admin."""


@dataclass(frozen=True)
class Period:
    """Whole days `first`..`last` (inclusive) on the clock of `zone`."""
    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        return midnight(self.first, self.zone)

    @property
    def end(self) -> datetime:  # exclusive
        return midnight(self.last + timedelta(days=1), self.zone)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    @property
    def query(self) -> dict[str, str]:
        """The URL parameters that select this period (fragments re-fetch with them)."""
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant a local day starts, in UTC (zoneinfo resolves DST gaps and folds)."""
    return datetime.combine(day, time(0), zone).astimezone(timezone.utc)


def zone_of(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def today_in(zone: ZoneInfo, now: datetime | None = None) -> date:
    return (now or datetime.now(timezone.utc)).astimezone(zone).date()


def parse_period(first: str | None, last: str | None, zone_name: str | None, now: datetime | None = None) -> Period:
    """The period from a GET form's `from`/`to` (YYYY-MM-DD, inclusive). Missing values default
    to the last DEFAULT_DAYS days ending today (or ending `to`)."""
    zone = zone_of(zone_name)
    end_day = _date("to", last) or today_in(zone, now)
    start_day = _date("from", first) or end_day - timedelta(days=DEFAULT_DAYS - 1)
    if start_day > end_day:
        raise PeriodError("The “from” date is after the “to” date. Choose a start on or before the end.")
    if (end_day - start_day).days + 1 > MAX_DAYS:
        raise PeriodError(f"Choose at most {MAX_DAYS} days; that range has {(end_day - start_day).days + 1}.")
    return Period(start_day, end_day, zone)


def _date(name: str, raw: str | None) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise PeriodError(f"“{name}” must be a date written as YYYY-MM-DD, e.g. 2026-11-01.") from None
    if not EARLIEST <= value <= LATEST:
        raise PeriodError(f"“{name}” must be between {EARLIEST.year} and {LATEST.year}.")
    return value


# --- results ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Revenue:
    """Money in one currency over one window."""
    currency: str
    taken_cents: int
    refunded_cents: int

    @property
    def net_cents(self) -> int:
        return self.taken_cents - self.refunded_cents


@dataclass(frozen=True)
class TrainerRevenue:
    trainer_id: int
    name: str
    slug: str
    currency: str
    payments: int  # payments taken in the period
    refunded_cents: int
    net_cents: int


@dataclass(frozen=True)
class Day:
    day: date
    bookings: int
    net_cents: dict[str, int]  # currency -> net revenue of the day


@dataclass(frozen=True)
class Live:
    """From Redis, across every worker; None when it can't be read."""
    open_streams: int | None
    online_trainers: int | None


@dataclass(frozen=True)
class Figures:
    period: Period
    as_of: datetime
    revenue: dict[str, list[Revenue]]  # window key (WINDOWS + "period") -> per currency
    top_trainers: list[TrainerRevenue]
    bookings_by_status: dict[BookingStatus, int]
    cancelled_after_payment: int
    active_members: int
    active_trainers: int
    new_users: dict[Role, int]
    live: Live

    @property
    def bookings(self) -> int:
        return sum(self.bookings_by_status.values())

    @property
    def converted(self) -> int:
        return sum(self.bookings_by_status[s] for s in PAID_STATUSES) + self.cancelled_after_payment

    @property
    def conversion(self) -> float | None:
        return self.converted / self.bookings if self.bookings else None

    @property
    def refunded(self) -> list[Revenue]:
        return [r for r in self.revenue["period"] if r.refunded_cents]


# Fixed windows ending today, whatever the period: (key, label, days including today).
WINDOWS = (("today", "Today", 1), ("7d", "Last 7 days", 7), ("30d", "Last 30 days", 30))


# --- queries ---------------------------------------------------------------------------------

def _within(column, spans: list[tuple[datetime, datetime]]) -> ColumnElement[bool]:
    return or_(*(and_(column >= start, column < end) for start, end in spans))


def _money_moves(spans: list[tuple[datetime, datetime]]):
    """Every payment taken (+amount at created_at) and every refund (+amount at refunded_at)
    inside `spans`, one row each. Both halves walk ix_payments_status_created."""
    taken = select(Payment.currency, Payment.amount_cents.label("taken"),
                   literal(0).label("refunded"), Payment.created_at.label("at")).where(
        Payment.status.in_(TAKEN), _within(Payment.created_at, spans))
    refunds = select(Payment.currency, literal(0).label("taken"),
                     Payment.amount_cents.label("refunded"), Payment.refunded_at.label("at")).where(
        Payment.status == PaymentStatus.REFUNDED, _within(Payment.refunded_at, spans))
    return union_all(taken, refunds).subquery("moves")


def _local_day(column, period: Period):
    """The local calendar day of a timestamp, in SQL, with the zone's real rules (DST included)."""
    return func.date(func.timezone(period.zone.key, column))


def _spans(period: Period, today: date, windows: bool) -> list[tuple[datetime, datetime]]:
    """The instants to read money for: the period, plus the last 30 days for the fixed windows
    (one span when they overlap, as they do by default)."""
    spans = sorted([(period.start, period.end)] + (
        [(midnight(today - timedelta(days=29), period.zone), midnight(today + timedelta(days=1), period.zone))]
        if windows else []))
    merged = [spans[0]]
    for start, end in spans[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


MoneyByDay = dict[date, dict[str, tuple[int, int]]]  # local day -> currency -> (taken, refunded) cents


def _money_by_day(period: Period, today: date, windows: bool) -> MoneyByDay:
    """Money taken and refunded per local day and currency over the period (and with `windows`
    the last 30 days, for today / 7 d / 30 d): one statement, no join."""
    moves = _money_moves(_spans(period, today, windows))
    by_day: MoneyByDay = {}
    for day, currency, taken, refunded in db.session.execute(
            select(_local_day(moves.c.at, period).label("day"), moves.c.currency, func.sum(moves.c.taken),
                   func.sum(moves.c.refunded)).group_by("day", moves.c.currency)):
        by_day.setdefault(day, {})[currency] = (int(taken), int(refunded))
    return by_day


def top_trainers(period: Period, limit: int = TOP_TRAINERS) -> list[TrainerRevenue]:
    """The trainers who earned most (net) in the period, per currency: one statement.

    Each payment is one row (taken if it was taken in the period, refunded if it was refunded in
    it), so PostgreSQL reads ix_payments_status_created twice (a BitmapOr) and joins ~one row per
    payment to its booking for the trainer. That join is most of the page's SQL time; see
    bench/README.md."""
    taken_in = and_(Payment.created_at >= period.start, Payment.created_at < period.end)
    refunded_in = and_(Payment.status == PaymentStatus.REFUNDED, Payment.refunded_at >= period.start,
                       Payment.refunded_at < period.end)
    taken = func.coalesce(func.sum(Payment.amount_cents).filter(taken_in), 0)
    refunded = func.coalesce(func.sum(Payment.amount_cents).filter(refunded_in), 0)
    best = (select(Booking.trainer_id, Payment.currency, taken.label("taken"), refunded.label("refunded"),
                   func.count().filter(taken_in).label("payments"))
            .join(Booking, Booking.id == Payment.booking_id)
            .where(Payment.status.in_(TAKEN), or_(taken_in, refunded_in))
            .group_by(Booking.trainer_id, Payment.currency)
            .order_by((taken - refunded).desc(), Booking.trainer_id).limit(limit).subquery("best"))
    rows = db.session.execute(
        select(best, TrainerProfile.display_name, TrainerProfile.slug)
        .join(TrainerProfile, TrainerProfile.id == best.c.trainer_id)
        .order_by((best.c.taken - best.c.refunded).desc(), best.c.trainer_id))
    return [TrainerRevenue(row.trainer_id, row.display_name, row.slug, row.currency, row.payments,
                           int(row.refunded), int(row.taken) - int(row.refunded)) for row in rows]


def _revenue(by_day: MoneyByDay, period: Period, today: date) -> dict[str, list[Revenue]]:
    """Taken and refunded per currency for each fixed window and the period, from the days."""
    ranges = {key: (today - timedelta(days=days - 1), today) for key, _, days in WINDOWS}
    ranges["period"] = (period.first, period.last)
    result = {}
    for key, (first, last) in ranges.items():
        totals: dict[str, list[int]] = {}
        for day, money in by_day.items():
            if first <= day <= last:
                for currency, (taken, refunded) in money.items():
                    total = totals.setdefault(currency, [0, 0])
                    total[0] += taken
                    total[1] += refunded
        result[key] = [Revenue(c, t, r) for c, (t, r) in sorted(totals.items()) if t or r]
    return result


def _created_in(period: Period, model=Booking) -> ColumnElement[bool]:
    # Every status listed: the (status, created_at) index is then read as a few ranges, one per
    # status (PostgreSQL has no skip scan for a range on the second column alone).
    return and_(model.status.in_(list(BookingStatus)), model.created_at >= period.start,
                model.created_at < period.end)


def _bookings_by_day(period: Period) -> dict[date, dict[BookingStatus, int]]:
    """Bookings created per local day and status: an index-only scan of ix_bookings_status_created.
    Grouped by the output column's name: the zone is a bound parameter, and PostgreSQL would not
    see two copies of the expression (two parameters) as the same."""
    counts: dict[date, dict[BookingStatus, int]] = {}
    for day, status, count in db.session.execute(
            select(_local_day(Booking.created_at, period).label("day"), Booking.status, func.count())
            .where(_created_in(period)).group_by("day", Booking.status)):
        counts.setdefault(day, {})[status] = count
    return counts


def _people(period: Period) -> tuple[int, int, int]:
    """(active members, active trainers, cancelled bookings that had been paid) for bookings
    created in the period."""
    cancelled = aliased(Booking)
    # "Was it paid?" as a correlated (SELECT 1 ... LIMIT 1), not EXISTS: PostgreSQL turns EXISTS
    # into a hash join over every payment, where a few thousand index probes (one per cancelled
    # booking of the period, ix_payments_booking_id) are far cheaper.
    paid = select(literal(1)).where(Payment.booking_id == cancelled.id, Payment.status.in_(TAKEN)).limit(1)
    paid_cancelled = select(func.count()).select_from(cancelled).where(
        _created_in(period, cancelled), cancelled.status == BookingStatus.CANCELLED,
        paid.scalar_subquery().is_not(None)).scalar_subquery()
    return tuple(db.session.execute(select(
        func.count(Booking.member_id.distinct()), func.count(Booking.trainer_id.distinct()), paid_cancelled,
    ).where(_created_in(period))).one())


def new_users(period: Period) -> dict[Role, int]:
    rows = db.session.execute(select(User.role, func.count()).where(
        User.created_at >= period.start, User.created_at < period.end).group_by(User.role)).all()
    counts = dict.fromkeys(Role, 0)
    counts.update({role: count for role, count in rows})
    return counts


# Counted inside Redis in one round trip: open streams (unexpired leases in every stream lease
# key, one key per client, whichever worker serves the stream) and trainers online (the ones
# members are shown online, see realtime/presence.py). Done in Python, SCAN's replies and a ZCOUNT
# per key cost the web worker ~9 ms per 2,000 clients; here Redis spends ~1 ms. It walks every
# lease key, so at tens of thousands of clients a per-worker count would be the next step.
LIVE_COUNTS = """
local now, streams, cursor = ARGV[1], 0, '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do streams = streams + redis.call('ZCOUNT', key, now, '+inf') end
until cursor == '0'
return {streams, redis.call('SCARD', KEYS[1])}
"""


def live() -> Live:
    """Open live connections and trainers online, across every worker, from Redis."""
    client = redis_client()
    if client is None:
        return Live(None, None)
    try:
        streams, online = client.register_script(LIVE_COUNTS)(
            keys=[presence.shown_key()], args=[clock.time(), redis_key("streams", "*")])
        return Live(streams, online)
    except REDIS_ERRORS:
        return Live(None, None)


# --- what the page and its fragments show ---------------------------------------------------------

def _on_own_connection(app, job: Callable[[], T]) -> T:
    with app.app_context():  # a new app context has its own session, so its own pooled connection
        try:
            return job()
        finally:
            db.session.remove()


def _report(period: Period, now: datetime | None, figures: bool, days: bool) -> tuple[Figures | None, list[Day]]:
    """Run each query the wanted parts need once, and build the parts from the results."""
    now = now or datetime.now(timezone.utc)
    today = today_in(period.zone, now)
    if not figures:
        return None, _days(period, _money_by_day(period, today, windows=False), _bookings_by_day(period))
    # The figures' statements take ~110 ms one after another on the benchmark's 100,000 bookings,
    # half of it the top-trainers join. That half runs on a second connection meanwhile, so
    # PostgreSQL works on both at once and the page waits for the slower half only. (Under
    # gunicorn's gevent worker the thread is a greenlet and psycopg waits cooperatively.)
    with ThreadPoolExecutor(max_workers=1) as pool:
        other_half = pool.submit(_on_own_connection, current_app._get_current_object(),
                                 lambda: (top_trainers(period), new_users(period), live()))
        money = _money_by_day(period, today, windows=True)
        bookings = _bookings_by_day(period)
        members, trainers, cancelled_paid = _people(period)
        top, users, live_now = other_half.result()
    result = Figures(period=period, as_of=now, revenue=_revenue(money, period, today), top_trainers=top,
                     bookings_by_status=_status_totals(bookings), cancelled_after_payment=cancelled_paid,
                     active_members=members, active_trainers=trainers, new_users=users, live=live_now)
    return result, _days(period, money, bookings) if days else []


def _status_totals(bookings: dict[date, dict[BookingStatus, int]]) -> dict[BookingStatus, int]:
    totals = dict.fromkeys(BookingStatus, 0)
    for counts in bookings.values():
        for status, count in counts.items():
            totals[status] += count
    return totals


def _days(period: Period, money: MoneyByDay, bookings: dict[date, dict[BookingStatus, int]]) -> list[Day]:
    return [Day(day, sum(bookings.get(day, {}).values()),
                {currency: taken - refunded for currency, (taken, refunded) in money.get(day, {}).items()})
            for day in period.days]


def figures(period: Period, now: datetime | None = None) -> Figures:
    """The live figures fragment: five statements and Redis."""
    return _report(period, now, figures=True, days=False)[0]


def daily(period: Period) -> list[Day]:
    """Bookings created and net revenue per currency, for each day of the period: two statements."""
    return _report(period, None, figures=False, days=True)[1]


def overview(period: Period, now: datetime | None = None) -> tuple[Figures, list[Day]]:
    """The whole page: the figures and the days from the same five statements."""
    return _report(period, now, figures=True, days=True)


def booking_counts(period: Period) -> tuple[dict[BookingStatus, int], int]:
    """(bookings per status, cancelled after payment) for bookings created in the period."""
    return _status_totals(_bookings_by_day(period)), _people(period)[2]


def currencies(days: list[Day]) -> list[str]:
    """Currencies with any money in `days`, the one with the most activity first."""
    volume: dict[str, int] = {}
    for day in days:
        for currency, cents in day.net_cents.items():
            volume[currency] = volume.get(currency, 0) + abs(cents)
    return sorted(volume, key=lambda c: (-volume[c], c))


# --- CSV -----------------------------------------------------------------------------------------

EXPORTS = ("revenue_by_trainer", "bookings_by_status", "daily")


def export_rows(table: str, period: Period) -> tuple[list[str], list[list]]:
    """(header, rows) of one analytics table, amounts in major units, for a CSV download."""
    if table == "revenue_by_trainer":
        return (["trainer", "profile", "currency", "payments", "refunded", "net_revenue"],
                [[t.name, t.slug, t.currency, t.payments, _major(t.refunded_cents), _major(t.net_cents)]
                 for t in top_trainers(period)])
    if table == "bookings_by_status":
        by_status, cancelled_paid = booking_counts(period)
        rows = [[status.value, count] for status, count in by_status.items()]
        return ["status", "bookings"], rows + [["cancelled_after_payment", cancelled_paid]]
    if table == "daily":
        days = daily(period)
        money = currencies(days)
        return (["date", "bookings", *(f"net_revenue_{c}" for c in money)],
                [[d.day.isoformat(), d.bookings, *(_major(d.net_cents.get(c, 0)) for c in money)] for d in days])
    raise ValueError(table)


def _major(cents: int) -> str:
    """Cents as a plain decimal string (spreadsheets parse it; no float rounding)."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"
