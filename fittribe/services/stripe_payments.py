"""Stripe as the payment provider: Checkout Sessions (test mode keys in development), fulfilment
from signed webhooks only (see services/payments.py), refunds, and optional Connect destination
charges with a platform fee when the trainer has a connected account."""
from __future__ import annotations

from collections.abc import Mapping

import stripe
from flask import url_for

from ..models import Booking, Payment
from .links import site_url
from .payments import PaymentError, PaymentEvent, SignatureError, checkout_deadline


class StripeProvider:
    name = "stripe"

    def __init__(self, config: Mapping):
        self.client = stripe.StripeClient(
            config["STRIPE_SECRET_KEY"], base_addresses={"api": config["STRIPE_API_BASE"]},
            max_network_retries=2)  # Stripe's own retries, safe with our idempotency keys
        self.webhook_secret = config["STRIPE_WEBHOOK_SECRET"]
        self.fee_percent = config["PLATFORM_FEE_PERCENT"]

    def start_checkout(self, booking: Booking) -> str:
        booking_url = site_url(url_for("bookings.show", booking_id=booking.id))
        minutes = int((booking.ends_at - booking.starts_at).total_seconds() // 60)
        intent: dict = {"metadata": {"booking_id": str(booking.id)}}
        account = booking.trainer.stripe_account_id
        if account:
            intent["application_fee_amount"] = booking.price_cents * self.fee_percent // 100
            intent["transfer_data"] = {"destination": account}
        params = {
            "mode": "payment",
            "client_reference_id": str(booking.id),
            "customer_email": booking.member.email,
            "metadata": {"booking_id": str(booking.id)},
            "payment_intent_data": intent,
            "line_items": [{"quantity": 1, "price_data": {
                "currency": booking.currency.lower(), "unit_amount": booking.price_cents,
                "product_data": {"name": f"{minutes}-minute session with {booking.trainer.display_name}"}}}],
            "expires_at": int(checkout_deadline(booking).timestamp()),
            "success_url": booking_url + "?checkout=done",
            "cancel_url": booking_url,
        }
        try:
            # Same key for the same hold: a double click or a retry gets the same session back.
            session = self.client.v1.checkout.sessions.create(
                params=params, options={"idempotency_key": f"fittribe-checkout-{booking.id}"})
        except stripe.StripeError as error:
            raise PaymentError("The payment page could not be opened. Please try again in a moment.") from error
        booking.checkout_ref = session.id
        return session.url

    def parse_event(self, body: bytes, signature: str | None) -> PaymentEvent:
        try:
            event = stripe.Webhook.construct_event(body, signature, self.webhook_secret)
        except (stripe.SignatureVerificationError, ValueError) as error:
            raise SignatureError("bad signature") from error
        obj = event.data.object.to_dict()
        metadata = obj.get("metadata") or {}
        booking_id = int(metadata["booking_id"]) if str(metadata.get("booking_id", "")).isdigit() else None
        currency = str(obj.get("currency") or "").upper() or None
        if event.type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            paid = obj.get("payment_status") in ("paid", "no_payment_required")
            return PaymentEvent(event.id, "paid" if paid else "pending", booking_id, obj.get("amount_total"),
                                currency, obj.get("payment_intent"), obj.get("id"))
        if event.type == "checkout.session.async_payment_failed":
            return PaymentEvent(event.id, "failed", booking_id, obj.get("amount_total"), currency,
                                obj.get("payment_intent"), obj.get("id"))
        if event.type == "checkout.session.expired":
            return PaymentEvent(event.id, "expired", booking_id, checkout_ref=obj.get("id"))
        if event.type == "payment_intent.payment_failed":
            return PaymentEvent(event.id, "failed", booking_id, obj.get("amount"), currency, obj.get("id"))
        if event.type in ("charge.refunded", "charge.succeeded"):
            return PaymentEvent(event.id, "refunded" if event.type == "charge.refunded" else "receipt",
                                payment_ref=obj.get("payment_intent"), receipt_url=obj.get("receipt_url"))
        return PaymentEvent(event.id, "ignored")

    def refund(self, payment: Payment) -> str:
        try:
            refund = self.client.v1.refunds.create(
                params={"payment_intent": payment.provider_ref, "reason": "requested_by_customer"},
                options={"idempotency_key": f"fittribe-refund-{payment.id}"})
        except stripe.StripeError as error:
            raise PaymentError("The refund could not be made right now. Please try again in a moment.") from error
        return refund.id

    def close_checkout(self, booking: Booking) -> None:
        try:
            self.client.v1.checkout.sessions.expire(booking.checkout_ref)
        except stripe.InvalidRequestError:
            pass  # already completed or expired: nothing left to close
        except stripe.StripeError as error:
            raise PaymentError("Could not close the checkout.") from error
