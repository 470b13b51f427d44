from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from flask_login import UserMixin
from sqlalchemy import DateTime, Enum, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db

if TYPE_CHECKING:
    from .trainers import TrainerProfile


class Role(str, enum.Enum):
    MEMBER = "member"
    TRAINER = "trainer"
    ADMIN = "admin"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(80))
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="user_role", values_callable=lambda e: [m.value for m in e]),
        default=Role.MEMBER,
    )
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Indexed for the public listing's anti-join (services/search.py: listed_trainers).
    is_suspended: Mapped[bool] = mapped_column(default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    # Secret of the private calendar feed URL; None = no feed (revoked or never made).
    calendar_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Part of every login cookie (get_id); bumping it (services/accounts.revoke_sessions) ends them all.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    trainer_profile: Mapped[TrainerProfile | None] = relationship(back_populates="user", uselist=False)

    def set_password(self, password: str) -> None:
        # scrypt (Werkzeug's default): memory-hard and salted.
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def get_id(self) -> str:
        """What Flask-Login stores in the session and the remember cookie: id and session version."""
        return f"{self.id}.{self.session_version}"

    @property
    def is_active(self) -> bool:  # Flask-Login refuses to log in inactive users
        return not self.is_suspended

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role.value}>"
