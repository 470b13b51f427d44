"""The slot engine (fittribe/services/availability.py): pure, so every rule is checked here."""
from datetime import date, datetime, time, timedelta, timezone

from fittribe.services.availability import Busy, DateOverride, Policy, Slot, WeeklyHours, free_slots, next_available

UTC = timezone.utc
H = timedelta(hours=1)
M30 = timedelta(minutes=30)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def starts(slots) -> list[str]:
    return [s.starts_at.strftime("%m-%d %H:%M") for s in slots]


def policy(zone="Europe/London", **kwargs) -> Policy:
    return Policy(time_zone=zone, **{"min_notice": timedelta(0), **kwargs})


MONDAY = date(2026, 6, 1)  # summer: London is UTC+1
SUNDAY_BEFORE = utc(2026, 5, 31, 12)


def test_weekly_hours_with_several_ranges_a_day():
    weekly = [WeeklyHours(0, time(9), time(12)), WeeklyHours(0, time(14), time(16))]
    slots = free_slots(weekly, [], [], policy(), now=SUNDAY_BEFORE, days=2)
    # London 09:00-12:00 and 14:00-16:00 BST = 08:00-11:00 and 13:00-15:00 UTC, 60 min every 30 min.
    assert starts(slots) == ["06-01 08:00", "06-01 08:30", "06-01 09:00", "06-01 09:30", "06-01 10:00",
                             "06-01 13:00", "06-01 13:30", "06-01 14:00"]
    assert all(s.ends_at - s.starts_at == H for s in slots)


def test_overrides_replace_the_weekly_hours_or_close_the_day():
    weekly = [WeeklyHours(0, time(9), time(11)), WeeklyHours(1, time(9), time(11))]
    overrides = [DateOverride(MONDAY), DateOverride(date(2026, 6, 2), ((time(18), time(19)),)),
                 DateOverride(date(2026, 6, 7), ((time(10), time(11)),))]  # an extra Sunday
    slots = free_slots(weekly, overrides, [], policy(), now=SUNDAY_BEFORE, days=9)
    assert starts(slots) == ["06-02 17:00", "06-07 09:00", "06-08 08:00", "06-08 08:30", "06-08 09:00"]


def test_existing_bookings_and_buffers():
    weekly = [WeeklyHours(0, time(8), time(13))]
    booked = [Busy(utc(2026, 6, 1, 9), utc(2026, 6, 1, 10))]  # 10:00-11:00 London
    plain = free_slots(weekly, [], booked, policy(), now=SUNDAY_BEFORE, days=2)
    assert starts(plain) == ["06-01 07:00", "06-01 07:30", "06-01 08:00", "06-01 10:00", "06-01 10:30", "06-01 11:00"]
    buffered = free_slots(weekly, [], booked, policy(buffer_before=timedelta(minutes=15),
                                                      buffer_after=timedelta(minutes=15)),
                          now=SUNDAY_BEFORE, days=2)
    # 08:00-09:00 UTC would leave no 15 minutes before the booking; 10:00 none after it.
    assert starts(buffered) == ["06-01 07:00", "06-01 07:30", "06-01 10:30", "06-01 11:00"]


def test_a_buffer_after_sessions_keeps_a_gap_after_booked_ones_too():
    """Only an after-buffer (the demo trainers' setting): the new session must not start inside
    the booked session's cool-down, and must end its own cool-down before the booked one starts."""
    weekly = [WeeklyHours(0, time(8), time(13))]
    booked = [Busy(utc(2026, 6, 1, 9), utc(2026, 6, 1, 10))]  # 10:00-11:00 London
    slots = free_slots(weekly, [], booked, policy(buffer_after=timedelta(minutes=15)), now=SUNDAY_BEFORE, days=2)
    # 08:00 UTC would end at 09:00 with no cool-down before the booking; 10:00 would start inside
    # the booking's cool-down (10:00-10:15).
    assert starts(slots) == ["06-01 07:00", "06-01 07:30", "06-01 10:30", "06-01 11:00"]
    wide_gap = free_slots(weekly, [], booked, policy(buffer_before=timedelta(minutes=45),
                                                     buffer_after=timedelta(minutes=15)), now=SUNDAY_BEFORE, days=2)
    # The larger buffer is the gap: 45 minutes before a session, whichever comes first.
    assert starts(wide_gap) == ["06-01 07:00", "06-01 11:00"]


def test_minimum_notice_and_horizon():
    weekly = [WeeklyHours(d, time(9), time(17)) for d in range(7)]
    now = utc(2026, 6, 1, 8, 10)  # 09:10 in London
    slots = free_slots(weekly, [], [], policy(min_notice=2 * H, horizon=timedelta(days=3), step=H), now=now)
    assert slots[0].starts_at == utc(2026, 6, 1, 11)  # 12:00 London, the first full hour after 11:10
    assert slots[-1].starts_at <= now + timedelta(days=3)
    assert {s.starts_at.date() for s in slots} == {date(2026, 6, d) for d in (1, 2, 3, 4)}


