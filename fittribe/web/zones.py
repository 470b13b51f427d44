"""The time-zone switcher: which clock the site shows times on, and changing it (works without JS).

A visitor's clock is a cookie: the browser's zone, written by static/js/live.js, or one picked
here, which live.js then leaves alone (ZONE_PICKED_COOKIE). A member's is their account's; picking
one here saves it there, and in the cookie too, so this device keeps it after logging out."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, flash, g, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField

from ..realtime.live import ZONE_COOKIE, ZONE_PICKED_COOKIE, ZONE_TOLD_COOKIE
from ..services import accounts
from ..services.time_zones import zone_name
from .forms import TimeZoneField
from .htmx import render, see_other
from .params import safe_next

bp = Blueprint("zones", __name__)
COOKIE_SECONDS = 365 * 24 * 3600


class ZoneForm(FlaskForm):
    zone = TimeZoneField("Show times in")
    next = HiddenField()


class VisitorZoneForm(ZoneForm):
    # Not logged in: "" hands the clock back to the browser (JS), or the trainers' (no JS).
    zone = TimeZoneField("Show times in", automatic="Automatic: this browser's time zone")


@bp.route("/time-zone", methods=["GET", "POST"])
def pick():
    back = safe_next(request.form.get("next") or request.args.get("next"), url_for("public.home"))
    form_class = ZoneForm if current_user.is_authenticated else VisitorZoneForm
    form = form_class(zone=current_user.time_zone or "", next=back)
    if form.validate_on_submit():
        zone = form.zone.data
        if current_user.is_authenticated:
            accounts.set_time_zone(current_user, zone)  # the validator let only real zones through
        flash(f"Times are now shown in {zone_name(zone)}, your time." if zone else
              "Times now follow this browser's time zone (without JavaScript, each trainer's).", "success")
        return remember_zone(see_other(back), zone)
    return render("pages/time_zone.html", "partials/time_zone_form.html", status=422 if form.errors else 200,
                  form=form, back=back)


def remember_zone(response: Response, zone: str) -> Response:
    """The clock in this browser's cookies: long-lived, sent on same-site requests only, readable
    by live.js (it must see the pick to leave it alone; a zone name is no secret). "" forgets it."""
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    if not zone:
        for name in (ZONE_COOKIE, ZONE_PICKED_COOKIE):
            response.delete_cookie(name, samesite="Lax", secure=secure)
        return response
    for name, value in ((ZONE_COOKIE, zone), (ZONE_PICKED_COOKIE, "1")):
        response.set_cookie(name, value, max_age=COOKIE_SECONDS, samesite="Lax", secure=secure)
    return response


def zone_notice_due() -> bool:
    """A visitor whose clock the site does not know yet is told once (base.html, shown only
    without JS: with it, live.js tells the site at once) that times are on the trainers' clocks."""
    due = (not current_user.is_authenticated and current_user.time_zone is None
           and ZONE_TOLD_COOKIE not in request.cookies and request.endpoint != "zones.pick")
    if due:
        g.zone_notice_shown = True
    return due


def mark_zone_notice_shown(response: Response) -> Response:
    if g.get("zone_notice_shown"):
        response.set_cookie(ZONE_TOLD_COOKIE, "1", max_age=COOKIE_SECONDS, samesite="Lax",
                            secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True)
    return response


def switcher_link() -> str:
    """The switcher, coming back to this page afterwards (only a GET page can be come back to)."""
    here = request.full_path.rstrip("?") if request.method == "GET" and request.endpoint != "zones.pick" else None
    return url_for("zones.pick", next=here)
