"""Review moderation, on the admin blueprint (so its before_request makes every route admin-only):
the queue of flagged reviews, hiding (after a confirm step with a reason), restoring and
dismissing reports. Every action lands in the audit log shown on the queue page."""
from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_login import current_user

from ..extensions import db
from ..models import Review
from ..services import reviews as review_service
from ..services.reviews import ReviewError
from .admin import bp
from .forms import HideReviewForm
from .htmx import render, see_other
from .reviews import abort_for


@bp.get("/reviews")
def reviews():
    """Open reports grouped by review, recently hidden reviews, and the moderation log.
    Re-fetched on "flags-changed" (admin channel) so a new report shows up without a reload."""
    return render("pages/admin_reviews.html", "partials/review_moderation.html",
                  queue=review_service.moderation_queue(), hidden=review_service.hidden_reviews(),
                  log=review_service.recent_moderation())


@bp.route("/reviews/<int:review_id>/hide", methods=["GET", "POST"])
def hide_review(review_id: int):
    """GET: what hiding means, and a reason to confirm with. POST: hide it."""
    review = db.get_or_404(Review, review_id)
    if review.hidden_at is not None:
        abort(409, "This review is already hidden.")
    form = HideReviewForm()
    if form.validate_on_submit():
        try:
            review_service.hide(review, current_user, form.reason.data)
        except ReviewError as error:
            abort_for(error)
        flash(f"The review is hidden from {review.trainer.display_name}'s profile and rating.", "success")
        return see_other(url_for("admin.reviews"))
    return render("pages/admin_review_hide.html", "pages/admin_review_hide.html",
                  status=422 if form.errors else 200, review=review, form=form)


@bp.post("/reviews/<int:review_id>/restore")
def restore_review(review_id: int):
    review = db.get_or_404(Review, review_id)
    try:
        review_service.restore(review, current_user, request.form.get("note", ""))
    except ReviewError as error:
        abort_for(error)
    flash(f"The review is back on {review.trainer.display_name}'s profile and counts in the rating again.", "success")
    return see_other(url_for("admin.reviews"))


@bp.post("/reviews/<int:review_id>/dismiss")
def dismiss_flags(review_id: int):
    review = db.get_or_404(Review, review_id)
    try:
        closed = review_service.dismiss_flags(review, current_user, request.form.get("note", ""))
    except ReviewError as error:
        abort_for(error)
    flash(f"{closed} report{'s' if closed != 1 else ''} dismissed; the review stays.", "success")
    return see_other(url_for("admin.reviews"))
