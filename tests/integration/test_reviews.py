"""Verified reviews: who may review what and when, the rating kept exact (also under concurrent
reviews), replies, reports, the admin moderation queue with its audit log, live announcements,
authorization on every route (no IDOR) and CSRF."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from fittribe.extensions import db
from fittribe.models import (AuditEntry, Booking, BookingStatus, Event, Notification, Review, ReviewFlag, Role,
                             TrainerProfile, User)
from fittribe.seed import demo_password_hash
from fittribe.services import reviews as review_service
from fittribe.services.search import SearchFilters, search_trainers
from tests.helpers import HTMX, Browser, text_of

UTC = timezone.utc
MEMBER, TRAINER, OTHER_TRAINER, ADMIN = ("member@fittribe.example", "trainer@fittribe.example",
                                         "lucia@fittribe.example", "admin@fittribe.example")
GOOD_REVIEW = {"rating": "5", "text": "Maya fixed my squat in one session. Clear cues and great energy!"}


# --- helpers -------------------------------------------------------------------------------------
def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def trainer(slug: str = "maya-chen") -> TrainerProfile:
    return db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == slug))


def past_booking(app, member_email: str = MEMBER, slug: str = "maya-chen", ended_ago: timedelta = timedelta(days=2),
                 status: BookingStatus = BookingStatus.COMPLETED) -> int:
    """A session that ended `ended_ago` ago, written straight to the DB (no worker runs in tests)."""
    with app.app_context():
        coach = trainer(slug)
        ends_at = datetime.now(UTC) - ended_ago
        booking = Booking(trainer_id=coach.id, member_id=user(member_email).id, starts_at=ends_at - timedelta(hours=1),
                          ends_at=ends_at, status=status, price_cents=coach.price_cents, currency=coach.currency)
        db.session.add(booking)
        db.session.commit()
        return booking.id


def reviewed_booking(app, rating: int, text: str = "A solid session with clear coaching.", days: int = 3,
                     member_email: str = MEMBER, slug: str = "maya-chen") -> int:
    """A completed session reviewed through the service; returns the review id."""
    booking_id = past_booking(app, member_email, slug, timedelta(days=days, hours=rating))
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        return review_service.post_review(booking, user(member_email), rating, text).id


def new_member(app, email: str, name: str = "Riley Member") -> None:
    with app.app_context():
        db.session.add(User(email=email, name=name, role=Role.MEMBER, password_hash=demo_password_hash()))
        db.session.commit()


def rating_of(app, slug: str = "maya-chen") -> tuple[Decimal, int]:
    with app.app_context():
        coach = trainer(slug)
        return coach.rating_avg, coach.rating_count


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(model.id)))


def announced(app, channel_prefix: str = "trainer:") -> list[tuple[str, str | None]]:
    with app.app_context():
        # A named event's type, or the live fragment a push re-renders (realtime/live.py).
        return [(e.channel, e.type or e.payload.get("fragment")) for e in db.session.scalars(
            select(Event).where(Event.channel.startswith(channel_prefix)).order_by(Event.id))]


def words(response) -> str:
    """The page's text with runs of whitespace as single spaces."""
    return " ".join(text_of(response).split())


def browser_for(app, email: str | None) -> Browser:
    browser = Browser(app.test_client())
    if email:
        browser.login(email)
    return browser


def trainer_id(app, slug: str = "maya-chen") -> int:
    with app.app_context():
        return trainer(slug).id


