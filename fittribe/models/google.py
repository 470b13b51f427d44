"""Google Calendar connections (services/google_calendar.py): one per user, its push channels, the
busy times read from it, and the state of each booking's event in it."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, DateTime, Enum, ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .users import utcnow


class ConnectionStatus(str, enum.Enum):
    ACTIVE = "active"
    REVOKED = "revoked"  # Google refused the grant: the user must connect again


class GoogleConnection(db.Model):
    __tablename__ = "google_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    account: Mapped[str | None] = mapped_column(String(320))  # the Google account's primary calendar id (its e-mail)
    # The OAuth token (access + refresh token, expiry) as JSON, Fernet-encrypted with GOOGLE_TOKEN_KEYS.
    token_encrypted: Mapped[str] = mapped_column(Text)
    status: Mapped[ConnectionStatus] = mapped_column(
        Enum(ConnectionStatus, name="google_connection_status", values_callable=lambda e: [m.value for m in e]),
        default=ConnectionStatus.ACTIVE)
    calendars: Mapped[list[dict]] = mapped_column(JSON, default=list)  # [{"id", "summary"}] from calendarList
    busy_calendar_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    target_calendar_id: Mapped[str | None] = mapped_column(String(320))
    busy_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())

    user = relationship("User")
    channels: Mapped[list[GoogleWatchChannel]] = relationship(back_populates="connection",
                                                              cascade="all, delete-orphan")


class GoogleWatchChannel(db.Model):
    """A push channel on one busy calendar: Google posts to our webhook when its events change."""
    __tablename__ = "google_watch_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("google_connections.id", ondelete="CASCADE"))
    calendar_id: Mapped[str] = mapped_column(String(320))
    channel_id: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the secret Google echoes in each notification
    resource_id: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    connection: Mapped[GoogleConnection] = relationship(back_populates="channels")

    __table_args__ = (Index("ix_google_watch_channels_expires_at", "expires_at"),
                      Index("ix_google_watch_channels_connection_id", "connection_id"))


class CalendarBusy(db.Model):
    """A busy interval from a trainer's connected calendar; the slot engine treats it like a booking."""
    __tablename__ = "calendar_busy"

    id: Mapped[int] = mapped_column(primary_key=True)
    trainer_id: Mapped[int] = mapped_column(ForeignKey("trainer_profiles.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),
                      Index("ix_calendar_busy_trainer_ends", "trainer_id", "ends_at"))


class GoogleEventSync(db.Model):
    """A booking's event in one person's calendar: what it should be (`wanted`), what Google has
    (`event_id`, times), and whether the two still differ (`pending`, retried by the worker)."""
    __tablename__ = "google_event_syncs"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    present: Mapped[bool] = mapped_column(default=True)  # False: the event should be deleted
    pending: Mapped[bool] = mapped_column(default=True)
    calendar_id: Mapped[str | None] = mapped_column(String(320))
    event_id: Mapped[str | None] = mapped_column(String(200))
    event_starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    event_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")

    booking = relationship("Booking")

    __table_args__ = (UniqueConstraint("booking_id", "user_id"),
                      Index("ix_google_event_syncs_pending", "id", postgresql_where=text("pending")),
                      Index("ix_google_event_syncs_user_id", "user_id"))
