"""`make test-shifted`: every Python process started with this folder on PYTHONPATH (pytest and the
gunicorn, worker and helper processes it starts) sees the wall clock SHIFT_CLOCK_HOURS ahead, so
the suite can be run at another hour of the day or day of the week. Sleeps, timeouts and
monotonic time are untouched; PostgreSQL and Redis keep the real time (the app reads the time
from Python only)."""
import os

if os.environ.get("SHIFT_CLOCK_HOURS"):
    from datetime import datetime, timedelta, timezone

    import time_machine

    _shifted_now = datetime.now(timezone.utc) + timedelta(hours=float(os.environ["SHIFT_CLOCK_HOURS"]))
    time_machine.travel(_shifted_now, tick=True).start()