# --- writing a review ---------------------------------------------------------------------------
def test_member_reviews_a_completed_session_and_the_profile_shows_it(app, demo):
    booking_id = past_booking(app)
    member = browser_for(app, MEMBER)
    page = member.get(f"/bookings/{booking_id}")
    assert page.status_code == 200 and "How was your session?" in text_of(page)  # the form, on the booking page
    with app.app_context():  # the demo fixture's figures come without review rows
        db.session.execute(TrainerProfile.__table__.update().values(rating_avg=0, rating_count=0))
        db.session.commit()
    announced_before = len(announced(app))

    response = member.post_form(f"/bookings/{booking_id}", {"rating": "4", "text": "  Tough but fun, great cues.  "},
                                post_url=f"/bookings/{booking_id}/review")
    assert response.status_code == 303 and "/trainers/maya-chen#review-" in response.headers["Location"]
    with app.app_context():
        review = db.session.scalar(select(Review))
        assert (review.rating, review.text, review.booking_id) == (4, "Tough but fun, great cues.", booking_id)
    assert rating_of(app) == (Decimal("4.00"), 1)
    # Every open profile of Maya gets its reviews and rating pushed (on her channel).
    assert announced(app)[announced_before:] == [(f"trainer:{trainer_id(app)}", "reviews")]
    with app.app_context():
        maya_user = user(TRAINER)
        assert db.session.scalar(select(Notification.message).where(Notification.user_id == maya_user.id)) \
            == "Sam Member left a 4★ review of your session."

    profile = text_of(member.get("/trainers/maya-chen"))
    assert "Tough but fun, great cues." in profile and "Sam M." in profile and "★ 4.0" in profile
    booking_page = text_of(member.get(f"/bookings/{booking_id}"))
    assert "Your review" in booking_page and "How was your session?" not in booking_page


def test_a_session_can_be_reviewed_only_once(app, demo):
    booking_id = past_booking(app)
    member = browser_for(app, MEMBER)
    url = f"/bookings/{booking_id}/review"
    assert member.post_form(url, GOOD_REVIEW).status_code == 303
    again = member.post_form(f"/bookings/{booking_id}", {**GOOD_REVIEW, "rating": "1"}, post_url=url)
    assert again.status_code == 409 and "You already reviewed this session." in text_of(again)
    assert member.get(url).status_code == 409
    with app.app_context():
        assert db.session.scalar(select(Review.rating)) == 5
    assert count(app, Review) == 1


@pytest.mark.parametrize("status, ended_ago", [
    (BookingStatus.CONFIRMED, timedelta(days=-20)),  # still to come
    (BookingStatus.CANCELLED, timedelta(days=2)),
    (BookingStatus.NO_SHOW, timedelta(days=2)),
    (BookingStatus.CONFIRMED, timedelta(hours=1)),  # over, but not marked completed yet
])
def test_only_a_completed_session_can_be_reviewed(app, demo, status, ended_ago):
    booking_id = past_booking(app, status=status, ended_ago=ended_ago)
    member = browser_for(app, MEMBER)
    response = member.post_form(f"/bookings/{booking_id}", GOOD_REVIEW, post_url=f"/bookings/{booking_id}/review")
    assert response.status_code == 409 and "Only a completed session can be reviewed" in text_of(response)
    assert "How was your session?" not in text_of(member.get(f"/bookings/{booking_id}"))
    assert count(app, Review) == 0


def test_the_review_window_closes_after_thirty_days(app, demo):
    assert app.config["REVIEW_WINDOW_DAYS"] == 30
    inside = past_booking(app, ended_ago=timedelta(days=29, hours=23))
    outside = past_booking(app, ended_ago=timedelta(days=30, minutes=5))
    member = browser_for(app, MEMBER)
    late = member.post_form("/", GOOD_REVIEW, post_url=f"/bookings/{outside}/review")
    assert late.status_code == 403 and "window has closed" in text_of(late)
    assert count(app, Review) == 0
    assert member.post_form("/", GOOD_REVIEW, post_url=f"/bookings/{inside}/review").status_code == 303


def test_nobody_reviews_someone_elses_session(app, demo):
    booking_id = past_booking(app)
    new_member(app, "riley@example.com")
    url = f"/bookings/{booking_id}/review"
    # A stranger does not learn the booking exists; the trainer and an admin see it but may not review it.
    for email, status in [("riley@example.com", 404), (OTHER_TRAINER, 404), (TRAINER, 403), (ADMIN, 403)]:
        response = browser_for(app, email).post_form("/", GOOD_REVIEW, post_url=url)
        assert response.status_code == status, email
    assert browser_for(app, MEMBER).post_form("/", GOOD_REVIEW, post_url="/bookings/999999/review").status_code == 404
    assert count(app, Review) == 0


