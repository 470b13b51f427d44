"""Presence that tells the truth, against the live gunicorn + gevent server: a trainer is "Online
now" while her "available now" switch is on AND a page of hers holds a live stream; either ending
takes her offline, members are told each real change once, and her own dashboard and preview say
what members see.

No `flask worker` runs in tests: where the sweeper matters the test runs `presence.sweep()` at the
worker's interval, as the worker would."""
from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import time

import pytest
import requests
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import TrainerProfile
from fittribe.realtime import presence
from tests.helpers import SSEClient, csrf_token_from, live_login, presence_announcements
from tests.integration.test_realtime_faults import start_gunicorn, stop_gunicorn

TRAINER = "trainer@fittribe.example"  # Maya Chen


def maya_id(app) -> int:
    with app.app_context():
        return db.session.scalar(select(TrainerProfile.id).where(TrainerProfile.slug == "maya-chen"))


def sweep_until(app, trainer: int, expected: list[bool], timeout: float) -> float:
    """Sweep at the worker's interval until members have been told `expected`; seconds taken."""
    started = time.monotonic()
    while presence_announcements(app, trainer) != expected:
        assert time.monotonic() - started < timeout, f"announced {presence_announcements(app, trainer)}, not {expected}"
        with app.app_context():
            try:
                presence.sweep()
            finally:
                db.session.remove()
        time.sleep(presence.SWEEP_SECONDS)
    return time.monotonic() - started


def badge_seen_by_members(base_url: str) -> str:
    page = requests.get(f"{base_url}/trainers/maya-chen", timeout=5).text
    return re.search(r'class="presence presence-(\w+)', page).group(1)


def members_see(html: str) -> str:
    """What her "available now" switch says members see."""
    return re.search(r'Members see you as:\s*<span class="presence presence-(\w+)', html).group(1)


def badge_on_dashboard(session, base_url: str) -> str:
    return members_see(session.get(f"{base_url}/dashboard/", timeout=5).text)


def switch(session, base_url: str, on: bool) -> requests.Response:
    token = csrf_token_from(session.get(f"{base_url}/dashboard/", timeout=5).text)
    response = session.post(f"{base_url}/dashboard/available", timeout=5, headers={"HX-Request": "true"},
                            data={"csrf_token": token, "available": "on" if on else "off"})
    assert response.status_code == 200, response.text[:300]
    return response


@pytest.fixture
def trainer(live_server, demo):
    session = requests.Session()
    live_login(session, live_server, TRAINER)
    return session


def test_switched_on_without_a_page_open_she_is_offline(app, live_server, trainer):
    maya = maya_id(app)
    response = switch(trainer, live_server, on=True)
    assert "Available now" in response.text  # the switch is on…
    assert members_see(response.text) == "offline"  # …but no page of hers is live
    assert badge_seen_by_members(live_server) == "offline"
    assert badge_on_dashboard(trainer, live_server) == "offline"
    assert presence_announcements(app, maya) == []
    assert "a FitTribe page of yours is open" in response.text  # the definition, next to the switch
    with app.app_context():
        assert f"within {math.ceil(presence.offline_within())} seconds" in response.text


def test_a_page_open_and_the_switch_on_she_is_online_until_switched_off(app, live_server, trainer):
    maya = maya_id(app)
    stream = SSEClient(trainer, live_server + "/stream")  # her dashboard's live connection
    try:
        stream.next(comments=True)
        assert badge_seen_by_members(live_server) == "offline"  # a page alone is not "available"
        assert presence_announcements(app, maya) == []

        response = switch(trainer, live_server, on=True)
        assert members_see(response.text) == "online"
        assert presence_announcements(app, maya) == [True]
        assert badge_seen_by_members(live_server) == "online"
        assert badge_on_dashboard(trainer, live_server) == "online"
        # Her preview of her search card says what members see, too.
        assert 'presence presence-online presence-of-' in trainer.get(f"{live_server}/dashboard/profile").text

        switch(trainer, live_server, on=True)  # on again: nothing changed, nothing announced
        assert presence_announcements(app, maya) == [True]

        switch(trainer, live_server, on=False)  # her tab stays open: members see her offline at once
        assert presence_announcements(app, maya) == [True, False]
        assert badge_seen_by_members(live_server) == "offline"
        assert badge_on_dashboard(trainer, live_server) == "offline"
        assert 'presence presence-offline presence-of-' in trainer.get(f"{live_server}/dashboard/profile").text
    finally:
        stream.close()


def test_closing_her_last_page_takes_her_offline(app, live_server, trainer):
    maya = maya_id(app)
    switch(trainer, live_server, on=True)
    stream = SSEClient(trainer, live_server + "/stream")
    stream.next(comments=True)
    assert sweep_until(app, maya, [True], timeout=5) < 1  # announced when the page connected
    stream.close()
    # Noticed when a heartbeat to it fails (within 2 s in tests), PRESENCE_GRACE (0.5 s), then a
    # sweep; the page says how long that can take at most.
    taken = sweep_until(app, maya, [True, False], timeout=8)
    print(f"offline {taken:.2f} s after her last page closed")
    assert badge_seen_by_members(live_server) == "offline"


def test_a_connection_that_silently_dies_goes_offline_within_two_heartbeats(app, database_url, redis_url,
                                                                              tmp_path, demo):
    """Her page's server freezes (no close, no goodbye, no more heartbeats): the lease is no longer
    renewed and runs out PRESENCE_TTL (1.5 heartbeats) after its last renewal; the next sweep
    tells members."""
    maya = maya_id(app)
    master, port = start_gunicorn(database_url, redis_url, tmp_path, SSE_CHANNEL_PREFIX=app.config["SSE_CHANNEL_PREFIX"],
                                  SSE_HEARTBEAT_SECONDS="1", PRESENCE_GRACE="0.5")
    base_url = f"http://127.0.0.1:{port}"
    worker = None
    try:
        session = requests.Session()
        live_login(session, base_url, TRAINER)
        switch(session, base_url, on=True)
        stream = SSEClient(session, base_url + "/stream")
        stream.next(comments=True)
        assert presence_announcements(app, maya) == [True]
        time.sleep(2.5)  # heartbeats keep her online
        assert sweep_until(app, maya, [True], timeout=1) < 1

        worker = int(subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()[0])
        os.kill(worker, signal.SIGSTOP)
        taken = sweep_until(app, maya, [True, False], timeout=10)
        print(f"offline {taken:.2f} s after her connection silently died (heartbeat 1 s)")
        assert taken < 2 * 1 + presence.SWEEP_SECONDS + 0.5
        stream.close()
    finally:
        if worker is not None:
            with contextlib.suppress(ProcessLookupError):  # gunicorn may have replaced it already
                os.kill(worker, signal.SIGKILL)
        stop_gunicorn(master)
