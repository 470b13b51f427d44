from __future__ import annotations

from datetime import date, time

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, SmallInteger, Time
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class WeeklyAvailability(db.Model):
    """A range of local wall time, in the trainer's time zone, open every `weekday` (0 = Monday)."""
    __tablename__ = "weekly_availability"

    id: Mapped[int] = mapped_column(primary_key=True)
    trainer_id: Mapped[int] = mapped_column(ForeignKey("trainer_profiles.id", ondelete="CASCADE"))
    weekday: Mapped[int] = mapped_column(SmallInteger)
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)

    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        Index("ix_weekly_availability_trainer_id", "trainer_id"),
    )


class AvailabilityOverride(db.Model):
    """Other hours on one date; a row without times is a day off."""
    __tablename__ = "availability_overrides"

    id: Mapped[int] = mapped_column(primary_key=True)
    trainer_id: Mapped[int] = mapped_column(ForeignKey("trainer_profiles.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    start_time: Mapped[time | None] = mapped_column(Time)
    end_time: Mapped[time | None] = mapped_column(Time)

    __table_args__ = (Index("ix_availability_overrides_trainer_day", "trainer_id", "day"),)
