from datetime import datetime, timezone

from flask import Blueprint, Response, abort, flash, request, url_for
from flask_login import current_user, login_required

from ..extensions import db, limiter
from ..models import Booking, BookingStatus, Role
from ..services import booking as booking_service
from ..services import payments
from ..services.calendar import booking_ics, google_calendar_link
from ..services.search import find_listed_trainer
from .htmx import render, see_other

bp = Blueprint("bookings", __name__)


@bp.post("/trainers/<slug>/hold")
@limiter.limit(lambda: "20 per minute")
@login_required
def hold(slug: str):
    trainer = find_listed_trainer(slug)
    if trainer is None:
        abort(404)
    if not current_user.has_role(Role.MEMBER):
        abort(403, "Only member accounts can book sessions.")
    try:
        starts_at = datetime.fromisoformat(request.form.get("starts_at", ""))
        length = int(request.form.get("length", ""))
    except ValueError:
        abort(400, "Pick a time from the calendar.")
    if starts_at.tzinfo is None:
        abort(400, "Pick a time from the calendar.")
    try:
        held = booking_service.hold(current_user, trainer, starts_at.astimezone(timezone.utc), length)
    except booking_service.SlotTaken as error:
        flash(str(error), "error")
        return see_other(url_for("trainers.profile", slug=slug) + "#availability")
    except booking_service.BookingError as error:
        abort(409, str(error))
    return see_other(url_for("bookings.show", booking_id=held.id))


def _own_booking(booking_id: int) -> Booking:
    """The member's own booking, or the trainer's; anyone else gets a 404 (no IDOR)."""
    found = db.session.get(Booking, booking_id)
    if found is None:
        abort(404)
    trainer_user_id = found.trainer.user_id
    if current_user.id not in (found.member_id, trainer_user_id) and not current_user.has_role(Role.ADMIN):
        abort(404)
    return found


@bp.get("/bookings/<int:booking_id>")
@login_required
def show(booking_id: int):
    found = _own_booking(booking_id)
    return render("pages/booking.html", "pages/booking.html", booking=found,
                  google_link=google_calendar_link(found) if found.status is BookingStatus.CONFIRMED else None,
                  held=found.status is BookingStatus.HELD
                  and booking_service.aware(found.hold_expires_at) > datetime.now(timezone.utc))


@bp.post("/bookings/<int:booking_id>/release")
@login_required
def release(booking_id: int):
    found = _own_booking(booking_id)
    if found.member_id != current_user.id:
        abort(404)
    booking_service.release(found)
    payments.close_checkouts([found.id])
    flash("The time is released.", "info")
    return see_other(url_for("trainers.profile", slug=found.trainer.slug))


@bp.get("/bookings/<int:booking_id>/calendar.ics")
@login_required
def ics(booking_id: int):
    found = _own_booking(booking_id)
    if found.status is not BookingStatus.CONFIRMED:
        abort(404)
    return Response(booking_ics(found, request.host.split(":")[0]), mimetype="text/calendar",
                    headers={"Content-Disposition": f"attachment; filename=fittribe-session-{found.id}.ics"})
