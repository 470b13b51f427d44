"""Sign-up, log-in checks and password resets."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from flask import current_app, render_template, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from slugify import slugify
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..models import Role, TrainerProfile, User
from ..realtime.channels import user_channel
from ..realtime.hub import sse
from . import analytics, time_zones
from .links import site_url
from .mailer import send_mail

RESET_SALT = "password-reset"


@cache
def _dummy_password_hash() -> str:
    # Checked against when the email is unknown, so response time doesn't reveal accounts.
    return generate_password_hash("not-a-real-password", method="scrypt")


class AccountError(ValueError):
    """A rule was broken; `field` names the form field the message belongs to."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SignUp:
    email: str
    password: str
    name: str
    role: Role
    time_zone: str = "UTC"


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def register(data: SignUp) -> User:
    """Create a member or trainer account (trainers start unapproved). Admins are never
    created through sign-up."""
    if data.role not in (Role.MEMBER, Role.TRAINER):
        raise AccountError("role", "Choose member or trainer.")
    if not time_zones.is_zone(data.time_zone):
        raise AccountError("time_zone", "Choose a time zone from the list.")
    email = normalise_email(data.email)
    if find_user_by_email(email) is not None:
        raise AccountError("email", "An account with this email already exists. Log in or reset your password.")
    user = User(email=email, name=data.name.strip(), role=data.role, time_zone=data.time_zone)
    user.set_password(data.password)
    db.session.add(user)
    if data.role is Role.TRAINER:
        db.session.add(TrainerProfile(user=user, display_name=user.name, slug=unique_trainer_slug(user.name),
                                      time_zone=data.time_zone))
    analytics.announce_changed()  # a sign-up: the admins' new-user figures change
    db.session.commit()
    return user


def set_time_zone(user: User, zone: str) -> None:
    """The clock every time is shown on for this account (a trainer's profile keeps its own zone:
    where she works, which lays out her weekly hours)."""
    if not time_zones.is_zone(zone):
        raise AccountError("zone", "Choose a time zone from the list.")
    user.time_zone = zone
    db.session.commit()


def unique_trainer_slug(name: str) -> str:
    base = slugify(name, max_length=60) or "trainer"
    taken = set(db.session.scalars(
        select(TrainerProfile.slug).where(TrainerProfile.slug.like(f"{base}%"))
    ))
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def authenticate(email: str, password: str) -> User | None:
    """The user when email and password match and the account is not suspended."""
    user = find_user_by_email(email)
    if user is None:
        check_password_hash(_dummy_password_hash(), password)
        return None
    if not user.check_password(password):
        return None
    return user


def _reset_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=RESET_SALT)


def make_reset_token(user: User) -> str:
    # Part of the current hash goes in, so the token dies once the password changes.
    return _reset_serializer().dumps({"uid": user.id, "pw": user.password_hash[-16:]})


RESET_QUEUE = "fittribe:mail:password-reset"


def request_password_reset(email: str) -> None:
    """Queue a reset mail for the worker, the same for every address: whether an account uses it,
    and the time a mail takes to send, must not show in the answer (timing would reveal which
    emails have accounts). Without Redis (fallback mode) it is sent at once."""
    from ..realtime.connection import redis_client

    client = redis_client()
    if client is None:
        send_reset_mail(email)
    else:
        client.rpush(RESET_QUEUE, normalise_email(email)[:254])


def send_queued_reset_mails(batch_size: int = 50) -> int:
    """The worker's part: mail a reset link to each queued address that has an active account."""
    from ..realtime.connection import redis_client

    client = redis_client()
    sent = 0
    for _ in range(batch_size):
        email = client.lpop(RESET_QUEUE) if client is not None else None
        if email is None:
            break
        sent += send_reset_mail(email.decode() if isinstance(email, bytes) else email)
    return sent


def send_reset_mail(email: str) -> bool:
    user = find_user_by_email(email)
    if user is None or not user.is_active:
        return False
    with current_app.test_request_context():  # url_for outside a request; the link's host is SITE_URL's
        link = site_url(url_for("auth.reset_password", token=make_reset_token(user)))
    minutes = current_app.config["PASSWORD_RESET_MAX_AGE"] // 60
    send_mail(user.email, "Reset your FitTribe password",
              render_template("mail/password_reset.txt", user=user, link=link, minutes=minutes))
    return True


def user_for_reset_token(token: str) -> User | None:
    try:
        data = _reset_serializer().loads(token, max_age=current_app.config["PASSWORD_RESET_MAX_AGE"])
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(data, dict):
        return None
    user = db.session.get(User, data.get("uid")) if isinstance(data.get("uid"), int) else None
    if user is None or user.password_hash[-16:] != data.get("pw") or not user.is_active:
        return None
    return user


def reset_password(user: User, new_password: str) -> None:
    user.set_password(new_password)
    revoke_sessions(user)  # whoever knew the old password may be logged in somewhere


def user_for_session(user_id: int, version: int) -> User | None:
    """The user a login cookie (session or remember) names, if it is still valid: made with the
    user's current session version, and the account not suspended."""
    user = db.session.get(User, user_id)
    if user is None or user.session_version != version or not user.is_active:
        return None
    return user


def revoke_sessions(user: User) -> None:
    """End every session and remember cookie of `user`, on every device (logout, password reset,
    suspension, "log out everywhere"): the version their cookies carry stops matching. Commits the
    caller's transaction with it. A per-user version rather than server-side sessions: the check
    rides on the user row every request loads anyway, and needs no store besides PostgreSQL."""
    user.session_version = User.session_version + 1  # in SQL: two revocations at once both count
    db.session.commit()
    sse.end_streams(user_channel(user.id))

