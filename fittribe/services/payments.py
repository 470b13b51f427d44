"""Payments behind a provider interface. Fulfilment happens ONLY from a verified provider event
(signature over the raw body, event ids de-duplicated), whichever provider sent it.

The simulated provider (used when no Stripe keys are set) signs its events with Stripe's scheme
(`t=<unix time>,v1=<HMAC-SHA256 of "<t>.<body>">`) and hands them to the very same `handle_event`
that a webhook endpoint calls."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import datetime, timezone

from flask import current_app
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Booking, BookingStatus, Payment, PaymentStatus, ProcessedWebhook
from .booking import announce_slots_changed, aware, slots_for
from .notify import notify

TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    pass


def _secret() -> bytes:
    return hmac.new(current_app.config["SECRET_KEY"].encode(), b"simulated-webhooks", hashlib.sha256).digest()


def sign(body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(_secret(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(body: bytes, header: str | None) -> dict:
    """The event in `body`, if `header` is a valid, recent signature of it."""
    try:
        parts = dict(item.split("=", 1) for item in (header or "").split(","))
        timestamp = int(parts["t"])
        expected = sign(body, timestamp).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, parts["v1"]) or abs(time.time() - timestamp) > TOLERANCE_SECONDS:
            raise SignatureError("bad signature")
        return json.loads(body)
    except (KeyError, ValueError) as error:
        raise SignatureError("bad signature") from error


def simulated_charge(booking: Booking, card: str) -> dict:
    """What the simulated checkout produces: a signed provider event for this card."""
    succeeded = card == "4242424242424242"
    event = {"id": f"evt_sim_{secrets.token_hex(8)}",
             "type": "checkout.session.completed" if succeeded else "payment_intent.payment_failed",
             "data": {"booking_id": booking.id, "amount": booking.price_cents, "currency": booking.currency,
                      "payment_ref": f"pi_sim_{secrets.token_hex(8)}"}}
    body = json.dumps(event).encode()
    return handle_event(body, sign(body))


def handle_event(body: bytes, signature: str | None) -> dict:
    event = verify(body, signature)
    db.session.add(ProcessedWebhook(event_id=str(event["id"])))
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return {"outcome": "duplicate", "event": event}
    booking = db.session.get(Booking, int(event["data"]["booking_id"]))
    if booking is None:
        db.session.commit()
        return {"outcome": "unknown booking", "event": event}
    outcome = _apply(event, booking)
    db.session.commit()
    return {"outcome": outcome, "event": event, "booking_id": booking.id}


def _apply(event: dict, booking: Booking) -> str:
    data = event["data"]
    if event["type"] == "payment_intent.payment_failed":
        _record(booking, data, PaymentStatus.FAILED)
        return "failed"
    if event["type"] != "checkout.session.completed" or booking.status is BookingStatus.CONFIRMED:
        return "ignored"
    if int(data["amount"]) != booking.price_cents or data["currency"] != booking.currency:
        _record(booking, data, PaymentStatus.REFUNDED)  # tampered amount: never confirm, give it back
        return "refunded"
    now = datetime.now(timezone.utc)
    still_held = booking.status is BookingStatus.HELD and aware(booking.hold_expires_at) > now
    time_free = any(s.starts_at == aware(booking.starts_at) for s in slots_for(
        booking.trainer, int((booking.ends_at - booking.starts_at).total_seconds() // 60), now))
    if not (still_held or time_free):
        _record(booking, data, PaymentStatus.REFUNDED)
        notify(booking.member_id, "refund", f"Your payment arrived after the hold ran out and the time was taken: "
                                            f"it is refunded in full.", f"/bookings/{booking.id}")
        return "refunded"
    booking.status = BookingStatus.CONFIRMED
    booking.meeting_url = f"{current_app.config['JITSI_BASE_URL'].rstrip('/')}/FitTribe-{secrets.token_urlsafe(18)}"
    _record(booking, data, PaymentStatus.SUCCEEDED)
    link = f"/bookings/{booking.id}"
    notify(booking.member_id, "confirmed", f"Booked: your session with {booking.trainer.display_name} is confirmed.", link)
    notify(booking.trainer.user_id, "confirmed", f"New session booked by {booking.member.name}.", link)
    announce_slots_changed(booking.trainer_id)
    return "confirmed"


def _record(booking: Booking, data: dict, status: PaymentStatus) -> None:
    db.session.add(Payment(booking_id=booking.id, provider="simulated", provider_ref=str(data["payment_ref"]),
                           amount_cents=int(data["amount"]), currency=str(data["currency"]), status=status))
