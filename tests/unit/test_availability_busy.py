"""Many busy intervals (a connected calendar): the slot engine's bisect over joined intervals gives
exactly what checking every interval gives, and the interval helpers of the Google sync."""
import random
from datetime import datetime, time, timedelta, timezone

from fittribe.services.availability import Busy, Policy, WeeklyHours, free_slots
from fittribe.services.google_calendar import merge, subtract

UTC = timezone.utc
NOW = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)


def clashes(slot, busy: list[Busy], before: timedelta, after: timedelta) -> bool:
    """The rule, checked against every interval as written (no joining, no bisect)."""
    return any((b.starts_at < slot.ends_at + after and slot.starts_at - before < b.ends_at)
               or (b.starts_at - before < slot.ends_at and slot.starts_at < b.ends_at + after) for b in busy)


def test_joined_intervals_and_bisect_agree_with_checking_every_interval():
    rng = random.Random(16)
    weekly = [WeeklyHours(day, time(6), time(22)) for day in range(7)]
    for round_ in range(20):
        before, after = timedelta(minutes=rng.choice([0, 10, 30])), timedelta(minutes=rng.choice([0, 15, 45]))
        policy = Policy("Europe/Berlin", length=timedelta(minutes=rng.choice([30, 60, 90])), buffer_before=before,
                        buffer_after=after, min_notice=timedelta(0), horizon=timedelta(days=14))
        busy = []
        for _ in range(rng.randint(0, 300)):  # overlapping, touching and nested ones included
            start = NOW + timedelta(minutes=15 * rng.randrange(0, 4 * 24 * 14))
            busy.append(Busy(start, start + timedelta(minutes=15 * rng.randint(1, 16))))
        candidates = free_slots(weekly, [], [], policy, NOW)
        expected = [slot for slot in candidates if not clashes(slot, busy, before, after)]
        assert free_slots(weekly, [], busy, policy, NOW) == expected, round_


def h(hour: int, minute: int = 0) -> datetime:
    return NOW.replace(hour=hour, minute=minute)


def test_merge_joins_overlapping_and_touching_intervals():
    assert merge([(h(9), h(10)), (h(12), h(13)), (h(9, 30), h(11)), (h(11), h(11, 30))]) == [
        (h(9), h(11, 30)), (h(12), h(13))]


def test_subtract_cuts_our_own_events_out_of_busy_time():
    busy = [(h(9), h(12)), (h(14), h(15))]
    assert subtract(busy, [(h(10), h(11))]) == [(h(9), h(10)), (h(11), h(12)), (h(14), h(15))]
    assert subtract(busy, [(h(8), h(9, 30)), (h(14), h(15))]) == [(h(9, 30), h(12))]
    assert subtract(busy, [(h(13), h(14))]) == busy
