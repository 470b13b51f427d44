"""Payments behind a provider interface. Fulfilment happens ONLY from a verified provider event
(signature over the raw body, event ids de-duplicated), whichever provider sent it.

Providers: Stripe (services/stripe_payments.py) when STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET
are set, otherwise the simulated provider below. The simulated provider signs its events with
Stripe's scheme (`t=<unix time>,v1=<HMAC-SHA256 of "<t>.<body>">`) and hands them to the very
same `handle_event` that a webhook endpoint calls."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

from flask import current_app, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Booking, BookingStatus, Payment, PaymentStatus, ProcessedWebhook
from . import analytics, google_calendar, meetings
from .availability import Slot
from .booking import announce_sessions_changed, announce_slots_changed, is_free, lock_trainers
from .notify import alert_admins, notify
from .time_zones import on_clock

TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    pass


class PaymentError(RuntimeError):
    """The provider could not do what we asked (network, outage); the message is for people."""


@dataclass(frozen=True)
class PaymentEvent:
    """A provider's webhook event, reduced to what fulfilment needs.

    kind: paid | pending | failed | expired | refunded | receipt | ignored"""
    id: str
    kind: str
    booking_id: int | None = None
    amount_cents: int | None = None
    currency: str | None = None
    payment_ref: str | None = None
    checkout_ref: str | None = None
    receipt_url: str | None = None


class Provider(Protocol):
    name: str

    def start_checkout(self, booking: Booking) -> str:
        """Where to send the member to pay (a URL)."""

    def parse_event(self, body: bytes, signature: str | None) -> PaymentEvent:
        """The verified event in `body`; SignatureError otherwise."""

    def refund(self, payment: Payment) -> str:
        """Give the payment back in full; returns the provider's refund id."""

    def close_checkout(self, booking: Booking) -> None:
        """Stop an open checkout of a hold that ended, so it can no longer be paid."""


def current_provider() -> Provider:
    config = current_app.config
    if config.get("STRIPE_SECRET_KEY") and config.get("STRIPE_WEBHOOK_SECRET"):
        from .stripe_payments import StripeProvider

        return StripeProvider(config)
    return SimulatedProvider()


def provider_for(payment: Payment) -> Provider:
    """The provider that took this payment (refunds go back the same way)."""
    provider = current_provider()
    if provider.name != payment.provider:
        raise PaymentError(f"Payments by {payment.provider} can't be refunded while it is not configured.")
    return provider


# --- the simulated provider -----------------------------------------------------------------

TEST_CARDS = {"4242424242424242": "4242 4242 4242 4242 — payment succeeds",
              "4000002500003155": "4000 0025 0000 3155 — your bank asks you to confirm",
              "4000000000000002": "4000 0000 0000 0002 — card declined"}
CARD_NEEDING_ACTION = "4000002500003155"


def _simulated_secret() -> bytes:
    return hmac.new(current_app.config["SECRET_KEY"].encode(), b"simulated-webhooks", hashlib.sha256).digest()


