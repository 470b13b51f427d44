"""Verified reviews, trainer replies, flags and moderation.

Rules:
* only the member of a COMPLETED booking may review it, once, within REVIEW_WINDOW_DAYS of its end;
* the trainer may reply once to each visible review;
* any logged-in user except the author may flag a review, once; every admin is alerted at once;
* admins hide (the review leaves the profile and the rating), restore, or dismiss the flags;
  each action is written to the audit log.

Every change that touches what a profile shows first locks the trainer row (FOR NO KEY UPDATE, as
services/booking.refresh_next_available does), recomputes rating_avg/rating_count over the visible
reviews in the same transaction, and records a named "reviews-changed" event on the trainer's
channel: every open profile of that trainer re-fetches its reviews and rating summary (named, not
out-of-band HTML, because dates are shown on each viewer's clock and the "Report" link depends on
who is looking)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import AuditEntry, Booking, BookingStatus, Review, ReviewFlag, TrainerProfile, User
from ..realtime import live
from . import audit
from .notify import notify, notify_admins

RATING_MIN, RATING_MAX = 1, 5
TEXT_MIN, TEXT_MAX = 10, 2000
REPLY_MIN, REPLY_MAX = 1, 1000
REASON_MIN, REASON_MAX = 3, 500  # flag reasons and moderation notes (ReviewFlag.reason is 500 long)
PAGE_SIZE = 10


class ReviewError(ValueError):
    """A review rule was broken; the message is for people. Subclasses say which kind, so the
    web layer can answer with the fitting status code."""


class NotFound(ReviewError):
    """Nothing this person may see (hidden review, someone else's session…)."""


class NotAllowed(ReviewError):
    """Visible, but not this person's to do (the trainer reviewing their own session…)."""


class Conflict(ReviewError):
    """Not in this state: already reviewed, already replied, session not completed…"""


class Invalid(ReviewError):
    """Bad input (rating or text length)."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _clean(text: str | None, low: int, high: int, what: str) -> str:
    cleaned = (text or "").strip()
    if not low <= len(cleaned) <= high:
        raise Invalid(f"{what} must be {low} to {high} characters long (it is {len(cleaned)}).")
    return cleaned


# --- reading ---------------------------------------------------------------------------
def visible_reviews(trainer_id: int, page: int = 1, per_page: int = PAGE_SIZE) -> Pagination:
    """A trainer's visible reviews, newest first. Ids grow with time, so ordering by id is
    newest first and walks ix_reviews_trainer_visible (trainer_id, id WHERE hidden_at IS NULL)."""
    query = (select(Review).where(Review.trainer_id == trainer_id, Review.hidden_at.is_(None))
             .options(joinedload(Review.member)).order_by(Review.id.desc()))
    return db.paginate(query, page=max(1, page), per_page=per_page, error_out=False)


def review_of(booking: Booking) -> Review | None:
    return db.session.scalar(select(Review).where(Review.booking_id == booking.id))


def closes_at(booking: Booking) -> datetime:
    """When the booking's review window ends."""
    return booking.ends_at + timedelta(days=current_app.config["REVIEW_WINDOW_DAYS"])


def check_can_review(booking: Booking, user: User, now: datetime | None = None) -> None:
    """Raise the ReviewError that stops `user` reviewing `booking` now, if any."""
    now = now or _now()
    if user.id != booking.member_id:
        raise NotAllowed("Only the member who took the session can review it.")
    if review_of(booking) is not None:
        raise Conflict("You already reviewed this session.")
    if booking.status is not BookingStatus.COMPLETED:
        raise Conflict("Only a completed session can be reviewed: come back after it has taken place.")
    if now > closes_at(booking):
        days = current_app.config["REVIEW_WINDOW_DAYS"]
        raise NotAllowed(f"Reviews are open for {days} days after a session; this one's window has closed.")


@dataclass(frozen=True)
class ReviewState:
    """What the booking page shows about reviewing this session to this viewer."""
    review: Review | None
    may_write: bool
    closes_at: datetime


def review_state(booking: Booking, user: User, now: datetime | None = None) -> ReviewState:
    try:
        check_can_review(booking, user, now)
    except ReviewError:
        return ReviewState(review_of(booking), False, closes_at(booking))
    return ReviewState(None, True, closes_at(booking))


# --- the rating, the lock and the announcement ---------------------------------------------
def _locked_trainer(trainer_id: int) -> TrainerProfile:
    """Lock the trainer row for the rest of the transaction: every change to this trainer's
    reviews waits here, so each one recomputes the rating with the previous one committed (two
    concurrent reviews would otherwise both count only themselves). FOR NO KEY UPDATE, as the
    review's own foreign key takes KEY SHARE on this row."""
    return db.session.scalars(select(TrainerProfile).where(TrainerProfile.id == trainer_id)
                              .with_for_update(key_share=True)
                              .execution_options(populate_existing=True)).one()


def recompute_rating(trainer: TrainerProfile) -> None:
    """rating_avg and rating_count over the trainer's visible reviews, in the caller's transaction."""
    db.session.flush()
    average, count = db.session.execute(select(func.avg(Review.rating), func.count(Review.id)).where(
        Review.trainer_id == trainer.id, Review.hidden_at.is_(None))).one()
    trainer.rating_count = count
    trainer.rating_avg = Decimal(str(average or 0)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _announce(trainer: TrainerProfile) -> None:
    """Every open profile of the trainer re-fetches its reviews and rating. (The trainer's dashboard
    is not re-fetched: that would wipe a reply being typed; a notification tells them instead.)"""
    live.announce(live.REVIEWS, trainer.id)


# --- member, trainer, anyone -------------------------------------------------------------
def post_review(booking: Booking, member: User, rating: int, text: str, now: datetime | None = None) -> Review:
    now = now or _now()
    if not isinstance(rating, int) or isinstance(rating, bool) or not RATING_MIN <= rating <= RATING_MAX:
        raise Invalid(f"Choose a rating from {RATING_MIN} to {RATING_MAX} stars.")
    text = _clean(text, TEXT_MIN, TEXT_MAX, "The review")
    # Booking first, then trainer: the order cancelling takes them in, so the two never deadlock.
    db.session.refresh(booking, with_for_update=True)
    trainer = _locked_trainer(booking.trainer_id)
    try:
        check_can_review(booking, member, now)  # after the locks: a double submit finds the first review
    except ReviewError:
        db.session.rollback()
        raise
    review = Review(booking_id=booking.id, trainer_id=trainer.id, member_id=member.id, rating=rating, text=text,
                    created_at=now)
    db.session.add(review)
    try:
        db.session.flush()
    except IntegrityError as error:  # the unique booking_id: a race the lock did not cover
        db.session.rollback()
        raise Conflict("You already reviewed this session.") from error
    recompute_rating(trainer)
    _announce(trainer)
    notify(trainer.user_id, "review", f"{member.name} left a {rating}★ review of your session.", "/dashboard/reviews")
    db.session.commit()
    return review


def reply(review: Review, trainer_user: User, text: str, now: datetime | None = None) -> Review:
    """The trainer answers a review of theirs, once."""
    text = _clean(text, REPLY_MIN, REPLY_MAX, "The reply")
    trainer = _locked_trainer(review.trainer_id)
    db.session.refresh(review)
    try:
        if trainer.user_id != trainer_user.id or review.hidden_at is not None:
            raise NotFound("No such review among yours.")
        if review.reply is not None:
            raise Conflict("You already replied to this review.")
    except ReviewError:
        db.session.rollback()
        raise
    review.reply, review.replied_at = text, now or _now()
    _announce(trainer)
    notify(review.member_id, "review", f"{trainer.display_name} replied to your review.",
           f"/trainers/{trainer.slug}#review-{review.id}")
    db.session.commit()
    return review


def has_flagged(review: Review, user: User) -> bool:
    return db.session.scalar(select(ReviewFlag.id).where(
        ReviewFlag.review_id == review.id, ReviewFlag.user_id == user.id)) is not None


def check_can_flag(review: Review, user: User) -> None:
    if review.hidden_at is not None:
        raise NotFound("This review is no longer shown.")
    if user.id == review.member_id:
        raise NotAllowed("You can't report your own review.")
    if has_flagged(review, user):
        raise Conflict("You already reported this review; an admin will look at it.")


def flag(review: Review, user: User, reason: str) -> ReviewFlag:
    """Report a review; every admin gets an alert on their open pages at once."""
    reason = _clean(reason, REASON_MIN, REASON_MAX, "The reason")
    check_can_flag(review, user)
    report = ReviewFlag(review_id=review.id, user_id=user.id, reason=reason)
    db.session.add(report)
    try:
        db.session.flush()
    except IntegrityError as error:  # one flag per person: the unique index settles a double submit
        db.session.rollback()
        raise Conflict("You already reported this review; an admin will look at it.") from error
    notify_admins("review-flagged", f"{user.name} reported a review of {review.trainer.display_name}: {reason}",
                  f"/admin/reviews#review-{review.id}")
    live.announce(live.MODERATION)
    db.session.commit()
    return report


# --- admins ----------------------------------------------------------------------------
@dataclass
class FlaggedReview:
    review: Review
    flags: list[ReviewFlag] = field(default_factory=list)


def moderation_queue(limit: int = 200) -> list[FlaggedReview]:
    """Open flags grouped by review, the review with the oldest open flag first."""
    flags = db.session.scalars(
        select(ReviewFlag).where(ReviewFlag.resolved_at.is_(None)).order_by(ReviewFlag.created_at, ReviewFlag.id)
        .options(joinedload(ReviewFlag.user), joinedload(ReviewFlag.review).joinedload(Review.trainer),
                 joinedload(ReviewFlag.review).joinedload(Review.member)).limit(limit)).all()
    grouped: dict[int, FlaggedReview] = {}
    for report in flags:
        grouped.setdefault(report.review_id, FlaggedReview(report.review)).flags.append(report)
    return list(grouped.values())


def hidden_reviews(limit: int = 20) -> Sequence[Review]:
    return db.session.scalars(select(Review).where(Review.hidden_at.is_not(None))
                              .options(joinedload(Review.trainer), joinedload(Review.member))
                              .order_by(Review.hidden_at.desc(), Review.id.desc()).limit(limit)).all()


def recent_moderation(limit: int = 20) -> list[tuple[AuditEntry, Review | None]]:
    """The latest review moderation entries of the audit log, each with its review."""
    entries = audit.recent("review", limit)
    reviews = {review.id: review for review in db.session.scalars(
        select(Review).where(Review.id.in_({entry.target_id for entry in entries})).options(joinedload(Review.trainer)))}
    return [(entry, reviews.get(entry.target_id)) for entry in entries]


def _resolve_open_flags(review: Review, resolution: str, now: datetime) -> int:
    result = db.session.execute(update(ReviewFlag).where(
        ReviewFlag.review_id == review.id, ReviewFlag.resolved_at.is_(None)).values(
        resolved_at=now, resolution=resolution))
    return result.rowcount or 0


def hide(review: Review, admin: User, reason: str, now: datetime | None = None) -> None:
    """The review leaves every profile (live) and the trainer's rating; its open flags are resolved."""
    now = now or _now()
    reason = _clean(reason, REASON_MIN, REASON_MAX, "The reason")
    trainer = _locked_trainer(review.trainer_id)
    db.session.refresh(review)
    if review.hidden_at is not None:
        db.session.rollback()
        raise Conflict("This review is already hidden.")
    review.hidden_at = now
    _resolve_open_flags(review, "hidden", now)
    audit.record(admin, "hide", "review", review.id, reason)
    recompute_rating(trainer)
    _announce(trainer)
    live.announce(live.MODERATION)
    db.session.commit()


def restore(review: Review, admin: User, note: str = "") -> None:
    """A hidden review is shown again and counts in the rating again."""
    trainer = _locked_trainer(review.trainer_id)
    db.session.refresh(review)
    if review.hidden_at is None:
        db.session.rollback()
        raise Conflict("This review is not hidden.")
    review.hidden_at = None
    audit.record(admin, "restore", "review", review.id, note.strip() or None)
    recompute_rating(trainer)
    _announce(trainer)
    live.announce(live.MODERATION)
    db.session.commit()


def dismiss_flags(review: Review, admin: User, note: str = "", now: datetime | None = None) -> int:
    """The reports were unfounded: they close and the review stays. Returns how many closed."""
    closed = _resolve_open_flags(review, "dismissed", now or _now())
    if not closed:
        db.session.rollback()
        raise Conflict("This review has no open reports.")
    detail = f"{closed} report{'s' if closed != 1 else ''} dismissed" + (f": {note.strip()}" if note.strip() else "")
    audit.record(admin, "dismiss", "review", review.id, detail)
    live.announce(live.MODERATION)
    db.session.commit()
    return closed


# --- the trainer's own list ------------------------------------------------------------
def trainer_reviews(trainer_id: int, page: int = 1) -> Pagination:
    """What the trainer's dashboard lists: the same visible reviews as the profile."""
    return visible_reviews(trainer_id, page)
