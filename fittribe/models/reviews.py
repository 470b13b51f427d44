from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, func
from sqlalchemy import text as sql  # (a column below is named `text`)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .users import utcnow


class Review(db.Model):
    """A member's review of one completed booking (at most one per booking); the trainer may
    reply once; admins may hide it (it then leaves the profile and the rating)."""
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="RESTRICT"), unique=True)
    trainer_id: Mapped[int] = mapped_column(ForeignKey("trainer_profiles.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    rating: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hidden_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())

    member = relationship("User", foreign_keys=[member_id])
    trainer = relationship("TrainerProfile")
    flags = relationship("ReviewFlag", back_populates="review", order_by="ReviewFlag.id")

    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_1_to_5"),
        Index("ix_reviews_trainer_visible", "trainer_id", "id", postgresql_where=sql("hidden_at IS NULL")),
    )


class ReviewFlag(db.Model):
    """Someone reported a review; an admin resolves it (hidden, or dismissed)."""
    __tablename__ = "review_flags"

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(500))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(String(20))  # hidden | dismissed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())

    review = relationship("Review", back_populates="flags")
    user = relationship("User")

    __table_args__ = (
        Index("ix_review_flags_review_user", "review_id", "user_id", unique=True),  # one flag per person
        Index("ix_review_flags_open", "created_at", postgresql_where=sql("resolved_at IS NULL")),
    )


class AuditEntry(db.Model):
    """Who did what in moderation (hide/restore/dismiss, approve/reject, suspend/reactivate)."""
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(40))
    target_type: Mapped[str] = mapped_column(String(20))
    target_id: Mapped[int]
    detail: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())

    actor = relationship("User")

    __table_args__ = (Index("ix_audit_log_created_at", "created_at"),)
