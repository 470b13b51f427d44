"""Sign-up, log-in, roles, password reset, CSRF and rate limits through the Flask test client."""
import re
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fittribe.extensions import db
from fittribe.models import Role, User

from tests.helpers import HTMX, Browser, csrf_token_from, text_of

GOOD_PASSWORD = "correct horse battery"


def signup_data(**overrides):
    data = {"name": "Nora New", "email": "nora@example.com", "password": GOOD_PASSWORD,
            "confirm": GOOD_PASSWORD, "role": "member", "time_zone": "Europe/Berlin"}
    data.update(overrides)
    return data


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(User.id)))


@pytest.mark.parametrize("role", ["member", "trainer"])
def test_signup_creates_account_and_logs_in(app, visitor, role):
    response = visitor.post_form("/signup", signup_data(role=role, email=f"{role}@example.com"))
    assert response.status_code == 303
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == f"{role}@example.com"))
        assert user.role is Role(role)
        assert user.time_zone == "Europe/Berlin"
        assert user.password_hash.startswith("scrypt:") and GOOD_PASSWORD not in user.password_hash
        if role == "trainer":
            assert user.trainer_profile is not None and user.trainer_profile.is_approved is False
            assert response.headers["Location"].endswith("/dashboard/profile")
        else:
            assert user.trainer_profile is None
    dashboard = visitor.get("/dashboard/")
    assert dashboard.status_code == 200
    assert "Nora New" in text_of(dashboard)


def test_signup_cannot_create_admin(app, visitor):
    response = visitor.post_form("/signup", signup_data(role="admin"))
    assert response.status_code == 422
    assert user_count(app) == 0


def test_signup_duplicate_email_is_rejected_case_insensitively(app, visitor, demo):
    before = user_count(app)
    response = visitor.post_form("/signup", signup_data(email="Member@FitTribe.example"))
    assert response.status_code == 422
    assert "already exists" in text_of(response)
    assert user_count(app) == before


@pytest.mark.parametrize("field, value, message", [
    ("email", "not-an-email", "valid email"),
    ("email", "a" * 250 + "@example.com", "at most 254"),
    ("name", "x" * 81, "2 to 80"),
    ("password", "short", "at least 10"),
    ("confirm", "something else entirely", "don't match"),
    ("time_zone", "Mars/Olympus_Mons", "time zone"),
])
def test_signup_bad_input_gives_422_with_field_error_and_stores_nothing(app, visitor, field, value, message):
    data = signup_data(**{field: value})
    if field == "password":
        data["confirm"] = value
    response = visitor.post_form("/signup", data)
    assert response.status_code == 422
    html = text_of(response)
    assert message in html
    assert 'aria-invalid="true"' in html
    assert user_count(app) == 0


def test_signup_htmx_error_returns_form_fragment_only(app, visitor):
    token = csrf_token_from(visitor.get("/signup").get_data(as_text=True))
    response = visitor.client.post("/signup", data={"csrf_token": token, **signup_data(email="bad")}, headers=HTMX)
    assert response.status_code == 422
    html = text_of(response)
    assert html.lstrip().startswith("<form") and "<html" not in html
    assert 'value="Nora New"' in html  # nothing the person typed is lost


