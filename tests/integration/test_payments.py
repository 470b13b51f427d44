"""Simulated payments: fulfilment only from signed events, once per event, through the same code a
provider webhook uses."""
import json

from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, Notification, Payment, PaymentStatus, User
from fittribe.services import booking as booking_service
from fittribe.services import payments
from tests.helpers import demo_hold, text_of


@pytest.fixture
def held(app, demo):
    return demo_hold(app)


def event_for(booking_id: int, event_id: str = "evt_test_1", kind: str = "checkout.session.completed",
              amount: int = 6500) -> bytes:
    return json.dumps({"id": event_id, "type": kind, "data": {
        "booking_id": booking_id, "amount": amount, "currency": "USD", "payment_ref": "pi_test"}}).encode()


def state(app, booking_id: int):
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        payments_made = db.session.scalars(select(Payment.status).where(Payment.booking_id == booking_id)).all()
        notified = db.session.scalar(select(func.count(Notification.id)))
        return booking.status, booking.meeting_url, payments_made, notified


def test_member_pays_with_the_test_card_and_both_parties_are_told(app, visitor, held):
    visitor.login("member@fittribe.example")
    checkout = visitor.get(f"/bookings/{held}/pay")
    assert checkout.status_code == 200 and "Test mode" in text_of(checkout)
    response = visitor.post_form(f"/bookings/{held}/pay", {"card": "4242424242424242"})
    assert response.status_code == 303
    page = text_of(visitor.get(response.headers["Location"]))
    assert "Payment received: your session is confirmed." in page and "You're booked" in page
    # Join and the calendars instead of a raw meeting address (the Join button opens before the start).
    assert "Add to Google Calendar" in page and "calendar.ics" in page and ">https://meet.jit.si" not in page
    status, meeting, paid, notified = state(app, held)
    assert status is BookingStatus.CONFIRMED and meeting and paid == [PaymentStatus.SUCCEEDED]
    assert notified == 2  # member and trainer, pushed live through the outbox


def test_declined_card_keeps_the_hold(app, visitor, held):
    visitor.login("member@fittribe.example")
    response = visitor.post_form(f"/bookings/{held}/pay", {"card": "4000000000000002"})
    assert "card was declined" in text_of(visitor.get(response.headers["Location"]))
    status, meeting, paid, _ = state(app, held)
    assert status is BookingStatus.HELD and meeting is None and paid == [PaymentStatus.FAILED]


def test_replayed_event_confirms_once(app, client, held):
    body = event_for(held)
    with app.app_context():
        header = payments.sign(body)
    outcomes = [client.post("/webhooks/simulated", data=body, headers={"Simulated-Signature": header}).get_json()
                ["outcome"] for _ in range(5)]
    assert outcomes == ["confirmed"] + ["duplicate"] * 4
    status, meeting, paid, notified = state(app, held)
    assert status is BookingStatus.CONFIRMED and paid == [PaymentStatus.SUCCEEDED] and notified == 2


@pytest.mark.parametrize("header", [None, "t=1,v1=abc", "garbage"])
def test_bad_signature_is_400_and_changes_nothing(app, client, held, header):
    headers = {"Simulated-Signature": header} if header else {}
    response = client.post("/webhooks/simulated", data=event_for(held), headers=headers)
    assert response.status_code == 400
    assert state(app, held)[:3] == (BookingStatus.HELD, None, [])


def test_signature_must_cover_the_exact_body(app, client, held):
    with app.app_context():
        header = payments.sign(event_for(held))
    tampered = event_for(held, amount=1)  # same event, amount changed after signing
    assert client.post("/webhooks/simulated", data=tampered, headers={"Simulated-Signature": header}).status_code == 400


def test_tampered_amount_is_never_confirmed(app, client, held):
    body = event_for(held, amount=1)
    with app.app_context():
        header = payments.sign(body)
    assert client.post("/webhooks/simulated", data=body, headers={"Simulated-Signature": header}).get_json() == \
        {"outcome": "refunded"}
    assert state(app, held)[0] is BookingStatus.HELD


def test_late_payment_after_the_time_was_taken_is_refunded(app, client, held):
    with app.app_context():
        late = db.session.get(Booking, held)
        late.status = BookingStatus.EXPIRED
        db.session.commit()
        other = db.session.scalar(select(User).where(User.email == "admin@fittribe.example"))
        booking_service.hold(other, late.trainer, late.starts_at, 60)  # someone else took the time
        body = event_for(held)
        header = payments.sign(body)
    assert client.post("/webhooks/simulated", data=body, headers={"Simulated-Signature": header}).get_json() == \
        {"outcome": "refunded"}
    status, _, paid, notified = state(app, held)
    assert status is BookingStatus.EXPIRED and paid == [PaymentStatus.REFUNDED] and notified == 2  # member + admin alert


def test_only_the_member_may_pay_their_hold(app, visitor, held):
    visitor.login("admin@fittribe.example")
    assert visitor.get(f"/bookings/{held}/pay").status_code == 404
    visitor.logout()
    visitor.login("member@fittribe.example")
    assert visitor.post_form(f"/bookings/{held}/pay", {"card": "1111"}).status_code == 400
    assert state(app, held)[2] == []


def test_confirmed_session_exports_to_calendars(app, visitor, held):
    from icalendar import Calendar

    visitor.login("member@fittribe.example")
    assert visitor.get(f"/bookings/{held}/calendar.ics").status_code == 404  # not confirmed yet
    visitor.post_form(f"/bookings/{held}/pay", {"card": "4242424242424242"})
    response = visitor.get(f"/bookings/{held}/calendar.ics")
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    event = Calendar.from_ical(response.data).walk("VEVENT")[0]
    with app.app_context():
        booking = db.session.get(Booking, held)
        assert event.decoded("dtstart") == booking.starts_at and event.decoded("dtend") == booking.ends_at
        assert str(event["url"]) == booking.meeting_url and str(event["uid"]) == f"booking-{held}@{urlsplit(app.config['SITE_URL']).hostname}"
    page = visitor.get(f"/bookings/{held}").get_data(as_text=True)
    assert "https://calendar.google.com/calendar/render?action=TEMPLATE" in page
    visitor.logout()
    visitor.login("lucia@fittribe.example")
    assert visitor.get(f"/bookings/{held}/calendar.ics").status_code == 404
