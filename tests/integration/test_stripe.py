"""Stripe as the provider: the real `stripe` library against a local fake API server, and webhooks
signed with Stripe's own scheme."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, Notification, Payment, PaymentStatus, User
from fittribe.services import booking as booking_service
from fittribe.services import payments
from fittribe.worker import JOBS
from tests.helpers import demo_hold
from tests.fake_stripe import FakeStripe, stripe_event, stripe_signature

WEBHOOK_SECRET = "whsec_fittribe_test"


@pytest.fixture
def fake_stripe(app, monkeypatch):
    fake = FakeStripe()
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "sk_test_fittribe")
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", fake.url)
    yield fake
    fake.close()


@pytest.fixture
def held(app, demo):
    return demo_hold(app)


def checkout_session(booking_id: int, payment_status: str = "paid", amount: int = 6500, session_id: str = "cs_test_1",
                     intent: str = "pi_test_1") -> dict:
    return {"id": session_id, "object": "checkout.session", "payment_status": payment_status,
            "amount_total": amount, "currency": "usd", "payment_intent": intent,
            "metadata": {"booking_id": str(booking_id)}}


def deliver(client, event_id: str, kind: str, obj: dict, secret: str = WEBHOOK_SECRET):
    body = stripe_event(event_id, kind, obj)
    return client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": stripe_signature(body, secret)})


def state(app, booking_id: int):
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        paid = db.session.scalars(select(Payment.status).where(Payment.booking_id == booking_id)
                                  .order_by(Payment.id)).all()
        return booking.status, booking.meeting_url, paid


def test_pay_opens_a_stripe_checkout_session_for_the_hold(app, visitor, held, fake_stripe):
    visitor.login("member@fittribe.example")
    response = visitor.post_form(f"/bookings/{held}", {}, post_url=f"/bookings/{held}/checkout")
    assert response.status_code == 303 and response.headers["Location"].startswith("https://checkout.stripe.test/")
    [call] = fake_stripe.calls("/v1/checkout/sessions")
    params = call["params"]
    assert call["authorization"] == "Bearer sk_test_fittribe"
    assert params["mode"] == "payment" and params["metadata[booking_id]"] == str(held)
    assert params["payment_intent_data[metadata][booking_id]"] == str(held)
    assert params["line_items[0][price_data][unit_amount]"] == "6500"
    assert params["line_items[0][price_data][currency]"] == "usd"
    assert "transfer_data[destination]" not in params  # Maya has no connected account
    assert int(params["expires_at"]) >= datetime.now(timezone.utc).timestamp() + 30 * 60  # Stripe's minimum
    assert call["idempotency_key"] == f"fittribe-checkout-{held}"
    with app.app_context():
        assert db.session.get(Booking, held).checkout_ref == "cs_test_1"
    # A second click reuses the same session (same idempotency key, same answer).
    again = visitor.post_form(f"/bookings/{held}", {}, post_url=f"/bookings/{held}/checkout")
    assert again.headers["Location"] == response.headers["Location"]


def test_connected_trainer_gets_a_destination_charge_with_the_platform_fee(app, visitor, held, fake_stripe):
    with app.app_context():
        db.session.get(Booking, held).trainer.stripe_account_id = "acct_maya"
        db.session.commit()
    visitor.login("member@fittribe.example")
    visitor.post_form(f"/bookings/{held}", {}, post_url=f"/bookings/{held}/checkout")
    params = fake_stripe.calls("/v1/checkout/sessions")[0]["params"]
    assert params["payment_intent_data[transfer_data][destination]"] == "acct_maya"
    assert params["payment_intent_data[application_fee_amount]"] == str(6500 * 15 // 100)


def test_stripe_outage_on_checkout_is_a_clear_error_and_keeps_the_hold(app, visitor, held, fake_stripe):
    fake_stripe.fail_with = 500
    visitor.login("member@fittribe.example")
    response = visitor.post_form(f"/bookings/{held}", {}, post_url=f"/bookings/{held}/checkout")
    assert response.status_code == 502 and "could not be opened" in response.get_data(as_text=True)
    assert state(app, held)[0] is BookingStatus.HELD


def test_completed_webhook_confirms_once_even_when_replayed(app, client, held, fake_stripe):
    outcomes = [deliver(client, "evt_1", "checkout.session.completed", checkout_session(held)).get_json()["outcome"]
                for _ in range(5)]
    assert outcomes == ["confirmed"] + ["duplicate"] * 4
    status, meeting, paid = state(app, held)
    assert status is BookingStatus.CONFIRMED and meeting and paid == [PaymentStatus.SUCCEEDED]
    # The same payment announced again under another event id changes nothing either.
    assert deliver(client, "evt_2", "checkout.session.async_payment_succeeded",
                   checkout_session(held)).get_json()["outcome"] == "ignored"
    assert state(app, held) == (status, meeting, paid)
    with app.app_context():
        assert db.session.scalar(select(func.count(Notification.id)).where(Notification.kind == "confirmed")) == 2


@pytest.mark.parametrize("signature", [None, "garbage", "t=1,v1=deadbeef"])
def test_bad_signature_is_400_and_changes_nothing(app, client, held, fake_stripe, signature):
    body = stripe_event("evt_bad", "checkout.session.completed", checkout_session(held))
    headers = {"Stripe-Signature": signature} if signature else {}
    assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 400
    assert deliver(client, "evt_bad", "checkout.session.completed", checkout_session(held),
                   secret="whsec_someone_else").status_code == 400
    assert state(app, held) == (BookingStatus.HELD, None, [])
    with app.app_context():  # admins hear about forged deliveries
        assert db.session.scalar(select(func.count(Notification.id)).where(Notification.kind == "alert")) >= 1


def test_async_payment_confirms_only_when_it_succeeds(app, client, held, fake_stripe):
    assert deliver(client, "evt_1", "checkout.session.completed",
                   checkout_session(held, payment_status="unpaid")).get_json()["outcome"] == "ignored"
    assert state(app, held)[0] is BookingStatus.HELD
    assert deliver(client, "evt_2", "checkout.session.async_payment_succeeded",
                   checkout_session(held)).get_json()["outcome"] == "confirmed"
    assert state(app, held)[0] is BookingStatus.CONFIRMED


def test_async_payment_failure_is_recorded_and_the_hold_stays(app, client, held, fake_stripe):
    assert deliver(client, "evt_1", "checkout.session.async_payment_failed",
                   checkout_session(held, payment_status="unpaid")).get_json()["outcome"] == "failed"
    assert state(app, held) == (BookingStatus.HELD, None, [PaymentStatus.FAILED])


def test_expired_checkout_releases_the_hold(app, client, held, fake_stripe):
    with app.app_context():
        db.session.get(Booking, held).checkout_ref = "cs_test_1"
        db.session.commit()
    assert deliver(client, "evt_1", "checkout.session.expired",
                   checkout_session(held, payment_status="unpaid")).get_json()["outcome"] == "expired"
    assert state(app, held)[0] is BookingStatus.EXPIRED


def test_out_of_order_expired_then_completed_confirms_while_the_time_is_free(app, client, held, fake_stripe):
    deliver(client, "evt_2", "checkout.session.expired", checkout_session(held, payment_status="unpaid"))
    assert deliver(client, "evt_1", "checkout.session.completed",
                   checkout_session(held)).get_json()["outcome"] == "confirmed"
    assert state(app, held)[0] is BookingStatus.CONFIRMED
    assert fake_stripe.calls("/v1/refunds") == []


def test_late_payment_after_the_time_was_taken_is_refunded_through_stripe(app, client, held, fake_stripe):
    deliver(client, "evt_2", "checkout.session.expired", checkout_session(held, payment_status="unpaid"))
    with app.app_context():
        late = db.session.get(Booking, held)
        rival = User(email="rival@example.com", name="Rival", time_zone="UTC")
        rival.set_password("long enough password")
        db.session.add(rival)
        db.session.commit()
        booking_service.hold(rival, late.trainer, late.starts_at, 60)
    assert deliver(client, "evt_1", "checkout.session.completed",
                   checkout_session(held)).get_json()["outcome"] == "refunded"
    assert state(app, held) == (BookingStatus.EXPIRED, None, [PaymentStatus.REFUNDED])
    [refund] = fake_stripe.calls("/v1/refunds")
    assert refund["params"]["payment_intent"] == "pi_test_1" and refund["idempotency_key"].startswith("fittribe-refund-")
    with app.app_context():
        member = db.session.scalar(select(User).where(User.email == "member@fittribe.example"))
        told = db.session.scalars(select(Notification.message).where(Notification.user_id == member.id)).all()
        assert any("refunded in full" in message for message in told)


def test_refund_outage_makes_stripe_retry_the_delivery(app, client, held, fake_stripe):
    fake_stripe.fail_with = 500
    response = deliver(client, "evt_1", "checkout.session.completed", checkout_session(held, amount=1))
    assert response.status_code == 503 and state(app, held) == (BookingStatus.HELD, None, [])
    fake_stripe.fail_with = None  # Stripe delivers the same event again later: now it goes through
    assert deliver(client, "evt_1", "checkout.session.completed",
                   checkout_session(held, amount=1)).get_json()["outcome"] == "refunded"


def test_refund_from_the_stripe_dashboard_is_recorded(app, client, held, fake_stripe):
    deliver(client, "evt_1", "checkout.session.completed", checkout_session(held))
    charge = {"id": "ch_1", "object": "charge", "payment_intent": "pi_test_1",
              "receipt_url": "https://pay.stripe.com/receipts/ch_1", "amount_refunded": 6500}
    assert deliver(client, "evt_2", "charge.refunded", charge).get_json()["outcome"] == "refunded"
    with app.app_context():
        payment = db.session.scalar(select(Payment).where(Payment.booking_id == held))
        assert payment.status is PaymentStatus.REFUNDED and payment.receipt_url.endswith("ch_1")


def test_worker_closes_the_checkout_of_a_lapsed_hold(app, visitor, held, fake_stripe):
    visitor.login("member@fittribe.example")
    visitor.post_form(f"/bookings/{held}", {}, post_url=f"/bookings/{held}/checkout")
    with app.app_context():
        db.session.get(Booking, held).hold_expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
        db.session.commit()
        next(job for job in JOBS if job.name == "expire_holds").run()
    assert state(app, held)[0] is BookingStatus.EXPIRED
    assert [call["path"] for call in fake_stripe.calls("/expire")] == ["/v1/checkout/sessions/cs_test_1/expire"]
    assert fake_stripe.sessions["cs_test_1"]["status"] == "expired"


def test_each_webhook_endpoint_answers_only_for_the_configured_provider(app, client, held, fake_stripe):
    with app.app_context():
        body = b'{"id": "evt_sim"}'
        assert client.post("/webhooks/simulated", data=body,
                           headers={"Simulated-Signature": payments.sign(body)}).status_code == 404
    app.config["STRIPE_SECRET_KEY"] = None
    assert deliver(client, "evt_1", "checkout.session.completed", checkout_session(held)).status_code == 404


def test_cancelling_a_stripe_paid_session_refunds_through_stripe(app, client, held, fake_stripe):
    from fittribe.services import booking_changes

    deliver(client, "evt_1", "checkout.session.completed", checkout_session(held))
    with app.app_context():
        booking = db.session.get(Booking, held)
        trainer = db.session.get(User, booking.trainer.user_id)
        booking_changes.cancel(booking, trainer, "Injured")
    [refund] = fake_stripe.calls("/v1/refunds")
    assert refund["params"]["payment_intent"] == "pi_test_1"
    assert state(app, held)[0] is BookingStatus.CANCELLED and state(app, held)[2] == [PaymentStatus.REFUNDED]