@pytest.mark.parametrize("data, message", [
    ({"rating": "0", "text": GOOD_REVIEW["text"]}, "Choose 1 to 5 stars."),
    ({"rating": "6", "text": GOOD_REVIEW["text"]}, "Choose 1 to 5 stars."),
    ({"rating": "five", "text": GOOD_REVIEW["text"]}, "Choose 1 to 5 stars."),
    ({"text": GOOD_REVIEW["text"]}, "Choose 1 to 5 stars."),
    ({"rating": "5", "text": "   Too short   "}, "Use 10 to 2000 characters."),  # 9 characters once stripped
    ({"rating": "5", "text": "x" * 2001}, "Use 10 to 2000 characters."),
    ({"rating": "5", "text": "          "}, "Tell other members how the session went."),
])
def test_bad_reviews_are_refused_with_a_clear_message_and_store_nothing(app, demo, data, message):
    booking_id = past_booking(app)
    member = browser_for(app, MEMBER)
    response = member.post_form(f"/bookings/{booking_id}", data, post_url=f"/bookings/{booking_id}/review")
    assert response.status_code == 422 and message in text_of(response)
    assert 'id="review-form"' in response.get_data(as_text=True)  # the form again, with the error
    fragment = member.post_form(f"/bookings/{booking_id}", data, post_url=f"/bookings/{booking_id}/review",
                                headers=HTMX)
    assert fragment.status_code == 422 and fragment.get_data(as_text=True).lstrip().startswith("<form")
    assert count(app, Review) == 0 and rating_of(app)[1] == 138  # the seeded figures, untouched


def test_the_service_enforces_the_same_rules(app, demo):
    booking_id = past_booking(app)
    with app.app_context():
        booking, member = db.session.get(Booking, booking_id), user(MEMBER)
        for rating, text in [(0, "Long enough text"), (6, "Long enough text"), ("5", "Long enough text"),
                             (5, " short "), (5, "y" * 2001)]:
            with pytest.raises(review_service.Invalid):
                review_service.post_review(booking, member, rating, text)
        assert db.session.scalar(select(func.count(Review.id))) == 0


def test_html_in_reviews_and_replies_is_shown_as_text(app, demo):
    payload = '<script>alert("xss")</script><img src=x onerror=alert(1)> Great coach!'
    review_id = reviewed_booking(app, 5, payload)
    maya = browser_for(app, TRAINER)
    assert maya.post_form("/dashboard/", {"reply": "<b>Thanks</b><script>alert(2)</script>"},
                          post_url=f"/dashboard/reviews/{review_id}/reply").status_code == 303
    for page in (maya.get("/trainers/maya-chen"), maya.get("/dashboard/"),
                 browser_for(app, ADMIN).get("/admin/reviews"),
                 maya.get("/trainers/maya-chen/reviews", headers=HTMX)):
        html = page.get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>Thanks" not in html
    html = maya.get("/trainers/maya-chen").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; Great coach!" in html
    assert "&lt;b&gt;Thanks&lt;/b&gt;" in html


