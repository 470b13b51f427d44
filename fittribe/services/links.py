"""Absolute links that leave the site (e-mails, calendar files, payment providers' redirects) are
built from the configured SITE_URL, never from the request's Host header: a forged Host would
otherwise put another site's address, with a valid secret in it, into a password-reset mail."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app


def site_url(path: str) -> str:
    """`path` (from url_for, starting with "/") on the configured site."""
    return current_app.config["SITE_URL"].rstrip("/") + path


def site_host() -> str:
    """The site's host name (calendar event UIDs are made unique with it)."""
    return urlsplit(current_app.config["SITE_URL"]).hostname or "localhost"
