from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (JSON, CheckConstraint, Column, DateTime, Float, ForeignKey, Index, Numeric, String,
                        Table, Text, cast, func, literal_column)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .users import utcnow

if TYPE_CHECKING:
    from .users import User

# Bayesian average: every trainer starts with PRIOR_WEIGHT phantom reviews of PRIOR_MEAN
# stars, so one 5★ review does not outrank two hundred 4.9★ ones. The ranking is indexed
# (ix_trainer_profiles_rating_rank below): changing either number needs a migration that
# recreates that index with the new constants.
PRIOR_MEAN = 4.0
PRIOR_WEIGHT = 10

trainer_specialties = Table(
    "trainer_specialties",
    db.metadata,
    Column("trainer_id", ForeignKey("trainer_profiles.id", ondelete="CASCADE"), primary_key=True),
    Column("specialty_id", ForeignKey("specialties.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_trainer_specialties_specialty_id", "specialty_id"),
)


class Specialty(db.Model):
    __tablename__ = "specialties"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(60))

    def __repr__(self) -> str:
        return f"<Specialty {self.slug}>"


class TrainerLanguage(db.Model):
    """A language a trainer coaches in (ISO 639-1 code), one row each so it can be filtered."""
    __tablename__ = "trainer_languages"

    trainer_id: Mapped[int] = mapped_column(ForeignKey("trainer_profiles.id", ondelete="CASCADE"), primary_key=True)
    code: Mapped[str] = mapped_column(String(8), primary_key=True)

    __table_args__ = (Index("ix_trainer_languages_code", "code"),)


class TrainerProfile(db.Model):
    __tablename__ = "trainer_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True, index=True)
    display_name: Mapped[str] = mapped_column(String(80))
    headline: Mapped[str] = mapped_column(String(140), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    photo_url: Mapped[str | None] = mapped_column(String(500))
    # Where services/photos.py stored the photo (to replace or delete it); photo_url is its address.
    photo_key: Mapped[str | None] = mapped_column(String(200))
    intro_video_url: Mapped[str | None] = mapped_column(String(300))
    credentials: Mapped[str] = mapped_column(Text, default="", server_default="")
    price_cents: Mapped[int] = mapped_column(default=5000)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    # Minutes; the booking issue turns these into priced session types.
    session_lengths: Mapped[list[int]] = mapped_column(JSON, default=lambda: [60])
    # Booking rules (minutes / days), read by the slot engine.
    buffer_before_minutes: Mapped[int] = mapped_column(default=0, server_default="0")
    buffer_after_minutes: Mapped[int] = mapped_column(default=15, server_default="15")
    min_notice_minutes: Mapped[int] = mapped_column(default=120, server_default="120")
    horizon_days: Mapped[int] = mapped_column(default=60, server_default="60")
    years_experience: Mapped[int] = mapped_column(default=0)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    is_approved: Mapped[bool] = mapped_column(default=False, index=True)
    rejection_reason: Mapped[str | None] = mapped_column(String(500))
    # Kept consistent by the reviews service (recomputed in the review's transaction).
    rating_avg: Mapped[Decimal] = mapped_column(Numeric(3, 2), default=Decimal("0"))
    rating_count: Mapped[int] = mapped_column(default=0)
    # Start of the first free slot (kept current by services/booking.py and the worker) for the
    # search's "soonest available" sort; None = nothing free within the horizon.
    next_available_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Stripe Connect account for destination charges (optional).
    stripe_account_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())

    user: Mapped[User] = relationship(back_populates="trainer_profile")
    specialties: Mapped[list[Specialty]] = relationship(secondary=trainer_specialties, order_by=Specialty.name)
    language_rows: Mapped[list[TrainerLanguage]] = relationship(cascade="all, delete-orphan",
                                                                order_by=TrainerLanguage.code)

    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="price_non_negative"),
        CheckConstraint("rating_count >= 0", name="rating_count_non_negative"),
        Index("ix_trainer_profiles_approved_price", "is_approved", "price_cents"),
        Index("ix_trainer_profiles_next_available", "next_available_at", "id"),
    )

    @property
    def languages(self) -> list[str]:
        return [row.code for row in self.language_rows]

    @languages.setter
    def languages(self, codes: list[str]) -> None:
        self.language_rows = [TrainerLanguage(code=code) for code in dict.fromkeys(codes)]

    @property
    def price(self) -> Decimal:
        return Decimal(self.price_cents) / 100

    def __repr__(self) -> str:
        return f"<TrainerProfile {self.slug}>"


def bayesian_rating() -> ColumnElement[float]:
    """(rating_avg × rating_count + PRIOR_MEAN × PRIOR_WEIGHT) / (rating_count + PRIOR_WEIGHT).

    Rendered with the constants inline and a plain `/` so the ORDER BY is exactly the expression
    of ix_trainer_profiles_rating_rank; PostgreSQL then walks that index in rank order
    and stop after one page instead of scoring and sorting every listed trainer. (SQLAlchemy's own
    `/` adds a CAST to the divisor, and bound parameters would not match an index expression.)"""
    avg = cast(TrainerProfile.rating_avg, Float)
    numerator = avg * TrainerProfile.rating_count + literal_column(repr(float(PRIOR_MEAN * PRIOR_WEIGHT)), Float)
    denominator = TrainerProfile.rating_count + literal_column(str(int(PRIOR_WEIGHT)))
    return numerator.self_group().op("/", return_type=Float)(denominator.self_group())


# Search: "Top rated" (the default sort) reads this index in order; ties go to the older profile.
Index("ix_trainer_profiles_rating_rank", bayesian_rating().desc(), TrainerProfile.id)
# pg_trgm: substring search (ILIKE '%…%') on name and headline without a full scan.
for _column in ("display_name", "headline"):
    Index(f"ix_trainer_profiles_{_column}_trgm", getattr(TrainerProfile, _column),
          postgresql_using="gin", postgresql_ops={_column: "gin_trgm_ops"})
del _column
