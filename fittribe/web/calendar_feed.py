"""The private calendar feed: a secret URL a calendar app (Google, Apple, Outlook) subscribes to,
and the account page that makes, replaces and turns off that URL."""
from __future__ import annotations

import hashlib

from flask import Blueprint, Response, flash, request, url_for
from flask_login import current_user, login_required

from .. import ratelimits
from ..extensions import csrf
from ..services import calendar as calendar_service
from ..services.links import site_url
from .htmx import render, see_other

bp = Blueprint("calendar_feed", __name__)

# Calendar apps poll about hourly. Per feed that is far below 10 a minute; per IP it is generous
# because Google and Apple fetch every subscriber's feed from a few shared addresses.
FEED_LIMIT_PER_TOKEN = "10 per minute"
FEED_LIMIT_PER_IP = "300 per minute"


def _allow_fetch(token: str) -> bool:
    """Hit the limits directly so a refusal is a plain-text 429 rather than the HTML error page,
    which would put a CSRF token in a new session cookie."""
    # Counted under a hash: the secret itself stays out of Redis key names.
    hashed = hashlib.sha256(token.encode()).hexdigest()[:32]
    return (ratelimits.hit(FEED_LIMIT_PER_IP, "calendar-feed", "ip", request.remote_addr or "")
            and ratelimits.hit(FEED_LIMIT_PER_TOKEN, "calendar-feed", "token", hashed))


def _plain(status: int, text: str, headers: dict | None = None) -> Response:
    return Response(text, status=status, mimetype="text/plain", headers=headers)


@bp.get("/calendar/<token>.ics")
@csrf.exempt  # no session and no form: the token in the URL is the credential
def feed(token: str):
    if not _allow_fetch(token):
        return _plain(429, "Too many requests for this calendar feed. Try again in a minute.", {"Retry-After": "60"})
    user = calendar_service.user_for_feed_token(token)
    if user is None:
        return _plain(404, "No calendar feed at this address. It may have been turned off or replaced.")
    return Response(calendar_service.feed_ics(user), mimetype="text/calendar",
                    headers={"Cache-Control": "private, no-store",  # the URL is a secret: keep it out of shared caches
                             "X-Robots-Tag": "noindex",
                             "Content-Disposition": 'inline; filename="fittribe-sessions.ics"'})


def _page(confirm: str | None = None):
    token = current_user.calendar_token
    feed_url = site_url(url_for("calendar_feed.feed", token=token)) if token else None
    webcal_url = "webcal://" + feed_url.split("://", 1)[1] if feed_url else None
    return render("pages/calendar_feed.html", "pages/calendar_feed.html",
                  feed_url=feed_url, webcal_url=webcal_url, confirm=confirm,
                  feed_past_days=calendar_service.FEED_PAST.days)


@bp.get("/account/calendar")
@login_required
def account():
    return _page()


# Replacing or turning off the link breaks every calendar subscribed to it, so both ask first:
# the first POST shows a confirmation (works without JS), the second carries confirm=yes.

@bp.post("/account/calendar/link")
@login_required
def issue_link():
    replacing = current_user.calendar_token is not None
    if replacing and request.form.get("confirm") != "yes":
        return _page(confirm="new")
    calendar_service.issue_feed_token(current_user)
    flash("Your new calendar link is ready. Calendars that used the old link stop updating."
          if replacing else "Your calendar link is ready. Add it to your calendar app below.", "success")
    return see_other(url_for("calendar_feed.account"))


@bp.post("/account/calendar/off")
@login_required
def revoke_link():
    if current_user.calendar_token is None:
        return see_other(url_for("calendar_feed.account"))
    if request.form.get("confirm") != "yes":
        return _page(confirm="off")
    calendar_service.revoke_feed_token(current_user)
    flash("Your calendar feed is off. Calendars subscribed to it stop updating.", "success")
    return see_other(url_for("calendar_feed.account"))
