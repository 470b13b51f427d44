"""Admins find accounts and suspend or reactivate them, each action in the audit log.

A suspended account cannot log in, its open sessions end (fittribe/__init__.py's user loader),
and a suspended trainer disappears from search and profiles at once (services/search.py)."""
from __future__ import annotations

from sqlalchemy import func, or_, select

from ..extensions import db
from ..models import Role, User
from . import audit
from .accounts import revoke_sessions
from .notify import notify

PAGE_SIZE = 25


class AdminActionError(ValueError):
    """The action is not allowed; the message says why."""


def find_users(text: str = "", role: Role | None = None, suspended_only: bool = False, page: int = 1):
    query = select(User).order_by(User.created_at.desc(), User.id.desc())
    if text:
        pattern = f"%{text.strip().lower()}%"
        query = query.where(or_(func.lower(User.email).like(pattern), func.lower(User.name).like(pattern)))
    if role is not None:
        query = query.where(User.role == role)
    if suspended_only:
        query = query.where(User.is_suspended.is_(True))
    return db.paginate(query, page=page, per_page=PAGE_SIZE, error_out=False)


def suspend(user: User, actor: User, reason: str) -> None:
    reason = (reason or "").strip()
    if not reason:
        raise AdminActionError("Give a reason: it is kept in the audit log.")
    if user.id == actor.id:
        raise AdminActionError("You can't suspend your own account.")
    if user.is_suspended:
        raise AdminActionError(f"{user.name} is already suspended.")
    user.is_suspended = True
    audit.record(actor, "suspend", "user", user.id, reason)
    revoke_sessions(user)


def reactivate(user: User, actor: User) -> None:
    if not user.is_suspended:
        raise AdminActionError(f"{user.name} is not suspended.")
    user.is_suspended = False
    audit.record(actor, "reactivate", "user", user.id)
    notify(user.id, "account", "Your account is active again. Welcome back!", "/dashboard/")
    db.session.commit()