# --- the rating ----------------------------------------------------------------------------------
def test_rating_counts_only_visible_reviews_through_flag_hide_and_restore(app, demo):
    with app.app_context():
        db.session.execute(TrainerProfile.__table__.update().values(rating_avg=0, rating_count=0))
        db.session.commit()
    reviewed_booking(app, 5, days=3)
    reviewed_booking(app, 4, days=4)
    bad = reviewed_booking(app, 1, "Rude coach, total scam, never again!!!", days=5)
    assert rating_of(app) == (Decimal("3.33"), 3)

    # Lucía (not the author) reports it: every admin is alerted live, the queue lists it.
    lucia = browser_for(app, OTHER_TRAINER)
    assert lucia.get(f"/reviews/{bad}/flag").status_code == 200
    assert lucia.post_form(f"/reviews/{bad}/flag", {"reason": "Abusive and not about a session"}).status_code == 303
    with app.app_context():
        admin_id = user(ADMIN).id
        alert = db.session.scalar(select(Notification).where(Notification.user_id == admin_id))
        assert alert.kind == "review-flagged" and "Abusive" in alert.message and alert.link == f"/admin/reviews#review-{bad}"
    assert (f"user:{admin_id}", None) in announced(app, "user:")  # the toast, pushed to the admin's open pages
    assert ("admin", "review-moderation") in announced(app, "admin")
    again = lucia.post_form(f"/reviews/{bad}/flag", {"reason": "Reporting twice"})
    assert again.status_code == 409 and "already reported" in text_of(again)
    author = browser_for(app, MEMBER)
    assert author.post_form("/", {"reason": "my own"}, post_url=f"/reviews/{bad}/flag").status_code == 403
    assert count(app, ReviewFlag) == 1

    admin_browser = browser_for(app, ADMIN)
    queue = text_of(admin_browser.get("/admin/reviews"))
    assert "Reported reviews (1)" in queue and "Abusive and not about a session" in queue and "Lucía Fernández" in queue

    # Hiding asks for confirmation with a reason; the review leaves the profile and the rating.
    confirm = admin_browser.get(f"/admin/reviews/{bad}/hide")
    assert confirm.status_code == 200 and "Hide this review?" in text_of(confirm)
    assert admin_browser.post_form(f"/admin/reviews/{bad}/hide", {"reason": ""}).status_code == 422
    before = len(announced(app))
    assert admin_browser.post_form(f"/admin/reviews/{bad}/hide", {"reason": "Abusive language"}).status_code == 303
    assert rating_of(app) == (Decimal("4.50"), 2)
    assert announced(app)[before:] == [(f"trainer:{trainer_id(app)}", "reviews")]
    assert "total scam" not in text_of(browser_for(app, None).get("/trainers/maya-chen"))
    assert browser_for(app, None).get("/trainers/maya-chen/reviews", headers=HTMX).status_code == 200
    assert lucia.get(f"/reviews/{bad}/flag").status_code == 404  # hidden: nothing to report any more
    with app.app_context():
        flag = db.session.scalar(select(ReviewFlag))
        assert flag.resolution == "hidden" and flag.resolved_at is not None
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.target_type == "review"))
        assert (entry.actor_id, entry.action, entry.target_id, entry.detail) == (admin_id, "hide", bad, "Abusive language")
    page = words(admin_browser.get("/admin/reviews"))
    assert "Reported reviews (0)" in page and "Alex Admin hid review #%d of Maya Chen: Abusive language" % bad in page
    assert admin_browser.post_form("/admin/reviews", {"reason": "again"},
                                   post_url=f"/admin/reviews/{bad}/hide").status_code == 409

    # Restoring brings it back, and the rating is exact again.
    assert admin_browser.post_form("/admin/reviews", {}, post_url=f"/admin/reviews/{bad}/restore").status_code == 303
    assert rating_of(app) == (Decimal("3.33"), 3)
    assert "total scam" in text_of(browser_for(app, None).get("/trainers/maya-chen"))
    assert admin_browser.post_form("/admin/reviews", {}, post_url=f"/admin/reviews/{bad}/restore").status_code == 409
    assert "Alex Admin restored review #%d" % bad in words(admin_browser.get("/admin/reviews"))


