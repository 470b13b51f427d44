from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, flash, redirect, request, url_for
from flask_login import current_user, login_required

from .. import clock
from ..extensions import db
from ..models import Booking, BookingStatus, Role
from ..services import booking as booking_service
from ..services import booking_changes, session_status
from ..services import meetings, payments
from ..services.calendar import booking_ics, google_calendar_link
from ..services.search import find_listed_trainer
from ..services.terms import current_terms
from .access import booking_limits
from .htmx import render, see_other
from .params import aware_datetime, parse_int
from .reviews import booking_review_context

bp = Blueprint("bookings", __name__)


@bp.post("/trainers/<slug>/hold")
@booking_limits
@login_required
def hold(slug: str):
    trainer = find_listed_trainer(slug)
    if trainer is None:
        abort(404)
    if not current_user.has_role(Role.MEMBER):
        abort(403, "Only member accounts can book sessions.")
    starts_at = aware_datetime(request.form.get("starts_at"))
    length = parse_int(request.form.get("length"), 1, 24 * 60)
    if starts_at is None or length is None:
        abort(400, "Pick a time from the calendar.")
    try:
        held = booking_service.hold(current_user, trainer, starts_at, length)
    except booking_service.SlotTaken as error:
        flash(str(error), "error")
        # Back to that day and length: the day's other times (or this one, when a lost race freed it).
        day = starts_at.astimezone(ZoneInfo(current_user.time_zone or trainer.time_zone)).date()
        return see_other(url_for("trainers.profile", slug=slug, day=day, length=length) + "#calendar")
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
    now = datetime.now(timezone.utc)  # holds expire on the real clock (services/booking.py)
    hold_seconds_left = booking_service.hold_seconds_left(found, now)
    return render("pages/booking.html", "pages/booking.html", booking=found,
                  meeting_link_shown=meetings.link_visible_to(found, current_user),
                  google_link=google_calendar_link(found, current_user) if found.status is BookingStatus.CONFIRMED else None,
                  held=hold_seconds_left > 0, hold_seconds_left=hold_seconds_left,
                  session=session_status.status_of(found, clock.now()),
                  changeable=booking_changes.cancel_terms(found, current_user, now).allowed,
                  no_show_reportable=booking_changes.no_show_terms(found, current_user, now).allowed,
                  payments_made=payments.payments_of(found), **booking_review_context(found))


@bp.post("/bookings/<int:booking_id>/release")
@login_required
def release(booking_id: int):
    found = _own_booking(booking_id)
    if found.member_id != current_user.id:
        abort(404)
    try:
        booking_service.release(found)
    except booking_service.BookingError as error:
        abort(409, str(error))
    payments.close_checkouts([found.id])
    flash("The time is released.", "info")
    return see_other(url_for("trainers.profile", slug=found.trainer.slug))


@bp.route("/bookings/<int:booking_id>/cancel", methods=["GET", "POST"])
@booking_limits
@login_required
def cancel(booking_id: int):
    """Shows what cancelling means (refund or not) before the person confirms with a reason."""
    found = _own_booking(booking_id)
    return _confirmed_change(found, booking_changes.cancel_terms(found, current_user), booking_changes.cancel,
                             "pages/booking_cancel.html", "The session is cancelled.")


@bp.route("/bookings/<int:booking_id>/no-show", methods=["GET", "POST"])
@booking_limits
@login_required
def no_show(booking_id: int):
    """Shows what reporting a no-show means (refund or not) before the person confirms with what happened."""
    found = _own_booking(booking_id)
    return _confirmed_change(found, booking_changes.no_show_terms(found, current_user), booking_changes.report_no_show,
                             "pages/booking_no_show.html", "The no-show is recorded.")


def _confirmed_change(found: Booking, terms, change, page: str, done: str) -> Response:
    """GET: the page saying what the change means. POST: make it with the reason given, or show
    the page again with the problem (422), nothing changed."""
    error = None
    if request.method == "POST":
        try:
            terms = change(found, current_user, request.form.get("reason", ""))
        except booking_service.BookingError as problem:
            error = str(problem)
        except payments.PaymentError as problem:
            db.session.rollback()
            error = str(problem)
        else:
            flash(done + (" The payment is refunded in full." if terms.refund else ""), "info")
            return see_other(url_for("bookings.show", booking_id=found.id))
    return render(page, page, status=422 if error else 200, booking=found, terms=terms, error=error,
                  reason=request.form.get("reason", ""))


@bp.route("/bookings/<int:booking_id>/reschedule", methods=["GET", "POST"])
@booking_limits
@login_required
def reschedule(booking_id: int):
    found = _own_booking(booking_id)
    error = None
    if request.method == "POST":
        new_start = aware_datetime(request.form.get("starts_at"))
        if new_start is None:
            error = "Pick one of the free times below."
        else:
            try:
                booking_changes.reschedule(found, current_user, new_start, request.form.get("reason", ""))
            except booking_service.BookingError as problem:
                error = str(problem)
            else:
                flash("The session is moved. You'll both find the new time here and in your calendars.", "success")
                return see_other(url_for("bookings.show", booking_id=found.id))
    allowed = booking_changes.can_reschedule(found, current_user)
    options = booking_changes.reschedule_options(found) if allowed else []
    return render("pages/booking_reschedule.html", "pages/booking_reschedule.html", status=422 if error else 200,
                  booking=found, allowed=allowed, options=options, error=error,
                  reason=request.form.get("reason", ""), chosen=request.form.get("starts_at", ""))


@bp.post("/bookings/<int:booking_id>/join")
@login_required
def join(booking_id: int):
    """Open the video meeting (from JOIN_OPENS before the start); a trainer's join is recorded."""
    found = _own_booking(booking_id)
    if not meetings.link_visible_to(found, current_user):
        abort(403, "Only the member and the trainer of a session can join it.")
    if not session_status.status_of(found, clock.now()).can_join:
        abort(409, f"The video link opens {current_terms().join_opens} before the session starts.")
    session_status.trainer_joined(found, current_user)
    return redirect(found.meeting_url, code=303)


@bp.get("/bookings/<int:booking_id>/calendar.ics")
@login_required
def ics(booking_id: int):
    found = _own_booking(booking_id)
    if found.status is not BookingStatus.CONFIRMED:
        abort(404)
    return Response(booking_ics(found, current_user), mimetype="text/calendar",
                    headers={"Content-Disposition": f"attachment; filename=fittribe-session-{found.id}.ics"})
