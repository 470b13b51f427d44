"""Hostile input anywhere never makes a 5xx: every route of app.url_map, each path argument, every
query parameter and form field the app reads and every header it looks at, with values from the
classes an outside review found crashing (integers beyond PostgreSQL's range, Unicode digits, NUL,
CR/LF, far-future and ancient datetimes, very long strings, invalid UTF-8 escapes, negatives), for an
anonymous visitor and each role. CSRF and rate limits are off here, so the values reach the views."""
from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.helpers import HTMX, ROOT, Browser, demo_paid_session

HOSTILE = [
    "99999999999999999999", "9223372036854775808", "-1", "²", "٣", "1e999999", "NaN", "sNaN", "a\x00b",
    "x\r\nSet-Cookie: evil=1", "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+01:00", "9999-12-31", "23:59:60",
    "x" * 5000, "🙂", "//evil.example/x", "",
]
# Path segments get a few more (a path is matched by converters before any view runs).
PATH_EXTRA = ["2147483648", "0", "1.5", "Infinity", "0001-01-01", "' OR 1=1 --", "javascript:alert(1)"]
RAW_ESCAPES = ["%ff%fe", "%c0%80", "%00", "%e2%82"]  # sent as they are: invalid UTF-8 / NUL once decoded

# Every query parameter and form field the app reads (test_every_read_parameter_is_fuzzed keeps
# this list complete), with the form classes' own fields added below.
PARAMETERS = {"next", "page", "reviews_page", "trainer", "last_event_id", "channel", "role", "q", "suspended",
              "from", "to", "table", "starts_at", "length", "reason", "card", "authenticated", "available", "back",
              "note", "confirm", "busy", "code", "error", "remove", "state", "target", "day", "time"}
HEADERS = ["Last-Event-ID", "HX-Request", "HX-Request-Type", "X-Request-ID", "Authorization", "Stripe-Signature",
           "Simulated-Signature", "X-Forwarded-For", "X-Forwarded-Proto", "Forwarded", "Content-Type", "Accept"]
ROLES = {"anonymous": None, "member": "member@fittribe.example", "trainer": "trainer@fittribe.example",
         "admin": "admin@fittribe.example"}


def _form_fields() -> set[str]:
    from flask_wtf import FlaskForm

    from fittribe.web import forms

    names = set()
    for value in vars(forms).values():
        if isinstance(value, type) and issubclass(value, FlaskForm) and value is not FlaskForm:
            for name, field in vars(value).items():
                if hasattr(field, "field_class"):
                    names |= {name, f"weekly-{name}", f"date-{name}"}  # the availability editor's prefixes
    return names


def test_every_read_parameter_is_fuzzed():
    """A new `request.args/form.get("…")` must join PARAMETERS, or the fuzz would miss it."""
    read = set()
    for path in (ROOT / "fittribe").rglob("*.py"):
        read |= set(re.findall(r'request\.(?:args|form|values)\.get(?:list)?\("(\w+)"', path.read_text()))
    assert read - PARAMETERS == set()


@pytest.fixture
def fuzz_app(app):
    from fittribe.extensions import limiter

    saved = {key: app.config.get(key) for key in ("WTF_CSRF_ENABLED", "RATELIMIT_ENABLED")}
    app.config.update(WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False)
    limiter.enabled = False
    yield app
    limiter.enabled = True
    app.config.update(saved)


def _path_values(app, booking_id: int) -> dict[str, list[str]]:
    """Per converter: hostile values, plus one real value so the other parts of a request get in."""
    hostile = [quote(value, safe="") for value in HOSTILE + PATH_EXTRA if value] + RAW_ESCAPES
    return {"int": [str(booking_id)] + hostile, "default": ["maya-chen"] + hostile, "path": ["css/app.css"] + hostile}


def _urls(app, booking_id: int):
    values = _path_values(app, booking_id)
    for rule in app.url_map.iter_rules():
        arguments = list(rule.arguments)
        kinds = {name: type(rule._converters[name]).__name__ for name in arguments}

        def kind_of(name):
            converter = kinds[name]
            return "int" if "Int" in converter else "path" if "Path" in converter else "default"

        combos = [{}]
        for name in arguments:  # one argument hostile at a time, the others real
            for value in values[kind_of(name)]:
                combos.append({other: values[kind_of(other)][0] for other in arguments} | {name: value})
        for combo in combos if arguments else [{}]:
            if arguments and not combo:
                continue
            url = rule.rule
            for name, value in combo.items():
                url = re.sub(r"<(?:[^:<>]+:)?" + name + r">", value, url)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule.rule, method, url