def test_spring_forward_europe():
    # Berlin: clocks go 02:00 -> 03:00 on Sunday 29 March 2026.
    weekly = [WeeklyHours(6, time(1), time(5)), WeeklyHours(0, time(9), time(10))]
    slots = free_slots(weekly, [], [], policy("Europe/Berlin", step=H), now=utc(2026, 3, 22, 0), days=9)
    # 09:00 on the Monday before (CET, UTC+1) and after (CEST, UTC+2).
    assert utc(2026, 3, 23, 8) in [s.starts_at for s in slots]
    assert utc(2026, 3, 30, 7) in [s.starts_at for s in slots]
    night = [s for s in slots if s.starts_at.date() == date(2026, 3, 29)]
    # 01:00 CET, then 03:00 and 04:00 CEST: 02:00 does not exist and is never offered.
    assert [s.local("Europe/Berlin")[0].strftime("%H:%M %Z") for s in night] == ["01:00 CET", "03:00 CEST",
                                                                              "04:00 CEST"]
    assert all(s.ends_at - s.starts_at == H for s in night)


def test_spring_forward_us():
    # New York: 02:00 -> 03:00 on Sunday 8 March 2026. Hours 01:00-04:00, 60 min every 30 min.
    weekly = [WeeklyHours(6, time(1), time(4))]
    slots = free_slots(weekly, [], [], policy("America/New_York"), now=utc(2026, 3, 7), days=3)
    # 01:00 and 01:30 EST (a 01:30 session really ends at 03:30 EDT), 03:00 EDT; 02:xx never.
    assert starts(slots) == ["03-08 06:00", "03-08 06:30", "03-08 07:00"]
    assert [s.local("America/New_York")[1].strftime("%H:%M") for s in slots] == ["03:00", "03:30", "04:00"]


def test_fall_back_europe_and_us():
    # London: 02:00 BST -> 01:00 GMT on 25 Oct 2026. A 09:00 Monday session moves from 08:00 to 09:00 UTC.
    weekly = [WeeklyHours(0, time(9), time(10))]
    london = free_slots(weekly, [], [], policy(step=H), now=utc(2026, 10, 18), days=10)
    assert [s.starts_at for s in london] == [utc(2026, 10, 19, 8), utc(2026, 10, 26, 9)]
    # New York: 02:00 EDT -> 01:00 EST on 1 Nov 2026. The repeated 01:00 hour is offered once (EDT).
    night = free_slots([WeeklyHours(6, time(0), time(3))], [], [], policy("America/New_York", step=H),
                       now=utc(2026, 10, 31), days=3)
    assert starts(night) == ["11-01 04:00", "11-01 05:00", "11-01 07:00"]
    assert [s.local("America/New_York")[0].strftime("%H:%M %Z") for s in night] == ["00:00 EDT", "01:00 EDT",
                                                                                 "02:00 EST"]


def test_viewer_in_another_zone_sees_their_own_clock():
    slot = Slot(utc(2026, 6, 1, 8), utc(2026, 6, 1, 9))
    start, end = slot.local("Asia/Tokyo")
    assert (start.strftime("%a %H:%M %Z"), end.strftime("%H:%M")) == ("Mon 17:00 JST", "18:00")
    assert slot.local("America/Los_Angeles")[0].strftime("%a %H:%M %Z") == "Mon 01:00 PDT"


def test_next_available():
    weekly = [WeeklyHours(2, time(9), time(10))]  # Wednesdays only
    slot = next_available(weekly, [], [], policy(), now=SUNDAY_BEFORE)
    assert slot.starts_at == utc(2026, 6, 3, 8)
    assert next_available([], [], [], policy(), now=SUNDAY_BEFORE) is None


def test_limit_stops_early_with_the_same_first_slots():
    # Saturday is booked solid; Sunday's late range runs past midnight, and two Monday ranges
    # start before and at that spill (so stopping on Sunday, or counting 00:30 twice, is wrong).
    weekly = [WeeklyHours(5, time(9), time(12)), WeeklyHours(6, time(22, 30), time(1, 30)),
              WeeklyHours(0, time(0), time(1)), WeeklyHours(0, time(0, 30), time(2, 30))]
    busy = [Busy(utc(2026, 6, 6, 7), utc(2026, 6, 6, 11)), Busy(utc(2026, 6, 7, 21, 30), utc(2026, 6, 7, 22, 30))]
    rules = (weekly, [], busy, policy(step=H))
    friday = utc(2026, 6, 5, 12)
    everything = free_slots(*rules, now=friday)
    assert starts(everything[:5]) == ["06-07 22:30", "06-07 23:00", "06-07 23:30", "06-08 00:30", "06-13 08:00"]
    for limit in range(1, 7):
        assert free_slots(*rules, now=friday, limit=limit) == everything[:limit]
    assert free_slots([], [], [], policy(), now=friday, limit=1) == []
