"""The slot engine: which session start times a trainer can be booked for.

Pure functions over plain values (no database, no Flask), so every rule is unit-tested:
weekly hours in the trainer's IANA time zone (several ranges a day), date overrides (other
hours, or a day off), session length, buffers before/after, minimum notice, booking horizon,
and what is already held or booked. Every instant is an aware datetime in UTC; local wall
times exist only while the trainer's calendar is laid out, which is what keeps it DST-safe:
a wall time that does not exist (spring forward) is never offered, and a session's end is its
start plus its real length, whatever the clocks do in between."""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc


@dataclass(frozen=True)
class WeeklyHours:
    """Open from `start` to `end` (local wall time) every `weekday` (0 = Monday)."""
    weekday: int
    start: time
    end: time


@dataclass(frozen=True)
class DateOverride:
    """On `day` the trainer's hours are `ranges` instead of the weekly ones; none = day off."""
    day: date
    ranges: tuple[tuple[time, time], ...] = ()


@dataclass(frozen=True)
class Busy:
    """Time already taken (a hold, a booking, or busy in the trainer's own calendar), in UTC."""
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Policy:
    time_zone: str
    length: timedelta = timedelta(minutes=60)
    step: timedelta = timedelta(minutes=30)  # distance between offered start times
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    min_notice: timedelta = timedelta(hours=2)
    horizon: timedelta = timedelta(days=60)


@dataclass(frozen=True, order=True)
class Slot:
    starts_at: datetime
    ends_at: datetime

    def local(self, time_zone: str) -> tuple[datetime, datetime]:
        """The slot on a viewer's clock (each person sees times in their own zone)."""
        zone = ZoneInfo(time_zone)
        return self.starts_at.astimezone(zone), self.ends_at.astimezone(zone)


def _exists(local: datetime) -> bool:
    """False for a wall time skipped by a DST change (e.g. 02:30 on a spring-forward night)."""
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(tzinfo=None) == local.replace(tzinfo=None)


def _ranges_for(day: date, weekly: list[WeeklyHours], overrides: dict[date, DateOverride]):
    if day in overrides:
        return overrides[day].ranges
    return tuple((rule.start, rule.end) for rule in weekly if rule.weekday == day.weekday())


def free_slots(weekly: list[WeeklyHours], overrides: list[DateOverride], busy: list[Busy], policy: Policy,
               now: datetime, days: int | None = None, limit: int | None = None) -> list[Slot]:
    """Bookable slots from `now` (aware) to the end of the horizon (or `days` local days).

    With `limit`, only the first `limit` slots, and the calendar is laid out only as far as
    needed to be sure of them (the search's "next available" wants one, not 60 days' worth)."""
    zone = ZoneInfo(policy.time_zone)
    by_day = {override.day: override for override in overrides}
    earliest = now + policy.min_notice
    latest_start = now + policy.horizon
    first_day = now.astimezone(zone).date()
    last_day = (latest_start.astimezone(zone).date() if days is None
                else min(first_day + timedelta(days=days - 1), latest_start.astimezone(zone).date()))
    taken = _Taken(busy)

    slots: set[Slot] = set()  # two ranges may offer the same start
    day = first_day
    while day <= last_day:
        for start_time, end_time in _ranges_for(day, weekly, by_day):
            range_end = datetime.combine(day, end_time, zone)
            if end_time <= start_time:  # "until midnight" (00:00) ends the next day
                range_end = datetime.combine(day + timedelta(days=1), end_time, zone)
            range_end_utc = range_end.astimezone(UTC)
            local = datetime.combine(day, start_time, zone)
            while local < range_end:
                if _exists(local):
                    starts_at = local.astimezone(UTC)
                    ends_at = starts_at + policy.length
                    if (earliest <= starts_at <= latest_start and ends_at <= range_end_utc
                            and not _too_close(starts_at, ends_at, policy, taken)):
                        slots.add(Slot(starts_at, ends_at))
                # Step on the wall clock, so 09:00, 09:30 … stay on the half hour across DST.
                local = (local.replace(tzinfo=None) + policy.step).replace(tzinfo=zone)
        day += timedelta(days=1)
        # Every start before this midnight is found by now (a range spills past midnight only
        # from the day before), so once there are `limit` of them, later days cannot come first.
        if limit is not None:
            midnight = datetime.combine(day, time(0), zone)
            if sum(slot.starts_at < midnight for slot in slots) >= limit:
                break
    return sorted(slots)[:limit]


class _Taken:
    """Busy time joined into disjoint, sorted intervals, so each candidate slot looks only at its
    neighbours (bisect) rather than at every interval: a trainer's calendar may bring hundreds.
    Joining overlapping or touching intervals changes no answer of `_too_close`."""

    def __init__(self, busy: list[Busy]):
        self.starts: list[datetime] = []
        self.ends: list[datetime] = []
        for b in sorted(busy, key=lambda b: b.starts_at):
            if self.ends and b.starts_at <= self.ends[-1]:
                self.ends[-1] = max(self.ends[-1], b.ends_at)
            else:
                self.starts.append(b.starts_at)
                self.ends.append(b.ends_at)


def _too_close(starts_at: datetime, ends_at: datetime, policy: Policy, taken: _Taken) -> bool:
    """Neither may the new session's buffers touch a booked session, nor the new session a booked
    one's buffers. Buffers may share time with each other: between two sessions the gap is the
    larger buffer that applies (the after-buffer of the first, the before-buffer of the second)."""
    before, after = policy.buffer_before, policy.buffer_after
    reach = max(before, after)
    i = bisect_right(taken.ends, starts_at - reach)  # the first interval that may come close
    while i < len(taken.starts) and taken.starts[i] < ends_at + reach:
        start, end = taken.starts[i], taken.ends[i]
        if (start < ends_at + after and starts_at - before < end) or (start - before < ends_at and starts_at < end + after):
            return True
        i += 1
    return False


def next_available(weekly, overrides, busy, policy: Policy, now: datetime) -> Slot | None:
    """The soonest bookable slot (search sorts by it)."""
    slots = free_slots(weekly, overrides, busy, policy, now, limit=1)
    return slots[0] if slots else None