def test_signup_htmx_success_redirects_the_browser(app, visitor):
    token = csrf_token_from(visitor.get("/signup").get_data(as_text=True))
    response = visitor.client.post("/signup", data={"csrf_token": token, **signup_data()}, headers=HTMX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/trainers"


@pytest.mark.parametrize("email, role", [("member@fittribe.example", "member"), ("trainer@fittribe.example", "trainer"),
                                         ("admin@fittribe.example", "admin")])
def test_login_per_role_lands_on_their_area(visitor, demo, email, role):
    response = visitor.login(email)
    assert response.headers["Location"] == "/dashboard/"
    dashboard = visitor.get("/dashboard/", follow_redirects=True)
    html = text_of(dashboard)
    expected = {"member": "Upcoming sessions", "trainer": "Your listing", "admin": "Trainer approvals"}[role]
    assert expected in html


def test_login_wrong_password(visitor, demo):
    response = visitor.post_form("/login", {"email": "member@fittribe.example", "password": "wrong-password"})
    assert response.status_code == 422
    assert "don't match" in text_of(response)
    assert visitor.get("/dashboard/").status_code == 302  # still logged out


def test_login_unknown_email_gives_the_same_message(visitor, demo):
    response = visitor.post_form("/login", {"email": "nobody@example.com", "password": "whatever-password"})
    assert response.status_code == 422
    assert "don't match" in text_of(response)


def test_suspended_user_cannot_log_in_and_loses_open_sessions(app, visitor, demo):
    visitor.login("member@fittribe.example")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "member@fittribe.example"))
        user.is_suspended = True
        db.session.commit()
    assert visitor.get("/dashboard/").status_code == 302  # the open session no longer counts
    response = visitor.post_form("/login", {"email": "member@fittribe.example", "password": "fittribe-demo"})
    assert response.status_code == 422
    assert "suspended" in text_of(response)


def test_login_next_parameter_is_only_followed_on_site(visitor, demo):
    response = visitor.post_form("/login?next=/dashboard/profile", {"email": "trainer@fittribe.example",
                                                                    "password": "fittribe-demo"})
    assert response.headers["Location"] == "/dashboard/profile"
    visitor.logout()
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = visitor.post_form(f"/login?next={evil}", {"email": "trainer@fittribe.example",
                                                             "password": "fittribe-demo"})
        assert response.headers["Location"] == "/dashboard/"
        visitor.logout()


def test_remember_me_sets_a_persistent_httponly_cookie(visitor, demo):
    response = visitor.post_form("/login", {"email": "member@fittribe.example", "password": "fittribe-demo",
                                            "remember": "y"})
    cookies = response.headers.getlist("Set-Cookie")
    remember = [c for c in cookies if c.startswith("remember_token=")]
    assert remember and "HttpOnly" in remember[0] and "SameSite=Lax" in remember[0] and "Expires=" in remember[0]
    session_cookie = [c for c in cookies if c.startswith("session=")][0]
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie


def test_logout_needs_post_with_csrf(visitor, demo):
    visitor.login("member@fittribe.example")
    assert visitor.get("/logout").status_code == 405
    assert visitor.client.post("/logout").status_code == 400  # no CSRF token
    assert visitor.get("/dashboard/").status_code == 200
    assert visitor.logout().status_code == 303
    assert visitor.get("/dashboard/").status_code == 302


def test_csrf_missing_or_wrong_token_is_rejected(app, client):
    client.get("/signup")
    for data in (signup_data(), {**signup_data(), "csrf_token": "forged"}):
        response = client.post("/signup", data=data)
        assert response.status_code == 400
        assert "expired or came from another site" in text_of(response)
    assert user_count(app) == 0


def test_csrf_token_in_htmx_header_is_accepted(app, client):
    token = csrf_token_from(client.get("/signup").get_data(as_text=True))
    response = client.post("/signup", data=signup_data(), headers={**HTMX, "X-CSRFToken": token})
    assert response.status_code == 204
    assert user_count(app) == 1


def _last_mail(app) -> EmailMessage:
    files = sorted(Path(app.config["MAIL_OUTBOX_DIR"]).glob("*.eml"))
    assert files, "no mail was written"
    return message_from_bytes(files[-1].read_bytes(), policy=default_policy)


