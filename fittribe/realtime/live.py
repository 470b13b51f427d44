"""The live contract: every fragment an open page keeps up to date, declared once.

Services announce a change with `announce(NAME, key)`; templates mark the element with the
`live(NAME, key)` macro (templates/macros.html); the stream delivers it. Two kinds:

- push: each worker's hub renders the fragment once per viewer variant when the event arrives and
  pushes the HTML out of band to every open page of the channel (no page comes back for it).
  Only what is the same for a whole variant may be in it: no CSRF token (pushed forms get theirs
  from the page's meta tag, static/js/live.js), nothing of one user on a shared channel.
- refetch: a named event; each open element re-fetches its own fragment from `endpoint` (for
  fragments that depend on the page's own query, such as the admin's analytics period).

Every fragment also re-fetches itself after a reconnect that could not replay (live.js)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .channels import ADMIN, PUBLIC, trainer_channel, user_channel

PUSH, REFETCH = "push", "refetch"
RESYNC = "live:resync"  # named event: every live element on the page re-fetches itself
ZONE_COOKIE = "tz"  # anonymous visitors' clock: the browser's zone (live.js) or one picked (web/zones.py)
ZONE_PICKED_COOKIE = "tz_picked"  # the zone was picked in the switcher: live.js leaves it alone
ZONE_TOLD_COOKIE = "tz_told"  # a visitor without JS was told once that times are on the trainers' clocks


@dataclass(frozen=True)
class LiveFragment:
    name: str  # the event's name, and the prefix of the element's id
    channel: Callable[[Any], str]  # key -> channel
    partial: str  # the one template for page, htmx response and push
    endpoint: str  # the fragment alone, for re-fetches (url_for endpoint; key passed as `slug` etc.)
    delivery: str = PUSH
    # The render context for one key, for the viewer in `flask_login.current_user` (None: nothing
    # to show, e.g. the trainer was unlisted meanwhile). Imported lazily: services import this module.
    context: str | None = None  # "module:function"
    per_user: bool = False  # the fragment is the channel user's own: rendered for that user
    throttle: str = ""  # re-fetch at most once per this interval (hx-trigger's throttle)
    swap: str = "outerHTML"  # innerHTML keeps the element (and its throttle) in place
    event: str = ""  # the named event, when several fragments re-fetch on one (default: name)
    # "module:function"(key, spans) -> the `data-part` groups of the fragment that a change over
    # those (start, end) times can touch, or None for all. A live push of a change announced with
    # spans then carries only those parts, each swapped by its id (fittribe/realtime/parts.py);
    # replays and re-fetches carry the whole fragment.
    parts: str | None = None

    @property
    def event_name(self) -> str:
        return self.event or self.name

    def element_id(self, key=None) -> str:
        return self.name if key is None or self.channel(key) != PUBLIC else f"{self.name}-{key}"

    def load_context(self, key) -> dict | None:
        return _function(self.context)(key)

    def touched_parts(self, key, spans) -> set[str] | None:
        return _function(self.parts)(key, spans) if self.parts and spans else None


def _function(name: str) -> Callable:
    from importlib import import_module

    module, function = name.split(":")
    return getattr(import_module(f"fittribe.{module}"), function)


FRAGMENTS: dict[str, LiveFragment] = {}


def _declare(fragment: LiveFragment) -> LiveFragment:
    FRAGMENTS[fragment.name] = fragment
    return fragment


# The profile's free times: every day and session length in one push per viewer variant; the
# day and length a page shows are its own, kept outside the pushed element (partials/calendar.html).
CALENDAR = _declare(LiveFragment(
    "availability", trainer_channel, "partials/availability.html", "trainers.availability",
    context="web.trainers:availability_context", parts="web.trainers:availability_parts"))
REVIEWS = _declare(LiveFragment(
    "reviews", trainer_channel, "partials/reviews_push.html", "reviews.section",
    context="web.reviews:reviews_context"))
NEXT_AVAILABLE = _declare(LiveFragment(
    "next-available", lambda trainer_id: PUBLIC, "partials/next_available.html", "trainers.next_available",
    context="web.trainers:next_available_context"))
SESSIONS = _declare(LiveFragment(
    "upcoming", user_channel, "partials/upcoming_sessions.html", "dashboard.sessions",
    context="web.dashboard:sessions_context", per_user=True))
MODERATION = _declare(LiveFragment(
    "review-moderation", lambda _: ADMIN, "partials/review_moderation.html", "admin.reviews",
    delivery=REFETCH))
METRICS = _declare(LiveFragment(
    "analytics-figures", lambda _: ADMIN, "partials/analytics_figures.html", "analytics.figures",
    delivery=REFETCH, throttle="2s", event="metrics-changed", swap="innerHTML"))
CHARTS = _declare(LiveFragment(
    "analytics-charts", lambda _: ADMIN, "partials/analytics_charts.html", "analytics.charts",
    delivery=REFETCH, throttle="5s", event="metrics-changed", swap="innerHTML"))


def announce(fragment: LiveFragment, key=None, spans=()) -> None:
    """Add "this fragment changed" to the caller's transaction (published after its commit).
    `spans`: the (start, end) times the change touched, for fragments pushed in parts."""
    from . import outbox

    if fragment.delivery == PUSH:
        times = [[start.isoformat(), end.isoformat()] for start, end in spans] if fragment.parts else None
        outbox.record(fragment.channel(key), fragment=fragment.name, key=key, spans=times)
    else:
        outbox.record(fragment.channel(key), type=fragment.event_name, data="" if key is None else str(key))


@dataclass(frozen=True)
class Viewer:
    """What a shared fragment may depend on of the person looking at it: signed in or not, the
    role, the clock. Pages with the same Viewer get the same pushed HTML. Stands in for
    flask_login's current_user while a push is rendered, so partials read it as they always do."""
    is_authenticated: bool
    role: Any = None
    time_zone: str | None = None
    id = None
    trainer_profile = None

    @property
    def is_anonymous(self) -> bool:
        return not self.is_authenticated

    @property
    def is_active(self) -> bool:
        return self.is_authenticated

    def has_role(self, *roles) -> bool:
        return self.role in roles

    @classmethod
    def of(cls, user) -> "Viewer":
        """flask_login's user: an account, or a Visitor (no role, the browser's clock)."""
        return cls(user.is_authenticated, user.role, user.time_zone)