def test_dismissing_reports_keeps_the_review_and_is_logged(app, demo):
    review_id = reviewed_booking(app, 2, "Not my favourite session, too rushed.")
    new_member(app, "riley@example.com")
    for email in ("riley@example.com", OTHER_TRAINER):
        assert browser_for(app, email).post_form(f"/reviews/{review_id}/flag", {"reason": "Unfair"}).status_code == 303
    admin = browser_for(app, ADMIN)
    assert "2 open reports" in text_of(admin.get("/admin/reviews"))
    assert admin.post_form("/admin/reviews", {}, post_url=f"/admin/reviews/{review_id}/dismiss").status_code == 303
    assert rating_of(app) == (Decimal("2.00"), 1)
    with app.app_context():
        assert {f.resolution for f in db.session.scalars(select(ReviewFlag))} == {"dismissed"}
        entry = db.session.scalar(select(AuditEntry))
        assert (entry.action, entry.target_id, entry.detail) == ("dismiss", review_id, "2 reports dismissed")
    page = words(admin.get("/admin/reviews"))
    assert "Reported reviews (0)" in page and "dismissed the reports on review #%d" % review_id in page
    assert admin.post_form("/admin/reviews", {}, post_url=f"/admin/reviews/{review_id}/dismiss").status_code == 409


def test_concurrent_reviews_of_one_trainer_lose_no_update(app, demo, monkeypatch):
    """Each review recomputes the rating with the trainer row locked: without the lock, reviews
    committing at the same time would each count only themselves (last write wins)."""
    with app.app_context():
        db.session.execute(TrainerProfile.__table__.update().values(rating_avg=0, rating_count=0))
        db.session.commit()
    ratings = [5, 4, 3, 5, 2]
    emails = [f"racer{n}@example.com" for n in range(len(ratings))]
    for email in emails:
        new_member(app, email)
    bookings = [past_booking(app, email, ended_ago=timedelta(days=2, hours=n)) for n, email in enumerate(emails)]

    original = review_service.recompute_rating

    def slow_recompute(trainer_profile):
        original(trainer_profile)
        time.sleep(0.2)  # widen the window between reading the aggregate and committing it

    monkeypatch.setattr(review_service, "recompute_rating", slow_recompute)
    start, errors = threading.Barrier(len(ratings)), []

    def post(booking_id: int, email: str, stars: int) -> None:
        try:
            with app.app_context():
                booking = db.session.get(Booking, booking_id)
                start.wait()
                review_service.post_review(booking, user(email), stars, "Concurrent but fine session.")
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=post, args=args) for args in zip(bookings, emails, ratings)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert rating_of(app) == (Decimal("3.80"), 5)


def test_one_five_star_review_does_not_outrank_two_hundred_at_4_9(app, demo):
    """Search ranks by the Bayesian average, so a single 5★ review does not beat a long record."""
    with app.app_context():
        db.session.execute(TrainerProfile.__table__.update().values(rating_avg=0, rating_count=0))
        lucia = trainer("lucia-fernandez")
        lucia.rating_avg, lucia.rating_count = Decimal("4.90"), 200
        db.session.commit()
    reviewed_booking(app, 5)  # Maya: one review, through the service
    assert rating_of(app) == (Decimal("5.00"), 1)
    with app.app_context():
        ranked = [t.slug for t in search_trainers(SearchFilters(), per_page=12).items]
        assert ranked.index("lucia-fernandez") < ranked.index("maya-chen")
    first = browser_for(app, None).get("/trainers").get_data(as_text=True)
    assert first.index("Lucía Fernández") < first.index("Maya Chen")


