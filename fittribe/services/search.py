"""Trainer search: filters, ranking and pagination over approved trainers."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.orm import joinedload, selectinload

from ..extensions import db
from ..models import Specialty, TrainerLanguage, TrainerProfile, trainer_specialties
from ..models.trainers import PRIOR_MEAN, PRIOR_WEIGHT, bayesian_rating  # noqa: F401 (re-exported)

SORTS = {
    "rating": "Top rated",
    "price_asc": "Price: low to high",
    "price_desc": "Price: high to low",
    "available": "Soonest available",
}

# Languages trainers can coach in (ISO 639-1), with names for the filter.
LANGUAGES = {
    "en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "pl": "Polish", "sv": "Swedish", "ja": "Japanese",
    "zh": "Chinese", "hi": "Hindi", "ar": "Arabic", "ru": "Russian", "ko": "Korean",
}


@dataclass(frozen=True)
class SearchFilters:
    text: str = ""
    specialty: str | None = None
    min_price_cents: int | None = None
    max_price_cents: int | None = None
    min_rating: Decimal | None = None
    language: str | None = None
    sort: str = "rating"
    page: int = 1


def _listed() -> Select:
    from ..models import User

    # Every profile has exactly one user (user_id NOT NULL, foreign key) and is_suspended is NOT
    # NULL, so "the user is not suspended" is "no suspended user owns it": an anti-join against
    # the handful of suspended users (ix_users_is_suspended) instead of joining all users.
    suspended_owner = exists().where(User.id == TrainerProfile.user_id, User.is_suspended.is_(True))
    return select(TrainerProfile).where(TrainerProfile.is_approved.is_(True), ~suspended_owner)


def listed_trainers() -> Select:
    """Approved trainers whose account is in good standing: the only ones shown publicly."""
    return _listed().options(selectinload(TrainerProfile.specialties), selectinload(TrainerProfile.language_rows))


def search_trainers(filters: SearchFilters, per_page: int) -> Pagination:
    # One statement for the page and its cards' specialties and languages: SQLAlchemy pages the
    # trainers in a subquery (which still walks the rank index) and joins the few chips to those
    # rows, instead of two more selectin round trips. (db.paginate counts without the joins.)
    query = _listed().options(joinedload(TrainerProfile.specialties), joinedload(TrainerProfile.language_rows))
    conditions = []
    if filters.text:
        conditions.append(or_(TrainerProfile.display_name.icontains(filters.text, autoescape=True),
                              TrainerProfile.headline.icontains(filters.text, autoescape=True)))
    if filters.specialty:
        conditions.append(exists().where(
            trainer_specialties.c.trainer_id == TrainerProfile.id,
            trainer_specialties.c.specialty_id == Specialty.id,
            Specialty.slug == filters.specialty,
        ))
    if filters.min_price_cents is not None:
        conditions.append(TrainerProfile.price_cents >= filters.min_price_cents)
    if filters.max_price_cents is not None:
        conditions.append(TrainerProfile.price_cents <= filters.max_price_cents)
    if filters.min_rating is not None:
        conditions.append(and_(TrainerProfile.rating_count > 0, TrainerProfile.rating_avg >= filters.min_rating))
    if filters.language:
        conditions.append(exists().where(TrainerLanguage.trainer_id == TrainerProfile.id,
                                         TrainerLanguage.code == filters.language))
    if conditions:
        query = query.where(*conditions)
    query = query.order_by(*_ordering(filters.sort), TrainerProfile.id)
    return db.paginate(query, page=filters.page, per_page=per_page, error_out=False, max_per_page=per_page)


def _ordering(sort: str) -> list:
    if sort == "price_asc":
        return [TrainerProfile.price_cents.asc()]
    if sort == "price_desc":
        return [TrainerProfile.price_cents.desc()]
    if sort == "available":
        # Walks ix_trainer_profiles_next_available (ascending b-tree order puts NULLs last on
        # PostgreSQL); only trainers free at the same moment are sorted, by rank. Nothing free
        # (NULL) goes last.
        return [TrainerProfile.next_available_at.asc().nulls_last(), bayesian_rating().desc()]
    return [bayesian_rating().desc()]


def top_trainers(limit: int) -> list[TrainerProfile]:
    return list(db.session.scalars(listed_trainers().order_by(bayesian_rating().desc(), TrainerProfile.id).limit(limit)))


def all_specialties() -> list[Specialty]:
    return list(db.session.scalars(select(Specialty).order_by(Specialty.name)))


def find_listed_trainer(slug: str) -> TrainerProfile | None:
    return db.session.scalar(listed_trainers().where(TrainerProfile.slug == slug))