def sign(body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(_simulated_secret(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class SimulatedProvider:
    name = "simulated"

    def start_checkout(self, booking: Booking) -> str:
        return url_for("payments.simulated_checkout", booking_id=booking.id)

    def parse_event(self, body: bytes, signature: str | None) -> PaymentEvent:
        try:
            parts = dict(item.split("=", 1) for item in (signature or "").split(","))
            timestamp = int(parts["t"])
            expected = sign(body, timestamp).split("v1=", 1)[1]
            if not hmac.compare_digest(expected, parts["v1"]) or abs(time.time() - timestamp) > TOLERANCE_SECONDS:
                raise SignatureError("bad signature")
            event = json.loads(body)
            data = event["data"]
            kind = {"checkout.session.completed": "paid",
                    "payment_intent.payment_failed": "failed"}.get(event["type"], "ignored")
            return PaymentEvent(id=str(event["id"]), kind=kind, booking_id=int(data["booking_id"]),
                                amount_cents=int(data["amount"]), currency=str(data["currency"]).upper(),
                                payment_ref=str(data["payment_ref"]))
        except (KeyError, ValueError, TypeError) as error:
            raise SignatureError("bad signature") from error

    def refund(self, payment: Payment) -> str:
        return f"re_sim_{secrets.token_hex(8)}"

    def close_checkout(self, booking: Booking) -> None:
        pass  # the simulated checkout page refuses bookings that are no longer held


def simulated_charge(booking: Booking, card: str) -> dict:
    """What the simulated checkout produces: a signed provider event for this card."""
    succeeded = card in ("4242424242424242", CARD_NEEDING_ACTION)  # the latter once confirmed
    event = {"id": f"evt_sim_{secrets.token_hex(8)}",
             "type": "checkout.session.completed" if succeeded else "payment_intent.payment_failed",
             "data": {"booking_id": booking.id, "amount": booking.price_cents, "currency": booking.currency,
                      "payment_ref": f"pi_sim_{secrets.token_hex(8)}"}}
    body = json.dumps(event).encode()
    return handle_event(SimulatedProvider(), body, sign(body))


# --- fulfilment -----------------------------------------------------------------------------

def handle_event(provider: Provider, body: bytes, signature: str | None) -> dict:
    try:
        event = provider.parse_event(body, signature)
    except SignatureError:
        if alert_admins(f"webhook-signature-{provider.name}",
                        f"A {provider.name} webhook arrived with an invalid signature and was refused."):
            db.session.commit()
        raise
    db.session.add(ProcessedWebhook(event_id=event.id))
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return {"outcome": "duplicate", "event": event}
    booking = _booking_for(event)
    if booking is None:
        db.session.commit()
        return {"outcome": "ignored" if event.kind == "ignored" else "unknown booking", "event": event}
    # One event per booking at a time: a replay racing its original waits here, then sees the result.
    # A late payment may take the time again: the trainer is locked first, as for a hold.
    lock_trainers([booking.trainer_id])
    db.session.refresh(booking, with_for_update=True)
    outcome = _apply(provider, event, booking)
    db.session.commit()
    google_calendar.push_pending(booking.id, retries=0)  # after the commit; the worker retries failures
    return {"outcome": outcome, "event": event, "booking_id": booking.id}


def _booking_for(event: PaymentEvent) -> Booking | None:
    if event.booking_id is not None:
        return db.session.get(Booking, event.booking_id)
    if event.payment_ref:  # refunds and receipts name the payment, not the booking
        payment = _payment(event.payment_ref)
        return db.session.get(Booking, payment.booking_id) if payment else None
    return None


def _payment(payment_ref: str | None) -> Payment | None:
    return db.session.scalar(select(Payment).where(Payment.provider_ref == payment_ref)) if payment_ref else None


def _apply(provider: Provider, event: PaymentEvent, booking: Booking) -> str:
    if event.kind == "failed":
        if booking.status is not BookingStatus.HELD or _payment(event.payment_ref) is not None:
            # Late or out of order (the payment succeeded, the booking is settled): the failure of an
            # earlier attempt must not add a row contradicting the records, nor alert anyone.
            return "ignored"
        _record(provider, booking, event, PaymentStatus.FAILED)
        alert_admins("payment-failed", f"A payment for booking #{booking.id} failed.", f"/bookings/{booking.id}")
        return "failed"
    if event.kind == "expired":
        return _checkout_expired(booking, event)
    if event.kind in ("refunded", "receipt"):
        return _payment_updated(booking, event)
    if event.kind != "paid":
        return "ignored"  # e.g. a bank transfer still pending: its async event follows
    if _payment(event.payment_ref) is not None:
        return "ignored"  # completed + async_payment_succeeded for the same payment
    if booking.status is BookingStatus.CONFIRMED:
        return _refund_new(provider, booking, event, "You paid twice for the same session; "
                                                     "the second payment is refunded in full.")
    if event.amount_cents != booking.price_cents or event.currency != booking.currency:
        return _refund_new(provider, booking, event, None)  # tampered amount: never confirm, give it back
    now = datetime.now(timezone.utc)
    still_held = booking.status is BookingStatus.HELD and booking.hold_expires_at > now
    time_free = booking.status in (BookingStatus.HELD, BookingStatus.EXPIRED) and is_free(
        booking.trainer, Slot(booking.starts_at, booking.ends_at), now)
    if not (still_held or time_free):
        return _refund_new(provider, booking, event, "Your payment arrived after the hold ran out and the time "
                                                     "was taken: it is refunded in full.")
    booking.status = BookingStatus.CONFIRMED
    _record(provider, booking, event, PaymentStatus.SUCCEEDED)
    meetings.attach(booking)
    google_calendar.booking_changed(booking)
    link = f"/bookings/{booking.id}"
    member, trainer = booking.member, booking.trainer.user
    notify(member.id, "confirmed", f"Booked: your session with {booking.trainer.display_name} on "
                                   f"{on_clock(booking.starts_at, member.time_zone)} is confirmed.", link)
    notify(trainer.id, "confirmed", f"New session booked by {member.name} for "
                                    f"{on_clock(booking.starts_at, trainer.time_zone)}.", link)
    announce_slots_changed(booking.trainer_id)
    announce_sessions_changed(booking.member_id, booking.trainer.user_id)
    return "confirmed"


def _checkout_expired(booking: Booking, event: PaymentEvent) -> str:
    """An abandoned checkout ends its hold at once (not just when the hold runs out)."""
    if booking.status is not BookingStatus.HELD or (booking.checkout_ref and booking.checkout_ref != event.checkout_ref):
        return "ignored"
    booking.status = BookingStatus.EXPIRED
    analytics.announce_changed()
    announce_slots_changed(booking.trainer_id)
    announce_sessions_changed(booking.member_id)
    return "expired"


def _payment_updated(booking: Booking, event: PaymentEvent) -> str:
    payment = _payment(event.payment_ref)
    if payment is None:
        return "ignored"
    if event.receipt_url:
        payment.receipt_url = event.receipt_url
    if event.kind == "refunded" and payment.status is PaymentStatus.SUCCEEDED:  # refunded from the provider's side
        payment.status, payment.refunded_at = PaymentStatus.REFUNDED, datetime.now(timezone.utc)
        analytics.announce_changed()
        notify(booking.member_id, "refund", "Your payment was refunded in full.", f"/bookings/{booking.id}")
        alert_admins("payment-refunded", f"Payment for booking #{booking.id} was refunded.", f"/bookings/{booking.id}")
        return "refunded"
    return "updated"


def _refund_new(provider: Provider, booking: Booking, event: PaymentEvent, tell_member: str | None) -> str:
    payment = _record(provider, booking, event, PaymentStatus.SUCCEEDED)
    db.session.flush()
    refund(provider, payment)
    if tell_member:
        notify(booking.member_id, "refund", tell_member, f"/bookings/{booking.id}")
    alert_admins("payment-unusable", f"A payment for booking #{booking.id} could not be used and was refunded.",
                  f"/bookings/{booking.id}")
    return "refunded"


def refund(provider: Provider, payment: Payment) -> None:
    """Refund in full through the provider (which raises PaymentError if it can't)."""
    payment.refund_ref = provider.refund(payment)
    payment.status, payment.refunded_at = PaymentStatus.REFUNDED, datetime.now(timezone.utc)
    analytics.announce_changed()


def _record(provider: Provider, booking: Booking, event: PaymentEvent, status: PaymentStatus) -> Payment:
    payment = Payment(booking_id=booking.id, provider=provider.name, provider_ref=event.payment_ref or event.id,
                      amount_cents=event.amount_cents if event.amount_cents is not None else booking.price_cents,
                      currency=event.currency or booking.currency, status=status, receipt_url=event.receipt_url)
    db.session.add(payment)
    analytics.announce_changed()  # open admin analytics pages re-fetch their figures
    return payment


def succeeded_payment(booking: Booking) -> Payment | None:
    return db.session.scalar(select(Payment).where(
        Payment.booking_id == booking.id, Payment.status == PaymentStatus.SUCCEEDED).order_by(Payment.id))


def payments_of(booking: Booking) -> list[Payment]:
    return list(db.session.scalars(select(Payment).where(Payment.booking_id == booking.id).order_by(Payment.id)))


def close_checkouts(booking_ids: list[int]) -> None:
    """Holds that ended: make their open provider checkouts unpayable (best effort — a payment
    that still slips through is handled by the late-payment rule in `_apply`)."""
    provider = current_provider()
    for booking in db.session.scalars(select(Booking).where(Booking.id.in_(booking_ids),
                                                            Booking.checkout_ref.is_not(None))):
        try:
            provider.close_checkout(booking)
        except PaymentError:
            current_app.logger.warning("Could not close checkout %s of booking %s", booking.checkout_ref, booking.id)


def checkout_deadline(booking: Booking) -> datetime:
    """When a provider checkout for this hold should expire on its own (Stripe needs ≥ 30 min ahead);
    the worker closes it earlier, as soon as the hold ends."""
    return booking.hold_expires_at + timedelta(minutes=30)
