from flask import Blueprint, abort, flash, jsonify, request, url_for
from flask_login import current_user, login_required

from ..extensions import csrf, db
from ..models import Booking, BookingStatus
from ..ops.metrics import WEBHOOKS
from ..services import payments
from ..services.booking import hold_seconds_left
from .access import booking_limits
from .htmx import render, see_other

bp = Blueprint("payments", __name__)


def _members_held_booking(booking_id: int) -> Booking:
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.member_id != current_user.id:
        abort(404)
    if booking.status is not BookingStatus.HELD:
        abort(409, "This booking is not waiting for payment.")
    return booking


@bp.post("/bookings/<int:booking_id>/checkout")
@booking_limits
@login_required
def checkout(booking_id: int):
    """Send the member to the provider's payment page for their hold."""
    booking = _members_held_booking(booking_id)
    try:
        url = payments.current_provider().start_checkout(booking)
    except payments.PaymentError as error:
        db.session.rollback()
        abort(502, str(error))
    db.session.commit()  # the checkout reference, so the worker can close it when the hold ends
    return see_other(url)  # a plain form post (no htmx): the provider's page is a whole page


def _simulated_only() -> None:
    if not isinstance(payments.current_provider(), payments.SimulatedProvider):
        abort(404)


@bp.route("/bookings/<int:booking_id>/pay", methods=["GET", "POST"])
@booking_limits
@login_required
def simulated_checkout(booking_id: int):
    """The simulated provider's checkout page (test mode, no real money)."""
    _simulated_only()
    booking = _members_held_booking(booking_id)
    if request.method == "GET":
        return render("pages/checkout.html", "pages/checkout.html", booking=booking, cards=payments.TEST_CARDS,
                      hold_seconds_left=hold_seconds_left(booking))
    card = request.form.get("card", "")
    if card not in payments.TEST_CARDS:
        abort(400, "Choose one of the test cards.")
    if card == payments.CARD_NEEDING_ACTION and request.form.get("authenticated") != "yes":
        if request.form.get("authenticated") == "no":
            card = "4000000000000002"  # the member failed the bank's check: declined
        else:
            return render("pages/checkout_confirm.html", "pages/checkout_confirm.html", booking=booking, card=card,
                          hold_seconds_left=hold_seconds_left(booking))
    result = payments.simulated_charge(booking, card)
    if result["outcome"] == "confirmed":
        flash("Payment received: your session is confirmed.", "success")
    elif result["outcome"] == "failed":
        flash("The card was declined. Your time is still held: try another card.", "error")
    else:
        flash("Your payment could not be used for this time and is refunded.", "error")
    return see_other(url_for("bookings.show", booking_id=booking.id))


def _webhook(provider: payments.Provider, signature_header: str):
    try:
        result = payments.handle_event(provider, request.get_data(), request.headers.get(signature_header))
    except payments.SignatureError:
        WEBHOOKS.labels(provider.name, "invalid_signature").inc()
        abort(400, "Invalid signature.")
    except payments.PaymentError:
        WEBHOOKS.labels(provider.name, "error").inc()
        db.session.rollback()
        abort(503, "Try again later.")  # the provider retries the delivery
    except Exception:
        WEBHOOKS.labels(provider.name, "crashed").inc()
        raise
    WEBHOOKS.labels(provider.name, result["outcome"].replace(" ", "_")).inc()
    return jsonify({"outcome": result["outcome"]})


@bp.post("/webhooks/simulated")
@csrf.exempt  # authenticated by its signature, not a session
def simulated_webhook():
    _simulated_only()
    return _webhook(payments.SimulatedProvider(), "Simulated-Signature")


@bp.post("/webhooks/stripe")
@csrf.exempt  # authenticated by Stripe's signature on the raw body, not a session
def stripe_webhook():
    provider = payments.current_provider()
    if provider.name != "stripe":
        abort(404)
    return _webhook(provider, "Stripe-Signature")
