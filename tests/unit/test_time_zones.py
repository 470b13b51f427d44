"""services/time_zones.py: which names are zones, the list people pick from, and how a time is
named for its reader (offsets checked on both sides of daylight-saving changes)."""
from datetime import UTC, datetime

from fittribe.services import time_zones

WINTER = datetime(2026, 1, 15, 12, tzinfo=UTC)
SUMMER = datetime(2026, 7, 15, 12, tzinfo=UTC)


def test_only_real_places_are_zones():
    assert time_zones.is_zone("Asia/Tokyo") and time_zones.is_zone("UTC") and time_zones.is_zone("Asia/Calcutta")
    for name in ("localtime", "Factory", "posixrules", "asia/tokyo", "Mars/Olympus", "", None, 9, "../etc/passwd"):
        assert not time_zones.is_zone(name), name


def test_offsets_and_gaps_follow_daylight_saving():
    assert time_zones.utc_offset("Asia/Tokyo", WINTER) == "UTC+9"
    assert time_zones.utc_offset("Asia/Kolkata", WINTER) == "UTC+5:30"
    assert time_zones.utc_offset("America/St_Johns", WINTER) == "UTC-3:30"
    assert (time_zones.utc_offset("Europe/London", WINTER), time_zones.utc_offset("Europe/London", SUMMER)) == \
        ("UTC+0", "UTC+1")
    assert time_zones.gap("America/Los_Angeles", "Asia/Tokyo", WINTER) == "17 hours behind you"
    assert time_zones.gap("America/Los_Angeles", "Asia/Tokyo", SUMMER) == "16 hours behind you"
    assert time_zones.gap("Asia/Kolkata", "Europe/London", WINTER) == "5½ hours ahead of you"
    assert time_zones.gap("Europe/Paris", "Europe/London", WINTER) == "1 hour ahead of you"
    assert time_zones.gap("Asia/Kathmandu", "UTC", WINTER) == "5:45 hours ahead of you"
    assert time_zones.gap("Europe/Lisbon", "Europe/London", SUMMER) == "the same time as yours"


def test_a_time_is_named_on_its_readers_clock():
    assert time_zones.on_clock(datetime(2026, 12, 7, 17, 30, tzinfo=UTC), "America/Los_Angeles") == \
        "Mon 7 Dec 09:30 (your time, America/Los Angeles)"


def test_the_list_is_utc_then_regions_sorted_by_city_and_keeps_an_alias_someone_is_on():
    places = time_zones.places(WINTER)
    assert places[0].zone == "UTC" and len(places) > 400
    assert len({place.zone for place in places}) == len(places)
    regions = [place.region for place in places[1:]]
    assert regions == sorted(regions, key=list(time_zones.REGIONS.values()).index)
    europe = [place.label for place in places if place.region == "Europe"]
    assert europe == sorted(europe, key=str.casefold)
    labels = {place.zone: place.label for place in places}
    assert labels["Asia/Tokyo"] == "Tokyo — Japan · UTC+9"
    assert labels["Europe/London"].startswith("London — ") and labels["Europe/London"].endswith("UTC+0")
    assert labels["America/Kentucky/Louisville"] == "Louisville (Kentucky) — United States · UTC-5"
    assert all(time_zones.is_zone(zone) for zone in labels)
    assert "Asia/Calcutta" not in labels  # an alias: Kolkata is listed
    kept = time_zones.places(WINTER, include="Asia/Calcutta")[-1]
    assert (kept.zone, kept.region) == ("Asia/Calcutta", time_zones.OTHER)
    assert time_zones.places(WINTER, include="Mars/Olympus")[-1].zone != "Mars/Olympus"
