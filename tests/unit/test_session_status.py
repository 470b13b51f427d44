"""The status a session shows as time passes (pure rules; no database)."""
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from fittribe.models import BookingStatus
from fittribe.services.session_status import status_of

START = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


TRAINER_USER_ID, MEMBER_ID = 7, 8


def session(status=BookingStatus.CONFIRMED, joined=None, meeting="https://meet.example/room", reported_by=None):
    return SimpleNamespace(status=status, starts_at=START, ends_at=START + timedelta(hours=1),
                           meeting_url=meeting, trainer_joined_at=joined, cancelled_by_id=reported_by,
                           member_id=MEMBER_ID, trainer=SimpleNamespace(user_id=TRAINER_USER_ID))


def test_status_moves_from_confirmed_through_starting_and_live_to_completed():
    seen = [(status.phase, status.label, status.can_join) for status in (
        status_of(session(), START - timedelta(hours=3)),
        status_of(session(), START - timedelta(minutes=45)),
        status_of(session(), START - timedelta(minutes=10)),
        status_of(session(), START + timedelta(minutes=1)),
        status_of(session(), START + timedelta(hours=1)),
    )]
    assert seen == [("confirmed", "Confirmed", False), ("starting", "Starting in 45 min", False),
                    ("starting", "Starting in 10 min", True), ("live", "Live now", True),
                    ("completed", "Completed", False)]


def test_the_trainer_joining_early_makes_it_live_once_the_room_is_open():
    early = START - timedelta(minutes=8)
    assert status_of(session(joined=early), early).phase == "live"
    assert status_of(session(joined=early), START - timedelta(minutes=30)).phase == "starting"


def test_no_join_without_a_meeting_link_and_other_statuses_are_named():
    assert not status_of(session(meeting=None), START).can_join
    assert status_of(session(BookingStatus.CANCELLED), START).label == "Cancelled"
    assert status_of(session(BookingStatus.NO_SHOW, reported_by=TRAINER_USER_ID), START).label == "No-show (member)"
    assert status_of(session(BookingStatus.NO_SHOW, reported_by=MEMBER_ID), START).label == "No-show (trainer)"
    assert status_of(session(BookingStatus.HELD), START - timedelta(days=1)).phase == "held"
