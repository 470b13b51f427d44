from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Enum, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .users import utcnow


class BookingStatus(str, enum.Enum):
    HELD = "held"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    EXPIRED = "expired"


# Statuses that occupy the trainer's time (the exclusion constraint covers exactly these).
ACTIVE_STATUSES = (BookingStatus.HELD, BookingStatus.CONFIRMED)


class Booking(db.Model):
    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(primary_key=True)
    trainer_id: Mapped[int] = mapped_column(ForeignKey("trainer_profiles.id", ondelete="RESTRICT"))
    member_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[BookingStatus] = mapped_column(
        Enum(BookingStatus, name="booking_status", values_callable=lambda e: [m.value for m in e]),
        default=BookingStatus.HELD)
    hold_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    price_cents: Mapped[int]
    meeting_url: Mapped[str | None] = mapped_column(String(300))
    currency: Mapped[str] = mapped_column(String(3))
    # The provider's checkout (e.g. Stripe Checkout Session id), so an abandoned one can be expired.
    checkout_ref: Mapped[str | None] = mapped_column(String(120))
    # The video meeting: provider id (Zoom meeting id; None for Jitsi) and failed attempts so far.
    meeting_ref: Mapped[str | None] = mapped_column(String(120))
    meeting_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_24h_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_15m_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the trainer opened the meeting link (the session shows "live now" from then).
    trainer_joined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())

    trainer = relationship("TrainerProfile")
    member = relationship("User", foreign_keys=[member_id])
    review = relationship("Review", uselist=False, viewonly=True)

    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        Index("ix_bookings_trainer_starts", "trainer_id", "starts_at"),
        Index("ix_bookings_member_status", "member_id", "status"),
        Index("ix_bookings_status_created", "status", "created_at"),  # admin analytics by period
    )
