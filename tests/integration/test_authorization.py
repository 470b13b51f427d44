"""The authorization matrix: every route × anonymous / member / another member / trainer /
another trainer / admin / suspended, with other people's bookings, payments, reviews and
notifications in play (no IDOR). A new route fails `test_every_route_is_in_the_matrix` until it
is added here."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import Booking, BookingStatus, Review, TrainerProfile, User
from tests.helpers import Browser, demo_hold, text_of

ROLES = ("anonymous", "member", "other_member", "trainer", "other_trainer", "admin", "suspended")
EMAILS = {"member": "member@fittribe.example", "other_member": "other.member@example.com",
          "trainer": "trainer@fittribe.example", "other_trainer": "lucia@fittribe.example",
          "admin": "admin@fittribe.example", "suspended": "suspended.member@example.com"}

# Shorthands for the common rows. L = login redirect (302).
PUBLIC = (200,) * 7
LOGGED_IN = (302, 200, 200, 200, 200, 200, 302)
ADMIN_GET = (302, 403, 403, 403, 403, 200, 302)
ADMIN_POST_MISSING = (302, 403, 403, 403, 403, 404, 302)  # an admin reaches the lookup: 404 for a made-up id
TRAINER_ONLY = (302, 403, 403, 200, 200, 403, 302)
# The member's booking with Maya: its member, its trainer and admins see it; anyone else gets 404.
BOOKING_PARTIES = (302, 200, 404, 200, 404, 200, 302)

# (method, url template, expected statuses in ROLES order, form data)
MATRIX = [
    ("GET", "/", PUBLIC, None),
    ("GET", "/trainers", PUBLIC, None),
    ("GET", "/search?q=yoga", (301,) * 7, None),  # to /trainers?q=yoga
    ("GET", "/media/trainers/1/missing.webp", (404,) * 7, None),  # uploaded photos (none here)
    ("GET", "/trainers/maya-chen", PUBLIC, None),
    ("GET", "/trainers/maya-chen/calendar", PUBLIC, None),
    ("GET", "/trainers/maya-chen/availability", PUBLIC, None),
    ("GET", "/trainers/maya-chen/next-available", (302,) * 7, None),  # a fragment: without htmx, the profile
    ("GET", "/trainers/maya-chen/rating", (302,) * 7, None),  # a fragment: without htmx, the profile
    ("GET", "/trainers/maya-chen/reviews", (302,) * 7, None),  # a fragment: without htmx, the profile
    ("GET", "/trainers/jordan-pending", (404, 404, 404, 404, 404, 200, 404), None),
    ("GET", "/healthz", PUBLIC, None),
    ("GET", "/metrics", PUBLIC, None),  # from localhost; see test_ops for outside callers
    ("GET", "/login", (200, 303, 303, 303, 303, 303, 200), None),  # logged in: to the dashboard
    ("GET", "/signup", (200, 303, 303, 303, 303, 303, 200), None),
    ("GET", "/password/forgot", PUBLIC, None),
    ("GET", "/time-zone", PUBLIC, None),
    ("POST", "/time-zone", (303,) * 7, {"zone": "Asia/Tokyo"}),  # everyone has a clock (test_time_zones.py)
    ("GET", "/password/reset/not-a-token", (303,) * 7, None),  # back to "forgot", with a message
    ("GET", "/calendar/not-a-token.ics", (404,) * 7, None),
    ("GET", "/account/calendar", LOGGED_IN, None),
    ("POST", "/account/calendar/link", (302, 303, 303, 303, 303, 303, 302), {}),
    ("POST", "/account/calendar/off", (302, 200, 200, 200, 200, 200, 302), {}),  # a confirm page first
    ("GET", "/account/sessions", LOGGED_IN, None),
    ("POST", "/account/sessions", LOGGED_IN, {}),  # "log out everywhere": without confirm=yes, the confirm page
    ("GET", "/notifications/", LOGGED_IN, None),
    ("POST", "/notifications/read", (302, 303, 303, 303, 303, 303, 302), {}),
    ("GET", "/dashboard/", (302, 200, 200, 200, 200, 303, 302), None),
    ("GET", "/dashboard/sessions", LOGGED_IN, None),
    ("GET", "/dashboard/payments", LOGGED_IN, None),
    ("GET", "/dashboard/earnings", TRAINER_ONLY, None),
    ("GET", "/dashboard/profile", TRAINER_ONLY, None),
    ("POST", "/dashboard/profile/preview", TRAINER_ONLY, {}),
    ("POST", "/dashboard/profile/photo", (302, 403, 403, 422, 422, 403, 302), {}),  # no file: 422 with the reason
    ("GET", "/dashboard/availability", TRAINER_ONLY, None),
    ("POST", "/dashboard/availability/weekly", (302, 403, 403, 422, 422, 403, 302), {}),
    ("POST", "/dashboard/availability/overrides", (302, 403, 403, 422, 422, 403, 302), {}),
    ("POST", "/dashboard/availability/weekly/{weekly_id}/delete", (302, 403, 403, 303, 404, 403, 302), {}),
    ("POST", "/dashboard/available", (302, 403, 403, 303, 303, 403, 302), {}),
    ("GET", "/dashboard/reviews", TRAINER_ONLY, None),
    ("POST", "/dashboard/reviews/{review_id}/reply", (302, 403, 403, 422, 404, 403, 302), {}),
    ("POST", "/trainers/maya-chen/hold", (302, 400, 400, 403, 403, 403, 302), {}),
    ("GET", "/bookings/{booking_id}", BOOKING_PARTIES, None),
    ("GET", "/bookings/{booking_id}/calendar.ics", BOOKING_PARTIES, None),
    ("GET", "/bookings/{booking_id}/cancel", BOOKING_PARTIES, None),
    ("POST", "/bookings/{booking_id}/cancel", (302, 422, 404, 422, 404, 422, 302), {}),
    ("GET", "/bookings/{booking_id}/no-show", BOOKING_PARTIES, None),
    ("POST", "/bookings/{booking_id}/no-show", (302, 422, 404, 422, 404, 422, 302), {}),
    ("GET", "/bookings/{booking_id}/reschedule", BOOKING_PARTIES, None),
    ("POST", "/bookings/{booking_id}/reschedule", (302, 422, 404, 422, 404, 422, 302), {}),
    ("POST", "/bookings/{booking_id}/join", (302, 409, 404, 409, 404, 403, 302), {}),
    ("GET", "/bookings/{completed_id}/review", (302, 200, 404, 403, 404, 403, 302), None),
    ("POST", "/bookings/{completed_id}/review", (302, 422, 404, 403, 404, 403, 302), {}),
    ("GET", "/bookings/{hold_id}/pay", (302, 200, 404, 404, 404, 404, 302), None),
    ("POST", "/bookings/{hold_id}/pay", (302, 400, 404, 404, 404, 404, 302), {}),
    ("POST", "/bookings/{hold_id}/checkout", (302, 303, 404, 404, 404, 404, 302), {}),
    ("POST", "/bookings/{hold_id}/release", (302, 303, 404, 404, 404, 404, 302), {}),
    ("GET", "/reviews/{review_id}/flag", (302, 403, 200, 200, 200, 200, 302), None),
    ("POST", "/reviews/{review_id}/flag", (302, 403, 422, 422, 422, 422, 302), {}),
    ("GET", "/admin/", (302, 403, 403, 403, 403, 303, 302), None),
    ("GET", "/admin/trainers", ADMIN_GET, None),
    ("POST", "/admin/trainers/999999/approve", ADMIN_POST_MISSING, {}),
    ("POST", "/admin/trainers/999999/reject", ADMIN_POST_MISSING, {}),
    ("GET", "/admin/users", ADMIN_GET, None),
    ("GET", "/admin/users/{member_id}/suspend", ADMIN_GET, None),
    ("POST", "/admin/users/999999/suspend", ADMIN_POST_MISSING, {}),
    ("POST", "/admin/users/999999/reactivate", ADMIN_POST_MISSING, {}),
    ("GET", "/admin/reviews", ADMIN_GET, None),
    ("GET", "/admin/reviews/{review_id}/hide", ADMIN_GET, None),
    ("POST", "/admin/reviews/999999/hide", ADMIN_POST_MISSING, {}),
    ("POST", "/admin/reviews/999999/restore", ADMIN_POST_MISSING, {}),
    ("POST", "/admin/reviews/999999/dismiss", ADMIN_POST_MISSING, {}),
    ("GET", "/admin/analytics", ADMIN_GET, None),
    ("GET", "/admin/analytics/figures", ADMIN_GET, None),
    ("GET", "/admin/analytics/charts", ADMIN_GET, None),
    ("GET", "/admin/analytics.csv?table=daily", ADMIN_GET, None),
    ("POST", "/webhooks/simulated", (400,) * 7, {}),  # authenticated by signature only
    ("POST", "/webhooks/stripe", (404,) * 7, {}),  # only when Stripe is configured (test_stripe.py)
    # Google Calendar only when configured (test_google_calendar.py: its own matrix with a fake Google).
    ("GET", "/account/google", (404,) * 7, None),
    ("POST", "/account/google", (404,) * 7, {}),
    ("GET", "/account/google/connect", (404,) * 7, None),
    ("GET", "/account/google/callback", (404,) * 7, None),
    ("POST", "/account/google/disconnect", (404,) * 7, {}),
    ("POST", "/webhooks/google/calendar", (404,) * 7, {}),
]
# Covered elsewhere, with what they need: streams (test_realtime.py: 403 for a channel the session
# may not read), log-in/sign-up/reset/log-out POSTs (test_auth.py), static files.
ELSEWHERE = {"sse.stream", "auth.login", "auth.signup", "auth.forgot_password", "auth.reset_password",
             "auth.logout", "static"}


@pytest.fixture
def world(app, demo):
    """Other people's things for every role to try: the member's confirmed booking with Maya, a
    completed one (reviewable), a review of Maya by the member, a hold, and a suspended member."""
    with app.app_context():
        for key in ("other_member", "suspended"):
            user = User(email=EMAILS[key], name=key.replace("_", " ").title(), time_zone="UTC")
            user.set_password("fittribe-demo")
            db.session.add(user)
        db.session.commit()
        member = db.session.scalar(select(User).where(User.email == EMAILS["member"]))
        maya = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
        confirmed = db.session.scalar(select(Booking).where(Booking.member_id == member.id,
                                                            Booking.status == BookingStatus.CONFIRMED))
        past = confirmed.starts_at - timedelta(days=3)
        completed, reviewed = (Booking(trainer_id=maya.id, member_id=member.id, starts_at=past + timedelta(hours=h),
                                       ends_at=past + timedelta(hours=h + 1), status=BookingStatus.COMPLETED,
                                       price_cents=6500, currency="USD") for h in (0, 2))
        db.session.add_all([completed, reviewed])
        db.session.flush()
        review = Review(booking_id=reviewed.id, trainer_id=maya.id, member_id=member.id, rating=5,
                        text="Great session, clear cues.")
        db.session.add(review)
        db.session.commit()
        ids = {"booking_id": confirmed.id, "completed_id": completed.id, "review_id": review.id,
               "member_id": member.id, "weekly_id": maya_weekly_id(maya)}
    ids["hold_id"] = demo_hold(app, days_ahead=5)
    return ids


def maya_weekly_id(maya: TrainerProfile) -> int:
    from fittribe.models import WeeklyAvailability

    return db.session.scalar(select(WeeklyAvailability.id).where(WeeklyAvailability.trainer_id == maya.id).limit(1))


def browser_for(app, role: str) -> Browser:
    browser = Browser(app.test_client())
    if role != "anonymous":
        browser.login(EMAILS[role])
    if role == "suspended":  # logged in, then suspended by an admin: the session must stop working
        with app.app_context():
            db.session.scalar(select(User).where(User.email == EMAILS[role])).is_suspended = True
            db.session.commit()
    return browser


def test_authorization_matrix(app, world):
    failures = []
    for role in ROLES:
        browser = browser_for(app, role)
        for method, template, expected, data in MATRIX:
            url = template.format(**world)
            response = browser.get(url) if method == "GET" else browser.post_form("/", data, post_url=url)
            want = expected[ROLES.index(role)]
            if response.status_code != want:
                failures.append(f"{role:14} {method} {url}: {response.status_code}, expected {want}")
            elif want == 403 and "You can't open this page" not in text_of(response):
                failures.append(f"{role:14} {method} {url}: 403 without the readable explanation")
            elif want == 302 and role in ("anonymous", "suspended") and expected[ROLES.index("member")] != 302:
                assert "/login?next=" in response.headers["Location"], (role, url)
    assert not failures, "\n".join(failures)


def test_every_route_is_in_the_matrix(app):
    covered = set()
    with app.test_request_context():
        adapter = app.url_map.bind("localhost")
        for method, template, _, _ in MATRIX:
            path = template.format(booking_id=1, completed_id=1, review_id=1, hold_id=1, member_id=1, weekly_id=1)
            covered.add(adapter.match(path.split("?")[0], method=method)[0])
    routes = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert routes - covered - ELSEWHERE == set()


def test_stream_channels_by_role(app, world):
    """/stream derives channels from the session; asking for one the session may not read is 403.
    (Live delivery per channel: tests/integration/test_realtime.py.)"""
    with app.app_context():
        ids = {role: db.session.scalar(select(User.id).where(User.email == email)) for role, email in EMAILS.items()}
    readable_by = {  # role -> channels it may ask for
        "anonymous": {"public"}, "suspended": {"public"},
        **{role: {"public", f"user:{ids[role]}"} for role in ("member", "other_member", "trainer", "other_trainer")},
        "admin": {"public", f"user:{ids['admin']}", "admin"},
    }
    asked = {"public", "admin", *(f"user:{user_id}" for user_id in ids.values())}
    failures = []
    for role in ROLES:
        browser = browser_for(app, role)
        for channel in sorted(asked):
            response = browser.get(f"/stream?channel={channel}")
            want = 200 if channel in readable_by[role] else 403
            if response.status_code != want:
                failures.append(f"{role} {channel}: {response.status_code}, expected {want}")
            response.close()  # ends the stream (and its lease) at once
    assert not failures, "\n".join(failures)
