"""Authorization helpers shared by the blueprints."""
from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import AnonymousUserMixin, current_user, login_required

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