def render(fragment: LiveFragment, key, push: bool = True, spans=None) -> str:
    """The fragment for the current viewer (flask_login.current_user). A push carries no CSRF
    token: `csrf_token()` renders empty and live.js fills the page's own in on submit. With
    `spans`, only the parts they touch, each an out-of-band swap by id (realtime/parts.py)."""
    from flask import render_template

    from .parts import out_of_band_parts

    context = fragment.load_context(key)
    if context is None:
        return ""
    if not push:
        return render_template(fragment.partial, **context)
    context = {**context, "push": True, "csrf_token": lambda: ""}
    touched = fragment.touched_parts(key, spans)
    if touched is None:
        return render_template(fragment.partial, **context)
    return out_of_band_parts(render_template(fragment.partial, **context, only_parts=touched))


def render_for(fragment: LiveFragment, key, viewer: Viewer | None, spans=None) -> str:
    """Render a push inside a request context of its own, as `viewer` (or, for a user's own
    fragment, as that user): nothing of the request that happens to run it can leak in."""
    from flask import g

    from ..extensions import db
    from ..models import User

    # `g` belongs to the app context, which a replay shares with its stream request: the
    # request's user is put back afterwards.
    saved = g.pop("_login_user", None)
    try:
        if fragment.per_user:
            user = db.session.get(User, key)
            if user is None or not user.is_active:
                return ""
            g._login_user = user  # what flask_login.current_user returns while rendering
        else:
            g._login_user = viewer or Viewer(False)
        return render(fragment, key, spans=spans)
    finally:
        g.pop("_login_user", None)
        if saved is not None:
            g._login_user = saved


def browser_zone() -> str | None:
    """The time zone the browser reported or its visitor picked (cookie), if it is a real one."""
    from flask import request

    from ..services.time_zones import is_zone

    zone = request.cookies.get(ZONE_COOKIE)
    return zone if is_zone(zone) else None
