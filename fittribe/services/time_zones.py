"""Time zones: which names are real places, the list people choose from, and how an instant is
named on someone's clock. Pure (no Flask, no database).

Every instant is stored in UTC; a zone only decides how it is shown (see docs/architecture.md,
"Time"). The names come from the IANA database shipped by the pinned `tzdata` package, so the
list is the same on every server whatever its operating system has installed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache, lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, available_timezones

# In a system's zone folder but not places: the server's own clock, tzdb's placeholder, a link.
NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})
# tzdb's first name part, as people call the region (the groups of the list, in this order).
REGIONS = {"Africa": "Africa", "America": "Americas", "Antarctica": "Antarctica", "Arctic": "Arctic",
           "Asia": "Asia", "Atlantic": "Atlantic Ocean", "Australia": "Australia", "Europe": "Europe",
           "Indian": "Indian Ocean", "Pacific": "Pacific"}
OTHER = "Other"  # a valid zone outside zone.tab (an old alias a browser reports, "Etc/GMT+5"…)


@cache
def known_zones() -> frozenset[str]:
    return frozenset(available_timezones() - NOT_PLACES)


def is_zone(name) -> bool:
    """A real IANA zone name (not the server's "localtime"); anything else, of any type, is not."""
    return isinstance(name, str) and name in known_zones()


def zone_name(zone: str) -> str:
    """"America/Los_Angeles" as people read it: "America/Los Angeles"."""
    return zone.replace("_", " ")


def city(zone: str) -> str:
    """"America/Argentina/Buenos_Aires" -> "Buenos Aires"."""
    return zone.rsplit("/", 1)[-1].replace("_", " ")


def utc_offset(zone: str, at: datetime) -> str:
    """The zone's offset at `at`: "UTC+9", "UTC+5:30", "UTC-3", "UTC+0"."""
    return "UTC" + _signed(at.astimezone(ZoneInfo(zone)).utcoffset())


def _signed(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours}" + (f":{rest:02d}" if rest else "")


def gap(zone: str, from_zone: str, at: datetime) -> str:
    """How `zone`'s clock stands against the reader's (`from_zone`) at `at`: "8 hours ahead of
    you", "5½ hours behind you", "the same time as yours"."""
    difference = at.astimezone(ZoneInfo(zone)).utcoffset() - at.astimezone(ZoneInfo(from_zone)).utcoffset()
    minutes = int(difference.total_seconds() // 60)
    if minutes == 0:
        return "the same time as yours"
    hours, rest = divmod(abs(minutes), 60)
    amount = f"{hours}{'½' if rest == 30 else ''}" if rest in (0, 30) else f"{hours}:{rest:02d}"
    unit = "hour" if amount == "1" else "hours"
    return f"{amount} {unit} {'ahead of' if minutes > 0 else 'behind'} you"


def on_clock(moment: datetime, zone: str) -> str:
    """An instant for someone whose clock is `zone`, labelled as theirs, as notifications say it
    (their text is stored as written): "Mon 7 Dec 17:30 (your time, Europe/London)"."""
    return f"{moment.astimezone(ZoneInfo(zone)):%a %-d %b %H:%M} (your time, {zone_name(zone)})"


@dataclass(frozen=True)
class Place:
    zone: str
    label: str  # "Tokyo — Japan · UTC+9": the city first, so typing a city's name finds it
    region: str  # the list's group


@cache
def _countries() -> dict[str, str]:
    return dict(line.split("\t")[:2] for line in _tzdata_lines("iso3166.tab"))


@cache
def _zone_countries() -> tuple[tuple[str, str], ...]:
    """(zone, country) for each line of tzdb's zone.tab: every country's zones, named by city."""
    countries = _countries()
    return tuple((columns[2], countries.get(columns[0], columns[0]))
                 for columns in (line.split("\t") for line in _tzdata_lines("zone.tab")))


def _tzdata_lines(name: str) -> list[str]:
    text = resources.files("tzdata.zoneinfo").joinpath(name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _label(zone: str, country: str | None, at: datetime) -> str:
    parts = zone.split("/")
    name = city(zone)
    middle = [part.replace("_", " ") for part in parts[1:-1] if part.replace("_", " ") != country]
    if middle:  # "America/Indiana/Knox" -> "Knox (Indiana)"
        name += f" ({', '.join(middle)})"
    where = f" — {country}" if country else ""
    return f"{name}{where} · {utc_offset(zone, at)}"


def places(at: datetime | None = None, include: str | None = None) -> list[Place]:
    """Every zone people pick from (tzdb's zone.tab: one per country's region), grouped by
    region and sorted by city, labelled with the offset at `at`; plus UTC first, and `include`
    (someone's current zone, when it is a valid one not on the list) so it can stay selected."""
    at = at or datetime.now(timezone.utc)
    listed = list(_places_in_hour(at.replace(minute=0, second=0, microsecond=0)))
    if include and is_zone(include) and include not in {place.zone for place in listed}:
        listed.append(Place(include, _label(include, None, at), OTHER))
    return listed


@lru_cache(maxsize=2)
def _places_in_hour(hour: datetime) -> tuple[Place, ...]:
    """Built once an hour: offsets change a few times a year, so a label lags a change of
    daylight saving time by under an hour at most."""
    order = list(REGIONS)
    grouped = sorted(
        (Place(zone, _label(zone, country, hour), REGIONS[zone.split("/", 1)[0]])
         for zone, country in _zone_countries()
         if zone.split("/", 1)[0] in REGIONS and is_zone(zone)),
        key=lambda place: (order.index(place.zone.split("/", 1)[0]), place.label.casefold()))
    return (Place("UTC", "UTC — Coordinated Universal Time", ""), *grouped)
