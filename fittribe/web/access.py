"""Authorization helpers shared by the blueprints."""
from __future__ import annotations

from functools import wraps

from flask import abort, current_app
from flask_limiter.util import get_remote_address
from flask_login import AnonymousUserMixin, current_user, login_required

from ..extensions import limiter
from ..models import Role


def role_required(*roles: Role):
    """Logged-in users with one of `roles`; others get 403 (anonymous users go to log in)."""
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not current_user.has_role(*roles):
                abort(403)
            return view(*args, **kwargs)
        return wrapped
    return decorator


def _member_key() -> str:
    return f"user:{current_user.id}" if current_user.is_authenticated else f"ip:{get_remote_address()}"


def booking_limits(view):
    """Booking actions (hold, pay, cancel, move, no-show) are limited per member, so members
    behind one NAT or proxy do not share a budget, and per address only as a coarse flood guard."""
    per_member = limiter.limit(lambda: current_app.config["RATELIMIT_BOOKING"], key_func=_member_key,
                               methods=["POST"])
    per_address = limiter.limit(lambda: current_app.config["RATELIMIT_BOOKING_PER_ADDRESS"], methods=["POST"])
    return per_address(per_member(view))


class Visitor(AnonymousUserMixin):
    """Someone not logged in. Their clock is the browser's (a cookie static/js/live.js sets);
    None until it is known, and pages then show the trainer's, labelled as such."""
    role = None

    @property
    def time_zone(self) -> str | None:
        from ..realtime.live import browser_zone

        return browser_zone()

    def has_role(self, *roles) -> bool:
        return False
