"""Google Calendar: the account page (connect, choose calendars, disconnect), the OAuth callback
and the push-notification webhook. Everything 404s while the integration is not configured."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, request, session, url_for
from flask_login import current_user, login_required

from ..extensions import csrf, db
from ..models import ConnectionStatus
from ..services import google_calendar
from ..services.booking import BookingError
from .htmx import render, see_other

bp = Blueprint("google", __name__)
FLOW_KEY = "google_oauth"  # state and PKCE verifier between the redirect to Google and its answer


@bp.app_context_processor
def inject_google_state():
    def google_calendar_connection():
        """None: the feature is off; False: not connected; else the connection."""
        if not (current_user.is_authenticated and google_calendar.configured()):
            return None
        return google_calendar.connection_of(current_user.id) or False

    return {"google_calendar_connection": google_calendar_connection}


@bp.before_request
def configured_only():
    if not google_calendar.configured():
        abort(404)


def _redirect_uri() -> str:
    return current_app.config["GOOGLE_REDIRECT_URI"] or url_for("google.callback", _external=True)


def _page(status: int = 200, error: str | None = None):
    connection = google_calendar.connection_of(current_user.id)
    return render("pages/google_calendar.html", "pages/google_calendar.html", status=status, connection=connection,
                  revoked=connection is not None and connection.status is ConnectionStatus.REVOKED,
                  is_trainer=current_user.trainer_profile is not None, error=error)


@bp.get("/account/google")
@login_required
def account():
    return _page()


@bp.get("/account/google/connect")
@login_required
def connect():
    """A link, not a form: the redirect to Google must not follow a form post (CSP form-action)."""
    url, state, verifier = google_calendar.authorization_url(_redirect_uri())
    session[FLOW_KEY] = {"state": state, "verifier": verifier}
    return see_other(url)


@bp.get("/account/google/callback")
@login_required
def callback():
    flow = session.pop(FLOW_KEY, None)
    if flow is None or request.args.get("state") != flow["state"]:
        abort(400, "This Google sign-in link has expired or was not started here. Please connect again.")
    if request.args.get("error") or not request.args.get("code"):
        flash("Google Calendar was not connected: access was not allowed.", "error")
        return see_other(url_for("google.account"))
    try:
        google_calendar.connect(current_user, request.args["code"], flow["verifier"], _redirect_uri())
    except BookingError as error:
        flash(str(error), "error")
        return see_other(url_for("google.account"))
    flash("Google Calendar connected.", "success")
    return see_other(url_for("google.account"))


@bp.post("/account/google")
@login_required
def choose():
    connection = google_calendar.connection_of(current_user.id)
    if connection is None or connection.status is not ConnectionStatus.ACTIVE:
        return see_other(url_for("google.account"))
    try:
        google_calendar.choose(connection, request.form.getlist("busy"), request.form.get("target", ""))
    except BookingError as error:
        db.session.rollback()
        return _page(422, str(error))
    flash("Calendar choices saved.", "success")
    return see_other(url_for("google.account"))


@bp.post("/account/google/disconnect")
@login_required
def disconnect():
    if google_calendar.disconnect(current_user):
        flash("Google Calendar disconnected; FitTribe's access is revoked.", "success")
    else:
        flash("Google Calendar disconnected here, but Google could not be reached to revoke the access: remove "
              "FitTribe in your Google account's security settings.", "error")
    return see_other(url_for("google.account"))


@bp.post("/webhooks/google/calendar")
@csrf.exempt  # authenticated by the channel's secret token, not a session
def notification():
    headers = request.headers
    try:
        google_calendar.handle_notification(headers.get("X-Goog-Channel-ID"), headers.get("X-Goog-Channel-Token"),
                                            headers.get("X-Goog-Resource-State"))
    except google_calendar.NotificationRefused:
        db.session.rollback()
        abort(403, "Unknown channel or wrong channel token.")
    return "", 204