def test_password_reset_flow(app, visitor, demo):
    for old in Path(app.config["MAIL_OUTBOX_DIR"]).glob("*.eml"):
        old.unlink()
    response = visitor.post_form("/password/forgot", {"email": "member@fittribe.example"})
    assert response.status_code == 303
    assert not list(Path(app.config["MAIL_OUTBOX_DIR"]).glob("*.eml"))  # the worker sends it, not the request
    assert _send_queued_resets(app) == 1
    mail = _last_mail(app)
    assert mail["To"] == "member@fittribe.example"
    link = re.search(re.escape(app.config["SITE_URL"]) + r"(/password/reset/\S+)", mail.get_content()).group(1)

    new_password = "a brand new password"
    response = visitor.post_form(link, {"password": new_password, "confirm": new_password})
    assert response.status_code == 303
    assert visitor.post_form("/login", {"email": "member@fittribe.example",
                                        "password": "fittribe-demo"}).status_code == 422
    visitor.login("member@fittribe.example", new_password)
    visitor.logout()
    # The token dies with the old password: using it again fails.
    response = visitor.get(link)
    assert response.status_code == 303 and response.headers["Location"].endswith("/password/forgot")


def test_password_reset_for_unknown_email_says_the_same_and_sends_nothing(app, visitor, demo):
    outbox = Path(app.config["MAIL_OUTBOX_DIR"])
    before = len(list(outbox.glob("*.eml")))
    response = visitor.post_form("/password/forgot", {"email": "nobody@example.com"})
    assert response.status_code == 303
    assert _send_queued_resets(app) == 0
    assert len(list(outbox.glob("*.eml"))) == before


def _send_queued_resets(app) -> int:
    from fittribe.services import accounts

    with app.app_context():
        return accounts.send_queued_reset_mails()


def test_password_reset_token_expires(app, visitor, demo, monkeypatch):
    from fittribe.services import accounts

    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "member@fittribe.example"))
        token = accounts.make_reset_token(user)
        assert accounts.user_for_reset_token(token).id == user.id
        app.config["PASSWORD_RESET_MAX_AGE"] = -1
        try:
            assert accounts.user_for_reset_token(token) is None
        finally:
            app.config["PASSWORD_RESET_MAX_AGE"] = 3600
        assert accounts.user_for_reset_token("garbage.token") is None


def test_login_is_rate_limited(app, visitor, demo):
    statuses = [visitor.post_form("/login", {"email": "member@fittribe.example", "password": "wrong-password"})
                .status_code for _ in range(12)]
    assert statuses[:10] == [422] * 10
    assert statuses[10:] == [429, 429]
    assert visitor.get("/login").status_code == 200  # GETs are not limited


@pytest.fixture
def app_behind_a_proxy(app):
    from fittribe import create_app

    shared = ("SQLALCHEMY_DATABASE_URI", "REDIS_URL", "RATELIMIT_STORAGE_URI", "RATELIMIT_KEY_PREFIX",
              "SSE_CHANNEL_PREFIX", "MAIL_OUTBOX_DIR")
    return create_app("testing", **{key: app.config[key] for key in shared}, TRUSTED_PROXIES=1)


def _wrong_logins_from(visitor, address: str, times: int) -> list[int]:
    visitor.client.environ_base["HTTP_X_FORWARDED_FOR"] = address
    return [visitor.post_form("/login", {"email": "member@fittribe.example", "password": "wrong-password"})
            .status_code for _ in range(times)]


def test_behind_a_proxy_each_visitor_has_their_own_login_limit(app_behind_a_proxy, demo):
    visitor = Browser(app_behind_a_proxy.test_client())
    assert _wrong_logins_from(visitor, "203.0.113.7", 11)[-1] == 429
    assert _wrong_logins_from(visitor, "203.0.113.8", 1) == [422]  # another visitor, same proxy


def test_without_a_trusted_proxy_a_forged_forwarded_for_does_not_dodge_the_limit(app, visitor, demo):
    statuses = [_wrong_logins_from(visitor, f"203.0.113.{n}", 1)[0] for n in range(11)]
    assert statuses[-1] == 429


def test_signup_is_rate_limited(app, visitor):
    statuses = [visitor.post_form("/signup", signup_data(email="bad")).status_code for _ in range(5)]
    page = visitor.post_form("/signup", signup_data(email="bad"))
    assert statuses == [422] * 5
    assert page.status_code == 429
    assert "Slow down" in text_of(page)
    assert page.headers.get("Retry-After")