def _query(value: str, names) -> str:
    encoded = value if value in RAW_ESCAPES else quote(value, safe="")
    return "&".join(f"{name}={encoded}" for name in sorted(names))


def _header_value(value: str) -> str:
    # Header values travel as bytes; a WSGI server hands them over as latin-1.
    return value.encode("utf-8").decode("latin-1")


def _check(send, what: str, failures: list) -> None:
    """Send the request (a callable); a 5xx, or an exception the app let out, is a failure."""
    try:
        response = send()
    except Exception as error:  # noqa: BLE001 - the server would answer 500
        failures.append(f"{type(error).__name__} {what}")
        return
    if response.status_code >= 500:
        failures.append(f"{response.status_code} {what}")
    response.close()


@pytest.mark.parametrize("role", ROLES)
def test_no_hostile_value_makes_a_server_error(fuzz_app, demo, role):
    booking_id = demo_paid_session(fuzz_app, days_ahead=2)
    client = fuzz_app.test_client()
    if ROLES[role]:
        Browser(client).login(ROLES[role])
    names = PARAMETERS | _form_fields()
    failures: list[str] = []
    # 1. Each path argument hostile in turn, with a plain request.
    seen = set()
    for rule, method, url in _urls(fuzz_app, booking_id):
        if (method, url) in seen or url.endswith("/logout"):
            continue
        seen.add((method, url))
        _check(lambda: client.open(url, method=method), f"{method} {url[:120]!r} ({rule})", failures)
    # 2. Every parameter and field hostile at once (query and form), on every route with real path values.
    routes = sorted({(rule, method, url) for rule, method, url in _urls(fuzz_app, booking_id)
                     if url == _first_url(rule, fuzz_app, booking_id)})
    for value in HOSTILE + RAW_ESCAPES:
        query = _query(value, names)
        for rule, method, url in routes:
            if url.endswith("/logout"):
                continue
            kwargs = {}
            if method != "GET":
                kwargs = {"data": query, "content_type": "application/x-www-form-urlencoded"}
            _check(lambda: client.open(f"{url}?{query}", method=method, **kwargs),
                   f"{method} {rule} with every parameter = {value[:40]!r}", failures)
    # 3. Every header we read hostile at once (Host separately: an untrusted one is refused). Headers
    # do not depend on the role: the anonymous visitor and a member cover them.
    for value in HOSTILE + RAW_ESCAPES if role in ("anonymous", "member") else ():
        if "\r" in value or "\n" in value:
            continue  # a server refuses a header value with a line break before any app sees it
        headers = {name: _header_value(value) for name in HEADERS}
        for rule, method, url in routes:
            if url.endswith("/logout"):
                continue
            _check(lambda: client.open(url, method=method, headers=headers), f"{method} {rule} with headers = {value[:40]!r}",
                   failures)
        _check(lambda: client.get("/", headers={"Host": _header_value(value) or "x"}), f"Host: {value[:40]!r}", failures)
    assert not failures, f"{len(failures)} server errors:\n" + "\n".join(failures[:60])


def _first_url(rule: str, app, booking_id: int) -> str:
    values = _path_values(app, booking_id)
    url = rule
    for match in re.finditer(r"<(?:([^:<>]+):)?(\w+)>", rule):
        converter = match.group(1) or "default"
        kind = "int" if converter == "int" else "path" if converter == "path" else "default"
        url = url.replace(match.group(0), values[kind][0])
    return url


def test_htmx_fragment_requests_survive_hostile_values_too(fuzz_app, demo):
    """The same pages asked for as fragments (another template path): the member's view."""
    client = fuzz_app.test_client()
    Browser(client).login(ROLES["member"])
    failures: list[str] = []
    for value in HOSTILE:
        query = _query(value, PARAMETERS)
        for path in ("/", "/trainers", "/trainers/maya-chen", "/trainers/maya-chen/reviews", "/notifications/",
                     "/dashboard/", "/dashboard/payments", "/dashboard/sessions"):
            _check(lambda: client.get(f"{path}?{query}", headers=HTMX), f"GET {path} (htmx) = {value[:40]!r}", failures)
    assert not failures, "\n".join(failures)
