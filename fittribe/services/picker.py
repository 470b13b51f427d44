"""The booking picker on a trainer's profile: the free times of every session length the trainer
offers, laid out on the viewer's days (a strip of CALENDAR_DAYS days from the viewer's today), and
the viewer's choice among them: a length, a day, and a time picked before logging in.

The layout is the same for everyone with the same clock, whatever they chose: that is what an open
profile is pushed (fittribe/realtime/live.py renders it once per viewer variant), and each page
shows its own choice of it (templates/partials/calendar.html, static/js/live.js)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from ..models import TrainerProfile
from .booking import slots_by_length

CALENDAR_DAYS = 14  # two weeks: the strip's days


@dataclass(frozen=True)
class Day:
    date: date
    times: tuple[datetime, ...]  # free starts on the viewer's clock


@dataclass(frozen=True)
class LengthTimes:
    """One session length's free times, day by day (every day of the strip, free or not)."""
    minutes: int
    days: tuple[Day, ...]

    def day(self, wanted: date) -> Day | None:
        return next((day for day in self.days if day.date == wanted), None)

    @property
    def first_free_day(self) -> date | None:
        return next((day.date for day in self.days if day.times), None)

    @property
    def default_day(self) -> date:
        """What the picker opens on: the first day with a free time (else the strip's first)."""
        return self.first_free_day or self.days[0].date

    def has_time(self, day: date, instant: datetime) -> bool:
        found = self.day(day)
        return found is not None and instant in found.times  # aware datetimes compare as instants


@dataclass(frozen=True)
class Picker:
    zone: str
    lengths: tuple[LengthTimes, ...]  # shortest first; the first is the default

    def length(self, minutes: int | None) -> LengthTimes | None:
        return next((length for length in self.lengths if length.minutes == minutes), None)

    @property
    def default(self) -> LengthTimes:
        return self.lengths[0]

    @staticmethod
    def time_param(instant: datetime) -> str:
        return time_param(instant)


@dataclass(frozen=True)
class Choice:
    length: int
    day: date
    time: datetime | None = None  # the time picked (on the viewer's clock), still free
    taken: datetime | None = None  # the time picked, no longer free for this length
    # Which parts the viewer chose; the others are defaults, which may move (when the first free
    # day's last time is taken, the picker opens on the next one).
    length_chosen: bool = False
    day_chosen: bool = False

    @property
    def picked(self) -> datetime | None:
        return self.time or self.taken


def lay_out(trainer: TrainerProfile, zone: str, now: datetime | None = None, days: int = CALENDAR_DAYS,
            through: date | None = None) -> Picker:
    """`through`: the day of a time picked on another clock (a visitor's, before logging in),
    which may fall on the day after this clock's strip: the strip then reaches it."""
    now = now or datetime.now(timezone.utc)
    clock = ZoneInfo(zone)
    first = now.astimezone(clock).date()
    if through is not None and first + timedelta(days=days) == through:
        days += 1
    strip = [first + timedelta(days=offset) for offset in range(days)]
    lengths = sorted(set(trainer.session_lengths))
    # The trainer's days and the viewer's may be a day apart either way: lay out two more.
    by_length = slots_by_length(trainer, lengths, now, days=days + 2)
    laid_out = []
    for minutes in lengths:
        by_day: dict[date, list[datetime]] = {}
        for slot in by_length[minutes]:
            start = slot.starts_at.astimezone(clock)
            by_day.setdefault(start.date(), []).append(start)
        laid_out.append(LengthTimes(minutes, tuple(Day(day, tuple(by_day.get(day, ()))) for day in strip)))
    return Picker(zone, tuple(laid_out))


def touched_days(trainer: TrainerProfile, zone: str, spans) -> set[str]:
    """The days (YYYY-MM-DD on `zone`'s clock) whose free times a booking change over `spans`
    ((start, end) pairs) can touch: any start within the longest session plus the buffers of it."""
    reach = timedelta(minutes=max(trainer.session_lengths) + trainer.buffer_before_minutes
                      + trainer.buffer_after_minutes)
    clock = ZoneInfo(zone)
    days = set()
    for start, end in spans:
        day, last = (start - reach).astimezone(clock).date(), (end + reach).astimezone(clock).date()
        while day <= last:
            days.add(day.isoformat())
            day += timedelta(days=1)
    return days


def choose(picker: Picker, length: int | None = None, day: date | None = None,
           time: datetime | None = None) -> Choice:
    """The viewer's choice, each part falling back to the default when it is not one the picker
    offers (a length the trainer does not have, a day outside the strip). A picked time sets the
    day (on the viewer's clock); it is `taken` when it is no longer free for that length."""
    times = picker.length(length)
    length_chosen = times is not None
    times = times or picker.default
    if time is not None:
        local = time.astimezone(ZoneInfo(picker.zone))
        if times.has_time(local.date(), local):
            return Choice(times.minutes, local.date(), time=local, length_chosen=length_chosen, day_chosen=True)
        in_strip = times.day(local.date()) is not None
        return Choice(times.minutes, local.date() if in_strip else times.default_day, taken=local,
                      length_chosen=length_chosen, day_chosen=in_strip)
    day_chosen = day is not None and times.day(day) is not None
    return Choice(times.minutes, day if day_chosen else times.default_day, length_chosen=length_chosen,
                  day_chosen=day_chosen)


def time_param(instant: datetime) -> str:
    """A start time in a URL: the instant in UTC, to the minute ("2026-07-06T13:00Z")."""
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
