from flask import Blueprint, abort, flash, jsonify, request, url_for
from flask_login import current_user, login_required

from ..extensions import csrf, db, limiter
from ..models import Booking, BookingStatus
from ..services import payments
from .htmx import render, see_other

bp = Blueprint("payments", __name__)

TEST_CARDS = [("4242424242424242", "4242 4242 4242 4242 — payment succeeds"),
              ("4000000000000002", "4000 0000 0000 0002 — card declined")]


def _members_held_booking(booking_id: int) -> Booking:
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.member_id != current_user.id:
        abort(404)
    if booking.status is not BookingStatus.HELD:
        abort(409, "This booking is not waiting for payment.")
    return booking


@bp.route("/bookings/<int:booking_id>/pay", methods=["GET", "POST"])
@limiter.limit(lambda: "20 per minute", methods=["POST"])
@login_required
def simulated_checkout(booking_id: int):
    """The simulated provider's checkout page (test mode, no real money)."""
    booking = _members_held_booking(booking_id)
    if request.method == "POST":
        card = request.form.get("card", "")
        if card not in dict(TEST_CARDS):
            abort(400, "Choose one of the test cards.")
        result = payments.simulated_charge(booking, card)
        if result["outcome"] == "confirmed":
            flash("Payment received: your session is confirmed.", "success")
        elif result["outcome"] == "failed":
            flash("The card was declined. Your time is still held: try another card.", "error")
        else:
            flash("Your payment could not be used for this time and is refunded.", "error")
        return see_other(url_for("bookings.show", booking_id=booking.id))
    return render("pages/checkout.html", "pages/checkout.html", booking=booking, cards=TEST_CARDS)


@bp.post("/webhooks/simulated")
@csrf.exempt  # authenticated by its signature, not a session
def simulated_webhook():
    try:
        result = payments.handle_event(request.get_data(), request.headers.get("Simulated-Signature"))
    except payments.SignatureError:
        abort(400, "Invalid signature.")
    return jsonify({"outcome": result["outcome"]})
