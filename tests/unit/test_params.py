"""The bounded parsers every view uses for values from outside (fittribe/web/params.py)."""
from datetime import datetime, timezone

import pytest

from fittribe.web.params import INT8_MAX, aware_datetime, parse_int, safe_next


@pytest.mark.parametrize("raw", [None, "", "-1", "+1", " 1", "1.0", "²", "٣", "1e3", "2147483648", "9" * 40, "\x001"])
def test_parse_int_refuses_anything_but_ascii_digits_in_range(raw):
    assert parse_int(raw) is None


def test_parse_int_bounds():
    assert parse_int("0") == 0 and parse_int("2147483647") == 2**31 - 1
    assert parse_int("5", low=6) is None and parse_int(str(INT8_MAX), high=INT8_MAX) == INT8_MAX


@pytest.mark.parametrize("raw", [None, "", "2026-12-05T10:00", "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+01:00",
                                 "1999-12-31T23:59:59+00:00", "2026-13-01T10:00+00:00", "x" * 100, "2026-12-05T10:00\x00"])
def test_aware_datetime_refuses_naive_malformed_and_far_times(raw):
    assert aware_datetime(raw) is None


def test_aware_datetime_is_utc():
    assert aware_datetime("2026-12-05T10:00:00+02:00") == datetime(2026, 12, 5, 8, tzinfo=timezone.utc)


@pytest.mark.parametrize("raw", ["//evil.example", "/\\evil.example", "https://evil.example/", "/a\r\nSet-Cookie: x=1",
                                 "/a\x00", "javascript:alert(1)", "/ok//evil", "", None, "relative"])
def test_safe_next_keeps_only_paths_of_this_site(raw):
    assert safe_next(raw, "/home") == "/home"


def test_safe_next_passes_a_plain_path_and_honours_the_prefix():
    assert safe_next("/bookings/3?x=1#y", "/home") == "/bookings/3?x=1#y"
    assert safe_next("/trainers", "/dashboard/", prefix="/dashboard/") == "/dashboard/"
