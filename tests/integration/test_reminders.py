"""Every notification is also mailed (once, after commit), and confirmed sessions are reminded
24 hours and 15 minutes ahead, once each, to both people."""
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fittribe.extensions import db
from fittribe.models import Booking, Notification, User
from fittribe.services import booking_changes, reminders
from fittribe.services.notify import notify
from tests.helpers import demo_paid_session


@pytest.fixture
def outbox(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_OUTBOX_DIR", str(tmp_path))
    return tmp_path


def mails(folder: Path) -> list:
    return [message_from_bytes(path.read_bytes(), policy=default) for path in sorted(folder.glob("*.eml"))]


@pytest.fixture
def confirmed(app, demo):
    booking_id = demo_paid_session(app, days_ahead=2)
    with app.app_context():
        now = datetime.now(timezone.utc)
        db.session.execute(Notification.__table__.update().values(emailed_at=now))
        # The seed's own upcoming session counts as reminded, so the counts below are this one's:
        # depending on the hour the suite runs, it can start within a day of this one.
        db.session.execute(Booking.__table__.update().where(Booking.id != booking_id)
                           .values(reminded_24h_at=now, reminded_15m_at=now))
        db.session.commit()
    return booking_id


def test_each_notification_is_mailed_once_with_its_link(app, demo, outbox):
    with app.app_context():
        member = db.session.scalar(select(User).where(User.email == "member@fittribe.example"))
        db.session.execute(Notification.__table__.update().values(emailed_at=datetime.now(timezone.utc)))
        notify(member.id, "confirmed", "Booked: <b>see you</b>", "/bookings/7")
        db.session.commit()
        assert reminders.mail_notifications() == 1
        assert reminders.mail_notifications() == 0  # never twice
    [message] = mails(outbox)
    assert message["To"] == "member@fittribe.example" and message["Subject"] == "Your FitTribe session is booked"
    assert "Booked: <b>see you</b>" in message.get_content() and "http://127.0.0.1:5000/bookings/7" in message.get_content()


def test_unsent_mail_stays_queued_when_the_mail_server_is_down(app, demo, outbox, monkeypatch):
    with app.app_context():
        member = db.session.scalar(select(User).where(User.email == "member@fittribe.example"))
        db.session.execute(Notification.__table__.update().values(emailed_at=datetime.now(timezone.utc)))
        notify(member.id, "refund", "Refunded", None)
        db.session.commit()
        monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
        monkeypatch.setitem(app.config, "MAIL_PORT", 1)  # nothing listens there: connection refused
        assert reminders.mail_notifications() == 0
        monkeypatch.setitem(app.config, "MAIL_SERVER", None)
        assert reminders.mail_notifications() == 1
    assert len(mails(outbox)) == 1


def _reminders_sent(app) -> list[str]:
    with app.app_context():
        return db.session.scalars(select(Notification.message).where(Notification.kind == "reminder")
                                  .order_by(Notification.id)).all()


def test_reminders_a_day_and_15_minutes_ahead_once_each(app, confirmed):
    with app.app_context():
        start = (db.session.get(Booking, confirmed).starts_at)
        assert reminders.send_reminders(now=start - timedelta(hours=25)) == 0
        assert reminders.send_reminders(now=start - timedelta(hours=23)) == 1
        assert reminders.send_reminders(now=start - timedelta(hours=22)) == 0
        assert reminders.send_reminders(now=start - timedelta(minutes=14)) == 1
        assert reminders.send_reminders(now=start - timedelta(minutes=5)) == 0
    sent = _reminders_sent(app)
    assert len(sent) == 4  # member and trainer, twice
    assert "Reminder: your session with Maya Chen starts on" in sent[0] and "in 15 minutes" in sent[2]


def test_a_moved_session_is_reminded_again_for_its_new_time(app, confirmed):
    with app.app_context():
        booking = db.session.get(Booking, confirmed)
        start = booking.starts_at
        reminders.send_reminders(now=start - timedelta(hours=23))
        trainer = db.session.get(User, booking.trainer.user_id)
        new_start = next(s.starts_at for s in booking_changes.reschedule_options(booking, days=20)
                         if s.starts_at > start + timedelta(days=2))
        booking_changes.reschedule(booking, trainer, new_start, "Clash")
        assert reminders.send_reminders(now=new_start - timedelta(hours=23)) == 1


def test_cancelled_sessions_are_not_reminded(app, confirmed):
    with app.app_context():
        booking = db.session.get(Booking, confirmed)
        start = booking.starts_at
        booking_changes.cancel(booking, db.session.get(User, booking.member_id), "Ill")
        assert reminders.send_reminders(now=start - timedelta(minutes=10)) == 0
        assert db.session.scalar(select(func.count(Notification.id)).where(Notification.kind == "reminder")) == 0


def test_worker_runs_the_mail_and_reminder_jobs():
    from fittribe.worker import JOBS

    assert {"mail_notifications", "send_reminders"} <= {job.name for job in JOBS}
