"""Money as each side sees it: a member's payment history, and a trainer's earnings per week and
month — pending (paid sessions still to come) and earned (sessions that took place, or were
cancelled late by the member, which the policy does not refund) — net of the platform fee."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import Booking, BookingStatus, Payment, PaymentStatus, TrainerProfile

PAGE_SIZE = 20


def payment_history(member_id: int, page: int = 1):
    query = (select(Payment).join(Booking, Booking.id == Payment.booking_id)
             .options(selectinload(Payment.booking).selectinload(Booking.trainer))  # each row names both
             .where(Booking.member_id == member_id).order_by(Payment.created_at.desc(), Payment.id.desc()))
    return db.paginate(query, page=page, per_page=PAGE_SIZE, error_out=False)


@dataclass
class Period:
    starts: date
    gross_cents: int = 0
    sessions: int = 0


@dataclass
class Earnings:
    currency: str
    fee_percent: int
    pending_cents: int = 0
    earned_cents: int = 0
    refunded_cents: int = 0
    weeks: list[Period] = field(default_factory=list)
    months: list[Period] = field(default_factory=list)

    def net(self, cents: int) -> int:
        return cents - cents * self.fee_percent // 100


def trainer_earnings(trainer: TrainerProfile, now: datetime, weeks: int = 8, months: int = 6) -> Earnings:
    zone = ZoneInfo(trainer.time_zone)
    result = Earnings(trainer.currency, current_app.config["PLATFORM_FEE_PERCENT"])
    rows = db.session.execute(
        select(Payment.amount_cents, Payment.status, Booking.status, Booking.starts_at)
        .join(Booking, Booking.id == Payment.booking_id)
        .where(Booking.trainer_id == trainer.id, Payment.status.in_([PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED])))
    today = now.astimezone(zone).date()
    this_week = today - timedelta(days=today.weekday())
    by_week = {this_week - timedelta(weeks=n): Period(this_week - timedelta(weeks=n)) for n in range(weeks)}
    by_month: dict[date, Period] = {}
    month = today.replace(day=1)
    for _ in range(months):
        by_month[month] = Period(month)
        month = (month - timedelta(days=1)).replace(day=1)
    for amount, payment_status, booking_status, starts_at in rows:
        if payment_status is PaymentStatus.REFUNDED:
            result.refunded_cents += amount
            continue
        if booking_status is BookingStatus.CONFIRMED:
            result.pending_cents += amount
            continue
        result.earned_cents += amount
        day = starts_at.astimezone(zone).date()
        for bucket in (by_week.get(day - timedelta(days=day.weekday())), by_month.get(day.replace(day=1))):
            if bucket is not None:
                bucket.gross_cents += amount
                bucket.sessions += 1
    result.weeks = list(by_week.values())
    result.months = list(by_month.values())
    return result