# --- replies ---------------------------------------------------------------------------------------
def test_trainer_replies_once_from_the_dashboard(app, demo):
    review_id = reviewed_booking(app, 4, "Good session, a bit short on cool-down.")
    maya = browser_for(app, TRAINER)
    dashboard = text_of(maya.get("/dashboard/"))
    assert "Good session, a bit short on cool-down." in dashboard and "Publish reply" in dashboard
    url = f"/dashboard/reviews/{review_id}/reply"
    assert maya.post_form("/dashboard/", {"reply": "   "}, post_url=url).status_code == 422
    too_long = maya.post_form("/dashboard/", {"reply": "z" * 1001}, post_url=url)
    assert too_long.status_code == 422 and "at most 1000 characters" in text_of(too_long)
    assert browser_for(app, OTHER_TRAINER).post_form("/", {"reply": "Not mine"}, post_url=url).status_code == 404
    before = len(announced(app))
    response = maya.post_form("/dashboard/", {"reply": "Thanks! I'll keep ten minutes for it.", "back": "/dashboard/"},
                              post_url=url)
    assert response.status_code == 303 and response.headers["Location"] == f"/dashboard/#review-{review_id}"
    assert announced(app)[before:] == [(f"trainer:{trainer_id(app)}", "reviews")]
    profile = text_of(browser_for(app, None).get("/trainers/maya-chen"))
    assert "Reply from Maya Chen" in profile and "I'll keep ten minutes for it." in profile
    again = maya.post_form("/dashboard/", {"reply": "Second reply"}, post_url=url)
    assert again.status_code == 409 and "already replied" in text_of(again)
    with app.app_context():
        assert db.session.get(Review, review_id).reply == "Thanks! I'll keep ten minutes for it."
        member = user(MEMBER)
        assert db.session.scalar(select(Notification.message).where(Notification.user_id == member.id)) \
            == "Maya Chen replied to your review."


def test_reply_with_htmx_swaps_in_the_published_reply(app, demo):
    review_id = reviewed_booking(app, 5)
    maya = browser_for(app, TRAINER)
    url = f"/dashboard/reviews/{review_id}/reply"
    invalid = maya.post_form("/dashboard/", {"reply": ""}, post_url=url, headers=HTMX)
    assert invalid.status_code == 422 and f'id="reply-form-{review_id}"' in invalid.get_data(as_text=True)
    done = maya.post_form("/dashboard/", {"reply": "Thank you!", "back": "https://evil.example/"}, post_url=url,
                          headers=HTMX)
    assert done.status_code == 200 and "Reply from Maya Chen" in text_of(done) and "<form" not in text_of(done)


def test_the_no_js_reply_goes_back_only_to_a_dashboard_page(app, demo):
    review_id = reviewed_booking(app, 5)
    response = browser_for(app, TRAINER).post_form(
        "/dashboard/", {"reply": "Thank you!", "back": "//evil.example/dashboard/"},
        post_url=f"/dashboard/reviews/{review_id}/reply")
    assert response.headers["Location"] == f"/dashboard/#review-{review_id}"


# --- the profile's reviews section -------------------------------------------------------------
def test_profile_lists_reviews_newest_first_ten_a_page(app, demo):
    for n in range(12):
        reviewed_booking(app, 5 - n % 3, f"Review number {n:02d}, a good session.", days=3 + n)
    visitor = browser_for(app, None)
    first = text_of(visitor.get("/trainers/maya-chen"))
    shown = [n for n in range(12) if f"Review number {n:02d}" in first]
    assert shown == list(range(2, 12)) and first.index("number 11") < first.index("number 02")  # newest first
    assert "Page 1 of 2" in first and 'href="/trainers/maya-chen?reviews_page=2#reviews"' in first
    second = text_of(visitor.get("/trainers/maya-chen?reviews_page=2"))
    assert "Review number 01" in second and "Review number 00" in second and "Review number 05" not in second
    fragment = visitor.get("/trainers/maya-chen/reviews?page=2", headers=HTMX)
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and html.lstrip().startswith('<section id="reviews"')
    assert 'hx-trigger="live:resync from:#live' in html and "Review number 00" in html
    assert 'class="panel reviews-page-2"' in html  # a push of the first page leaves this one alone
    no_js = visitor.get("/trainers/maya-chen/reviews?page=2")
    assert no_js.status_code == 302 and no_js.headers["Location"] == "/trainers/maya-chen?reviews_page=2#reviews"
    empty = text_of(visitor.get("/trainers/maya-chen?reviews_page=9"))
    assert "No reviews on this page." in empty
    assert "Page 1 of 2" in text_of(visitor.get("/trainers/maya-chen?reviews_page=abc"))


