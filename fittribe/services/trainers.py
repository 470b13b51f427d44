"""Trainer profiles: editing by the trainer, approval by admins."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from ..extensions import db
from ..models import Specialty, TrainerProfile, User
from . import audit
from .booking import announce_slots_changed
from .notify import notify


@dataclass(frozen=True)
class ProfileUpdate:
    display_name: str
    headline: str
    bio: str
    price: Decimal
    years_experience: int
    specialty_slugs: list[str]
    languages: list[str]
    time_zone: str
    credentials: str = ""
    intro_video_url: str | None = None


def update_profile(trainer: TrainerProfile, data: ProfileUpdate) -> None:
    trainer.display_name = data.display_name.strip()
    trainer.headline = data.headline.strip()
    trainer.bio = data.bio.strip()
    trainer.price_cents = int(data.price * 100)
    trainer.years_experience = data.years_experience
    trainer.specialties = list(db.session.scalars(select(Specialty).where(Specialty.slug.in_(data.specialty_slugs))))
    trainer.languages = data.languages
    if data.time_zone != trainer.time_zone:  # her weekly hours now fall at other instants
        trainer.time_zone = data.time_zone
        announce_slots_changed(trainer.id)
    trainer.credentials = data.credentials
    trainer.intro_video_url = data.intro_video_url or None
    db.session.commit()


def pending_trainers() -> list[TrainerProfile]:
    return list(db.session.scalars(
        select(TrainerProfile).where(TrainerProfile.is_approved.is_(False)).order_by(TrainerProfile.created_at)
    ))


def approve(trainer: TrainerProfile, actor: User) -> None:
    trainer.is_approved = True
    trainer.rejection_reason = None
    audit.record(actor, "approve", "trainer", trainer.id)
    notify(trainer.user_id, "account", "Your profile is approved: members can now find and book you.",
           f"/trainers/{trainer.slug}")
    db.session.commit()


def reject(trainer: TrainerProfile, reason: str, actor: User) -> None:
    trainer.is_approved = False
    trainer.rejection_reason = reason.strip()
    audit.record(actor, "reject", "trainer", trainer.id, trainer.rejection_reason)
    notify(trainer.user_id, "account", f"Your profile was not approved yet: {trainer.rejection_reason}",
           "/dashboard/profile")
    db.session.commit()
