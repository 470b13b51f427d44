"""The background process (`flask worker`): runs periodic jobs outside requests.

Jobs register themselves with `periodic(seconds)`: the outbox relay and pruning, the presence
sweeper and hold expiry now; reminders come with confirmed bookings."""
from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask

from .extensions import db
from .realtime.presence import SWEEP_SECONDS as PRESENCE_SWEEP_SECONDS


@dataclass
class Job:
    name: str
    every_seconds: float
    run: Callable[[], object]
    next_at: float = 0.0


JOBS: list[Job] = []


def periodic(every_seconds: float):
    def register(func: Callable[[], object]):
        JOBS.append(Job(func.__name__, every_seconds, func))
        return func
    return register


def run_worker(app: Flask, once: bool = False, tick_seconds: float = 0.5) -> None:
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    if not once:  # a one-off run (tests, cron) keeps the caller's signal handling
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    app.logger.info("Worker started with jobs: %s", ", ".join(job.name for job in JOBS) or "none yet")
    while not stopping:
        now = time.monotonic()
        for job in JOBS:
            if once or now >= job.next_at:
                with app.app_context():
                    try:
                        job.run()
                    except Exception:  # one failing job must not stop the others
                        db.session.rollback()
                        app.logger.exception("Job %s failed", job.name)
                job.next_at = now + job.every_seconds
        if once:
            return
        time.sleep(tick_seconds)


@periodic(2)
def relay_outbox() -> None:
    from .realtime import outbox

    outbox.relay_unpublished()


@periodic(PRESENCE_SWEEP_SECONDS)
def sweep_presence() -> None:
    from .realtime import presence

    presence.sweep()


@periodic(5)
def expire_holds() -> None:
    from .services import booking, payments

    payments.close_checkouts(booking.expire_holds())


@periodic(600)
def prune_outbox() -> None:
    from .realtime import outbox

    outbox.prune()


@periodic(30)
def retry_meetings() -> None:
    from .services import meetings

    meetings.retry_missing()


@periodic(30)
def push_google_events() -> None:
    from .services import google_calendar

    google_calendar.push_pending()


@periodic(60)
def maintain_google_calendars() -> None:
    from .services import google_calendar

    google_calendar.maintain()


@periodic(60)
def refresh_next_available() -> None:
    from .services import booking

    booking.refresh_stale_next_available()


@periodic(10)
def mail_notifications() -> None:
    from .services import reminders

    reminders.mail_notifications()


@periodic(1)
def mail_password_resets() -> None:
    from .services import accounts

    accounts.send_queued_reset_mails()


@periodic(30)
def send_reminders() -> None:
    from .services import reminders

    reminders.send_reminders()


@periodic(60)
def complete_finished_sessions() -> None:
    from .services import booking

    booking.complete_finished()


@periodic(30)
def announce_session_phases() -> None:
    from .services import session_status

    session_status.announce_phase_changes()