def test_profile_and_fragments_show_the_rating_and_dates_on_the_viewers_clock(app, demo):
    review_id = reviewed_booking(app, 5)
    with app.app_context():
        review = db.session.get(Review, review_id)
        review.created_at = datetime(2026, 3, 1, 6, 30, tzinfo=UTC)  # 28 Feb 22:30 in Los Angeles
        db.session.commit()
    anonymous = text_of(browser_for(app, None).get("/trainers/maya-chen"))  # visitors: Maya's zone (Los Angeles)
    assert "28 February 2026" in anonymous
    member = text_of(browser_for(app, MEMBER).get("/trainers/maya-chen"))  # Sam: Europe/London
    assert "1 March 2026" in member
    rating = browser_for(app, None).get("/trainers/maya-chen/rating", headers=HTMX)
    html = rating.get_data(as_text=True)
    assert rating.status_code == 200 and html.lstrip().startswith('<span id="rating-summary"') and "★ 5.0" in html
    assert 'hx-trigger="live:resync from:#live' in html


def test_empty_state_and_report_links(app, demo):
    visitor = browser_for(app, None)
    assert "No reviews yet." in text_of(visitor.get("/trainers/lucia-fernandez"))
    review_id = reviewed_booking(app, 5)
    assert "Report this review" not in text_of(visitor.get("/trainers/maya-chen"))  # visitors: log in first
    assert "Report this review" not in text_of(browser_for(app, MEMBER).get("/trainers/maya-chen"))  # the author
    assert f"/reviews/{review_id}/flag" in browser_for(app, OTHER_TRAINER).get("/trainers/maya-chen").get_data(as_text=True)


# --- authorization on every new route ---------------------------------------------------------
ROLES = ("anonymous", "suspended", "member", "trainer", "other_trainer", "admin")
EMAILS = {"member": MEMBER, "trainer": TRAINER, "other_trainer": OTHER_TRAINER, "admin": ADMIN,
          "suspended": "suspended@example.com"}

# (method, path, form data, htmx?) -> status for each of ROLES. {open}: a completed session of the
# demo member not reviewed yet; {review}: the member's review of Maya; {hidden}: a hidden one;
# {flagged}: a review with an open report.
MATRIX = [
    ("GET", "/trainers/maya-chen/reviews", None, True, (200, 200, 200, 200, 200, 200)),
    ("GET", "/trainers/maya-chen/reviews", None, False, (302, 302, 302, 302, 302, 302)),
    ("GET", "/trainers/maya-chen/rating", None, True, (200, 200, 200, 200, 200, 200)),
    ("GET", "/trainers/jordan-pending/reviews", None, True, (404, 404, 404, 404, 404, 200)),
    ("GET", "/bookings/{open}/review", None, False, (302, 302, 200, 403, 404, 403)),
    ("POST", "/bookings/{open}/review", GOOD_REVIEW, False, (302, 302, 303, 403, 404, 403)),
    ("GET", "/bookings/999999/review", None, False, (302, 302, 404, 404, 404, 404)),
    ("GET", "/reviews/{review}/flag", None, False, (302, 302, 403, 200, 200, 200)),
    ("POST", "/reviews/{review}/flag", {"reason": "Looks fake"}, False, (302, 302, 403, 303, 303, 303)),
    ("GET", "/reviews/{hidden}/flag", None, False, (302, 302, 404, 404, 404, 404)),
    ("GET", "/dashboard/reviews", None, False, (302, 302, 403, 200, 200, 403)),
    ("POST", "/dashboard/reviews/{review}/reply", {"reply": "Thanks!"}, False, (302, 302, 403, 303, 404, 403)),
    ("POST", "/dashboard/reviews/{hidden}/reply", {"reply": "Thanks!"}, False, (302, 302, 403, 404, 404, 403)),
    ("GET", "/admin/reviews", None, False, (302, 302, 403, 403, 403, 200)),
    ("GET", "/admin/reviews/{review}/hide", None, False, (302, 302, 403, 403, 403, 200)),
    ("POST", "/admin/reviews/{review}/hide", {"reason": "Test hide"}, False, (302, 302, 403, 403, 403, 303)),
    ("POST", "/admin/reviews/{hidden}/restore", {}, False, (302, 302, 403, 403, 403, 303)),
    ("POST", "/admin/reviews/{flagged}/dismiss", {}, False, (302, 302, 403, 403, 403, 303)),
    ("POST", "/admin/reviews/999999/dismiss", {}, False, (302, 302, 403, 403, 403, 404)),
]


