"""Every value the app takes from a URL, query string, form or header is parsed here, bounded, so
hostile input is a clear 400 (or a 404 for a path), never a crash deeper down: integers beyond
PostgreSQL's range, Unicode digits that pass str.isdigit() but not int(), NUL characters (which
PostgreSQL cannot store or compare), CR/LF in a redirect target, datetimes whose arithmetic
overflows, very long strings."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from urllib.parse import urlsplit

from flask import Flask, request
from werkzeug.routing import IntegerConverter, UnicodeConverter, ValidationError

INT4_MAX = 2**31 - 1  # PostgreSQL `integer`: every id and page number we store or compare
INT8_MAX = 2**63 - 1  # PostgreSQL `bigint`: outbox event ids
ASCII_DIGITS = re.compile(r"[0-9]{1,19}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # not \d: str.isdigit() and \d also accept '²' and '٣'
SEGMENT_MAX = 200  # a path segment (slugs are at most 80 characters; tokens are shorter than this)
# Times a person can book or ask about: far enough for any horizon, near enough that adding a
# session's length or a time zone's offset can never overflow datetime's range (year 1..9999).
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)


def parse_int(raw: str | None, low: int = 0, high: int = INT4_MAX) -> int | None:
    """ASCII digits within [low, high]; None for anything else (missing, signs, '²', overflow)."""
    if raw is None or not ASCII_DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if low <= value <= high else None


def int_arg(name: str, default: int, low: int = 1, high: int = INT4_MAX) -> int:
    """An integer query parameter (a page number): `default` when it is missing or not a whole
    number from `low` to `high` (a mistyped page link shows the first page, as it always did)."""
    value = parse_int(request.args.get(name), low, high)
    return default if value is None else value


def aware_datetime(raw: str | None) -> datetime | None:
    """An ISO 8601 time with its UTC offset, between EARLIEST and LATEST, in UTC; None otherwise."""
    if not raw or len(raw) > 64:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        return None
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+01:00 lies before year 1 in UTC
        return None
    return value if EARLIEST <= value <= LATEST else None


def date_arg(name: str) -> date | None:
    """A calendar day in a query string (YYYY-MM-DD) between EARLIEST and LATEST; None for anything
    else (missing, '2024-02-30', other digits, a time appended)."""
    raw = request.args.get(name)
    if raw is None or not ISO_DATE.fullmatch(raw):
        return None
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        return None
    return value if EARLIEST.date() <= value <= LATEST.date() else None


def safe_next(raw: str | None, default: str, prefix: str = "/") -> str:
    """A redirect target on this site under `prefix`, or `default`: never another site ("//host",
    "/\\host", "https://…") and never a control character (CR/LF would split the Location header)."""
    if not raw or len(raw) > 2000 or not raw.startswith(prefix) or raw.startswith("//") or "\\" in raw:
        return default
    if any(ord(char) < 32 or ord(char) == 127 for char in raw):
        return default
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or "//" in parts.path:
        return default
    return raw


class BoundedInt(IntegerConverter):
    """`<int:…>`: ids are PostgreSQL integers, so a larger number is no such page (404), not a
    DataError from the database."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = 0, max: int | None = INT4_MAX,
                 signed: bool = False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)
        self.regex = r"[0-9]+"  # werkzeug's \d+ also matches other scripts' digits


class SafeString(UnicodeConverter):
    """`<slug>`, `<token>` (the default converter): a bounded segment without control characters."""

    def __init__(self, map, minlength: int = 1, maxlength: int | None = SEGMENT_MAX, length: int | None = None):
        super().__init__(map, minlength=minlength, maxlength=maxlength, length=length)

    def to_python(self, value: str) -> str:
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise ValidationError()
        return value


def register_converters(app: Flask) -> None:
    """Before any route is added: every rule of every blueprint then uses the bounded kinds."""
    app.url_map.converters.update({"int": BoundedInt, "default": SafeString, "string": SafeString})
