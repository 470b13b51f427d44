"""Readable error pages, and the same message as a fragment for htmx requests."""
from __future__ import annotations

from flask import Flask, Response
from flask.globals import request_ctx
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, InternalServerError

from ..extensions import db
from ..services.booking import lost_race
from .htmx import render

MESSAGES = {
    400: ("Something in that request was not right", "Please check what you entered and try again."),
    403: ("You can't open this page", "Your account doesn't have access here. Log in with another account or go back."),
    404: ("We couldn't find that page", "The link may be old or mistyped. Try searching for a trainer instead."),
    405: ("That action isn't allowed here", "Go back and try again from the page's own buttons."),
    413: ("That was too much to send", "Please shorten what you entered and try again."),
    409: ("That can't be done right now", "Things changed since the page was loaded. Reload it and try again."),
    429: ("Slow down a little", "Too many attempts in a short time. Wait a minute, then try again."),
    502: ("A partner service did not answer", "Nothing was charged or changed. Please try again in a moment."),
    503: ("Please try again in a moment", "A service we depend on is busy."),
    500: ("Something went wrong on our side", "We've been told about it. Please try again in a moment."),
}


def render_error(status: int, detail: str | None = None):
    title, hint = MESSAGES.get(status, MESSAGES[400 if status < 500 else 500])
    if request_ctx.url_adapter is None:
        # A Host header the app refuses (untrusted or malformed) leaves no URL adapter, so the
        # page could not build a single link: plain text says the same (without echoing the Host).
        return Response(f"{title}. {hint}\n", status=status, mimetype="text/plain")
    return render("errors/error.html", "partials/error.html", status=status,
                  status_code=status, title=title, hint=hint, detail=detail)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return render_error(400, "Your form expired or came from another site. Reload the page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        # Our own abort(code, "message") texts are for people; Werkzeug's stock ones add nothing.
        detail = error.description if error.description != type(error).description else None
        response = render_error(error.code, detail)
        if isinstance(error, RateLimitExceeded):
            response.headers["Retry-After"] = str(error.limit.limit.get_expiry())
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        db.session.rollback()  # nothing half-written survives a crash
        if isinstance(error, DBAPIError) and lost_race(error):
            # A deadlock or serialization failure: another request changed the same rows first.
            app.logger.warning("Lost a database race: %s", type(error.orig).__name__)
            return render_error(409, "Someone else changed this at the same moment. Reload the page and try again.")
        app.logger.exception("Unhandled error", exc_info=error)
        return render_error(InternalServerError.code)
