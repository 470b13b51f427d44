"""Redis goes away under a real gunicorn + gevent server: browsing and booking keep working
without the live extras (presence unknown, so not shown), rate limits keep counting in each
process's memory (fail safe: login stays throttled), and everything comes back with Redis."""
from __future__ import annotations

import requests

from tests.helpers import csrf_token_from, live_login
from tests.integration.test_booking import _first_slot_form
from tests.integration.test_realtime_faults import free_port, start_gunicorn, start_redis, stop_gunicorn

LOGINS_PER_MINUTE = 4


def log_in(base_url: str, email: str) -> requests.Response:
    session = requests.Session()
    token = csrf_token_from(session.get(base_url + "/login", timeout=5).text)
    return session.post(base_url + "/login", data={"csrf_token": token, "email": email, "password": "fittribe-demo"},
                        allow_redirects=False, timeout=5)


def test_the_site_degrades_instead_of_failing_while_redis_is_down(app, database_url, demo, tmp_path):
    port = free_port()
    redis_server = start_redis(port, tmp_path)
    master, web_port = start_gunicorn(database_url, f"redis://127.0.0.1:{port}/0", tmp_path,
                                      RATELIMIT_LOGIN=f"{LOGINS_PER_MINUTE} per minute", ERROR_SPIKE_THRESHOLD="1")
    base_url = f"http://127.0.0.1:{web_port}"
    try:
        member, trainer = requests.Session(), requests.Session()
        live_login(member, base_url, "member@fittribe.example")
        live_login(trainer, base_url, "trainer@fittribe.example")
        profile = member.get(base_url + "/trainers/maya-chen", timeout=5).text
        assert "presence presence-offline" in profile  # known while Redis answers
        chosen = _first_slot_form(profile)

        redis_server.terminate()
        redis_server.wait(5)

        # Browsing: presence can't be read, so no badge is shown (hidden until a live push).
        for path in ("/", "/trainers", "/trainers/maya-chen"):
            page = requests.get(base_url + path, timeout=10)
            assert page.status_code == 200, (path, page.text[:300])
            assert "presence-unknown" in page.text and "Online now" not in page.text
        # Booking: the hold's rate limit counts in memory, its live announcement waits in the outbox.
        held = member.post(base_url + "/trainers/maya-chen/hold", timeout=10, allow_redirects=False,
                           data={"csrf_token": csrf_token_from(profile), **chosen})
        assert held.status_code == 303 and held.headers["Location"].startswith("/bookings/"), held.text[:300]
        assert "Your time is held" in member.get(base_url + held.headers["Location"], timeout=10).text
        # The trainer's dashboard pages work; her switch says her live status is unknown.
        dashboard = trainer.get(base_url + "/dashboard/", timeout=10)
        assert dashboard.status_code == 200 and "Your live status can't be read right now" in dashboard.text
        assert trainer.get(base_url + "/dashboard/profile", timeout=10).status_code == 200
        assert trainer.get(base_url + "/dashboard/availability", timeout=10).status_code == 200
        switched = trainer.post(base_url + "/dashboard/available", timeout=10,
                                data={"csrf_token": csrf_token_from(dashboard.text), "available": "on"})
        assert switched.status_code == 503 and "Live status is unavailable right now" in switched.text
        # Limits fail safe: still counted (in this worker's memory), so login stays throttled.
        logins = [log_in(base_url, "member@fittribe.example").status_code for _ in range(LOGINS_PER_MINUTE + 1)]
        assert logins == [303] * LOGINS_PER_MINUTE + [429]
        assert requests.get(base_url + "/healthz", timeout=10).status_code == 503

        redis_server = start_redis(port, tmp_path)  # back at the same address
        assert "presence presence-offline" in requests.get(base_url + "/trainers/maya-chen", timeout=10).text
        assert requests.get(base_url + "/healthz", timeout=10).status_code == 200
    finally:
        stop_gunicorn(master)
        redis_server.terminate()
        redis_server.wait(5)
