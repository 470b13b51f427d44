"""Trainers edit their weekly hours and date overrides; every change refreshes open profiles."""
from __future__ import annotations

from datetime import date, time

from sqlalchemy import select

from ..extensions import db
from ..models import AvailabilityOverride, TrainerProfile, WeeklyAvailability
from .booking import BookingError, announce_slots_changed

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _announce(trainer: TrainerProfile) -> None:
    announce_slots_changed(trainer.id)
    db.session.commit()


def weekly_hours(trainer: TrainerProfile) -> list[WeeklyAvailability]:
    return list(db.session.scalars(select(WeeklyAvailability).where(WeeklyAvailability.trainer_id == trainer.id)
                                   .order_by(WeeklyAvailability.weekday, WeeklyAvailability.start_time)))


def overrides(trainer: TrainerProfile) -> list[AvailabilityOverride]:
    return list(db.session.scalars(select(AvailabilityOverride).where(AvailabilityOverride.trainer_id == trainer.id)
                                   .order_by(AvailabilityOverride.day, AvailabilityOverride.start_time)))


def add_weekly(trainer: TrainerProfile, weekday: int, start: time, end: time) -> WeeklyAvailability:
    if not start < end:
        raise BookingError("The end must be after the start.")
    for existing in weekly_hours(trainer):
        if existing.weekday == weekday and existing.start_time < end and start < existing.end_time:
            raise BookingError(f"That overlaps your {WEEKDAYS[weekday]} hours "
                               f"{existing.start_time:%H:%M}–{existing.end_time:%H:%M}.")
    row = WeeklyAvailability(trainer_id=trainer.id, weekday=weekday, start_time=start, end_time=end)
    db.session.add(row)
    _announce(trainer)
    return row


def add_override(trainer: TrainerProfile, day: date, start: time | None, end: time | None) -> AvailabilityOverride:
    if (start is None) != (end is None):
        raise BookingError("Give both a start and an end, or neither for a day off.")
    if start is not None and not start < end:
        raise BookingError("The end must be after the start.")
    row = AvailabilityOverride(trainer_id=trainer.id, day=day, start_time=start, end_time=end)
    db.session.add(row)
    _announce(trainer)
    return row


def delete(trainer: TrainerProfile, model, row_id: int) -> bool:
    row = db.session.get(model, row_id)
    if row is None or row.trainer_id != trainer.id:
        return False
    db.session.delete(row)
    _announce(trainer)
    return True
