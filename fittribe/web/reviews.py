"""Reviews on the site: the profile's reviews section and rating (re-fetched live), writing a
review of a completed session, reporting a review, and the trainer's replies. Rules live in
services/reviews.py; admin moderation is in web/admin_reviews.py."""
from __future__ import annotations

from typing import NoReturn

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_login import current_user, login_required

from ..extensions import db, limiter
from ..models import Booking, Review, Role, TrainerProfile
from ..services import reviews as review_service
from ..services.reviews import ReviewError
from ..services.search import find_listed_trainer
from .access import role_required
from .forms import FlagReviewForm, ReplyForm, ReviewForm
from .htmx import is_partial_request, render, see_other
from .params import int_arg, safe_next
from .trainers import _unlisted_profile_for_owner_or_admin  # the profile's own visibility rule, reused

bp = Blueprint("reviews", __name__)

STATUS_FOR = {review_service.NotFound: 404, review_service.NotAllowed: 403, review_service.Conflict: 409,
              review_service.Invalid: 422}


def abort_for(error: ReviewError) -> NoReturn:
    abort(STATUS_FOR.get(type(error), 400), str(error))


def _limit_posts():
    return limiter.limit(lambda: current_app.config["RATELIMIT_REVIEWS"], methods=["POST"])


def _visible_trainer(slug: str) -> TrainerProfile:
    return find_listed_trainer(slug) or _unlisted_profile_for_owner_or_admin(slug)


# --- the profile's live fragments -----------------------------------------------------------
@bp.get("/trainers/<slug>/reviews")
def section(slug: str):
    """The reviews section alone (re-fetched on "reviews-changed"); without htmx, the profile."""
    trainer = _visible_trainer(slug)
    page = int_arg("page", 1)
    if not is_partial_request():
        return redirect(url_for("trainers.profile", slug=slug, reviews_page=page, _anchor="reviews"))
    return render("partials/reviews.html", "partials/reviews.html", trainer=trainer,
                  reviews=review_service.visible_reviews(trainer.id, page))


def reviews_context(trainer_id: int) -> dict | None:
    """Live fragment "reviews" (rating summary and first page), see realtime/live.py."""
    trainer = db.session.get(TrainerProfile, trainer_id)
    if trainer is None:
        return None
    return {"trainer": trainer, "reviews": review_service.visible_reviews(trainer.id, 1)}


@bp.get("/trainers/<slug>/rating")
def rating(slug: str):
    """The profile header's rating summary alone (re-fetched on "reviews-changed")."""
    trainer = _visible_trainer(slug)
    if not is_partial_request():
        return redirect(url_for("trainers.profile", slug=slug))
    return render("partials/rating_summary.html", "partials/rating_summary.html", trainer=trainer)


# --- writing a review ---------------------------------------------------------------------------
def _booking_seen_by_viewer(booking_id: int) -> Booking:
    """The booking if the viewer may see it (its member, its trainer, an admin); anyone else gets
    a 404, as on the booking page (no IDOR)."""
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        abort(404)
    if current_user.id not in (booking.member_id, booking.trainer.user_id) and not current_user.has_role(Role.ADMIN):
        abort(404)
    return booking


def booking_review_context(booking: Booking) -> dict:
    """What pages/booking.html needs for its review part: the review, or the form while open."""
    return {"review_state": review_service.review_state(booking, current_user), "review_form": ReviewForm(formdata=None)}


@bp.route("/bookings/<int:booking_id>/review", methods=["GET", "POST"])
@_limit_posts()
@login_required
def write(booking_id: int):
    booking = _booking_seen_by_viewer(booking_id)
    try:
        review_service.check_can_review(booking, current_user)
    except ReviewError as error:
        abort_for(error)
    form = ReviewForm()
    if form.validate_on_submit():
        try:
            review = review_service.post_review(booking, current_user, int(form.rating.data), form.text.data)
        except ReviewError as error:
            abort_for(error)
        flash(f"Thank you! Your review is on {booking.trainer.display_name}'s profile.", "success")
        return see_other(url_for("trainers.profile", slug=booking.trainer.slug, _anchor=f"review-{review.id}"))
    return render("pages/review_new.html", "partials/review_form.html", status=422 if form.errors else 200,
                  booking=booking, review_form=form)


# --- reporting a review ----------------------------------------------------------------------
def _shown_review(review_id: int) -> Review:
    """A review shown on a profile this user may see; hidden ones are gone (404)."""
    review = db.session.get(Review, review_id)
    if review is None or review.hidden_at is not None:
        abort(404)
    _visible_trainer(review.trainer.slug)
    return review


@bp.route("/reviews/<int:review_id>/flag", methods=["GET", "POST"])
@_limit_posts()
@login_required
def flag(review_id: int):
    review = _shown_review(review_id)
    try:
        review_service.check_can_flag(review, current_user)
    except ReviewError as error:
        abort_for(error)
    form = FlagReviewForm()
    if form.validate_on_submit():
        try:
            review_service.flag(review, current_user, form.reason.data)
        except ReviewError as error:
            abort_for(error)
        flash("Thank you for the report. An admin will look at this review soon.", "success")
        return see_other(url_for("trainers.profile", slug=review.trainer.slug, _anchor="reviews"))
    return render("pages/review_flag.html", "pages/review_flag.html", status=422 if form.errors else 200,
                  review=review, form=form)


# --- the trainer's reviews and replies -----------------------------------------------------------
def _my_reviews_page(status: int = 200, replying: Review | None = None, reply_form: ReplyForm | None = None,
                     back: str | None = None):
    """The trainer's reviews page; after a refused reply, with its error and the page it came from."""
    trainer = current_user.trainer_profile
    page = int_arg("page", 1)
    return render("pages/my_reviews.html", "partials/my_reviews.html", status=status, trainer=trainer,
                  trainer_reviews=review_service.trainer_reviews(trainer.id, page),
                  replying_id=replying.id if replying else None, reply_form=reply_form, back=back)


@bp.get("/dashboard/reviews")
@role_required(Role.TRAINER)
def mine():
    return _my_reviews_page()


@bp.post("/dashboard/reviews/<int:review_id>/reply")
@_limit_posts()
@role_required(Role.TRAINER)
def reply(review_id: int):
    review = db.session.get(Review, review_id)
    if review is None or review.trainer_id != current_user.trainer_profile.id or review.hidden_at is not None:
        abort(404)
    if review.reply is not None:
        abort(409, "You already replied to this review.")
    form = ReplyForm()
    # Where the no-JS reply form came from: a dashboard page, never another site.
    back = safe_next(request.form.get("back"), url_for("dashboard.home"), prefix="/dashboard/")
    if not form.validate_on_submit():
        if is_partial_request():
            return render("partials/reply_form.html", "partials/reply_form.html", status=422, review=review,
                          replying_id=review.id, reply_form=form, back=back)
        return _my_reviews_page(422, review, form, back)
    try:
        review_service.reply(review, current_user, form.reply.data)
    except ReviewError as error:
        abort_for(error)
    if is_partial_request():  # htmx: the published reply takes the form's place
        return render("partials/review_reply.html", "partials/review_reply.html", review=review)
    flash("Your reply is published under the review.", "success")
    return see_other(back + f"#review-{review.id}")
