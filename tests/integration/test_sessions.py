"""Sessions can be revoked server-side: logout, a password reset, a suspension and "log out
everywhere" end every session cookie and remember cookie of the user, copies included; a revoked
cookie on the event stream is an anonymous visitor; the CSRF token changes at login."""
from __future__ import annotations

import re

import pytest

from tests.helpers import Browser, csrf_token_from

MEMBER = "member@fittribe.example"


def _logged_in(app, remember: bool = False) -> tuple[Browser, dict[str, str]]:
    client = app.test_client()
    browser = Browser(client)
    response = browser.post_form("/login", {"email": MEMBER, "password": "fittribe-demo",
                                            **({"remember": "y"} if remember else {})})
    assert response.status_code == 303
    cookies = {name: client.get_cookie(name).value for name in ("session", "remember_token")
               if client.get_cookie(name) is not None}
    return browser, cookies


def _with_cookies(app, cookies: dict[str, str]):
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client


def _is_logged_in(client) -> bool:
    response = client.get("/dashboard/")
    return response.status_code == 200


def test_a_copied_session_cookie_is_dead_after_logout(app, demo):
    browser, cookies = _logged_in(app)
    assert _is_logged_in(_with_cookies(app, {"session": cookies["session"]}))
    browser.logout()
    assert not _is_logged_in(_with_cookies(app, {"session": cookies["session"]}))


def test_the_remember_cookie_alone_no_longer_logs_in_after_logout(app, demo):
    browser, cookies = _logged_in(app, remember=True)
    assert _is_logged_in(_with_cookies(app, {"remember_token": cookies["remember_token"]}))
    browser.logout()
    assert not _is_logged_in(_with_cookies(app, {"remember_token": cookies["remember_token"]}))


def test_a_password_reset_ends_every_other_session(app, demo):
    from fittribe.extensions import db
    from fittribe.services import accounts

    _, laptop = _logged_in(app, remember=True)
    with app.app_context():
        token = accounts.make_reset_token(accounts.find_user_by_email(MEMBER))
    phone = Browser(app.test_client())
    response = phone.post_form(f"/password/reset/{token}", {"password": "a-brand-new-password",
                                                            "confirm": "a-brand-new-password"})
    assert response.status_code == 303
    assert not _is_logged_in(_with_cookies(app, {"session": laptop["session"]}))
    assert not _is_logged_in(_with_cookies(app, {"remember_token": laptop["remember_token"]}))
    Browser(app.test_client()).login(MEMBER, "a-brand-new-password")  # the new password works
    with app.app_context():
        db.session.remove()


def test_suspension_ends_sessions_and_remember_cookies(app, demo):
    from fittribe.models import User
    from fittribe.extensions import db

    _, member = _logged_in(app, remember=True)
    admin = Browser(app.test_client())
    admin.login("admin@fittribe.example")
    with app.app_context():
        member_id = db.session.scalar(db.select(User.id).where(User.email == MEMBER))
    response = admin.post_form(f"/admin/users/{member_id}/suspend", {"reason": "Fraud"})
    assert response.status_code == 303
    assert not _is_logged_in(_with_cookies(app, {"session": member["session"]}))
    assert not _is_logged_in(_with_cookies(app, {"remember_token": member["remember_token"]}))
    # Reactivated, the old cookies stay dead: only a new login opens the account.
    admin.post_form("/admin/users", {}, post_url=f"/admin/users/{member_id}/reactivate")
    assert not _is_logged_in(_with_cookies(app, member))


def test_log_out_everywhere_asks_first_then_ends_every_session(app, demo):
    browser, laptop = _logged_in(app, remember=True)
    _, phone = _logged_in(app, remember=True)
    page = browser.get("/account/sessions")
    assert page.status_code == 200 and "End every session" in page.get_data(as_text=True)
    # Without the confirmation nothing ends.
    response = browser.post_form("/account/sessions", {})
    assert response.status_code == 200
    assert _is_logged_in(_with_cookies(app, phone))
    response = browser.post_form("/account/sessions", {"confirm": "yes"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/login")
    for cookies in (laptop, phone, {"session": phone["session"]}, {"remember_token": phone["remember_token"]}):
        assert not _is_logged_in(_with_cookies(app, cookies))


def test_the_stream_treats_a_revoked_cookie_as_anonymous(app, demo):
    from fittribe.extensions import db
    from fittribe.models import User

    with app.app_context():
        member_id = db.session.scalar(db.select(User.id).where(User.email == MEMBER))
    browser, cookies = _logged_in(app)
    stale = _with_cookies(app, cookies)
    own_channel = f"/stream?channel=user:{member_id}"
    response = stale.get(own_channel)
    assert response.status_code == 200
    response.close()
    browser.logout()
    response = stale.get(own_channel)
    assert response.status_code == 403  # an anonymous page may not read the user's channel
    response.close()


def test_old_style_cookies_without_a_version_are_refused(app, demo):
    """A session id that is not "<id>.<version>" (hand-made, or from before versions) is anonymous."""
    from fittribe.extensions import login_manager

    with app.test_request_context():
        for value in ("1", "1.", ".0", "1.0.0", "²", "1.²", "99999999999999999999.0", "1.-1", "\x00"):
            assert login_manager._user_callback(value) is None


def test_login_rotates_the_csrf_token(app, demo):
    client = app.test_client()
    before = csrf_token_from(client.get("/login").get_data(as_text=True))
    Browser(client).login(MEMBER)
    after = csrf_token_from(client.get("/dashboard/").get_data(as_text=True))
    assert before != after
    # The token seen before logging in no longer passes for the logged-in session.
    response = client.post("/notifications/read", data={"csrf_token": before})
    assert response.status_code == 400