@pytest.fixture
def review_world(app, demo) -> dict[str, int]:
    new_member(app, "suspended@example.com", "Sue Spended")
    new_member(app, "riley@example.com")
    world = {"open": past_booking(app, ended_ago=timedelta(days=1)),
             "review": reviewed_booking(app, 4, days=2),
             "hidden": reviewed_booking(app, 1, "Hidden for the test, rude words.", days=3),
             "flagged": reviewed_booking(app, 3, "Reported for the test, fine though.", days=4)}
    with app.app_context():
        review_service.hide(db.session.get(Review, world["hidden"]), user(ADMIN), "Rude")
        review_service.flag(db.session.get(Review, world["flagged"]), user("riley@example.com"), "Unfair")
    return world


@pytest.mark.parametrize("method, path, data, htmx, expected", MATRIX,
                         ids=[f"{m} {p}{' htmx' if h else ''}" for m, p, _, h, _ in MATRIX])
def test_authorization_matrix(app, review_world, method, path, data, htmx, expected):
    path = path.format(**review_world)
    for role, status in zip(ROLES, expected):
        browser = browser_for(app, EMAILS.get(role))
        if role == "suspended":  # suspended after logging in: the open session ends too
            with app.app_context():
                user(EMAILS[role]).is_suspended = True
                db.session.commit()
        headers = HTMX if htmx else {}
        if method == "GET":
            response = browser.get(path, headers=headers)
        else:
            response = browser.post_form("/", data, post_url=path, headers=headers)
        assert response.status_code == status, f"{role} {method} {path}"
        if status == 302 and role in ("anonymous", "suspended") and "/trainers/" not in path:
            assert "/login?next=" in response.headers["Location"]
        if status == 403:
            assert "You can't open this page" in text_of(response)


POSTS = [
    ("/bookings/{open}/review", MEMBER, GOOD_REVIEW),
    ("/reviews/{review}/flag", OTHER_TRAINER, {"reason": "Looks fake"}),
    ("/dashboard/reviews/{review}/reply", TRAINER, {"reply": "Thanks!"}),
    ("/admin/reviews/{review}/hide", ADMIN, {"reason": "Test hide"}),
    ("/admin/reviews/{hidden}/restore", ADMIN, {}),
    ("/admin/reviews/{flagged}/dismiss", ADMIN, {}),
]


@pytest.mark.parametrize("path, email, data", POSTS, ids=[p for p, _, _ in POSTS])
def test_csrf_is_enforced_on_every_post(app, review_world, path, email, data):
    browser = browser_for(app, email)
    with app.app_context():
        before = (db.session.scalar(select(func.count(Review.id))), db.session.scalar(select(func.count(ReviewFlag.id))),
                  db.session.scalar(select(func.count(AuditEntry.id))))
    for token in (None, "forged-token"):
        form = dict(data) | ({"csrf_token": token} if token else {})
        response = browser.client.post(path.format(**review_world), data=form)
        assert response.status_code == 400 and "Your form expired" in text_of(response)
    with app.app_context():
        after = (db.session.scalar(select(func.count(Review.id))), db.session.scalar(select(func.count(ReviewFlag.id))),
                 db.session.scalar(select(func.count(AuditEntry.id))))
        assert after == before
        assert db.session.get(Review, review_world["review"]).reply is None
        assert db.session.get(Review, review_world["hidden"]).hidden_at is not None
