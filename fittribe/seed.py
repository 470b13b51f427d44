"""Demo data: specialties, five rich trainer profiles, one account per role, and an optional
large set of trainers for benchmarks. Every step is idempotent."""
from __future__ import annotations

import random
from functools import cache
from datetime import time
from decimal import Decimal

from sqlalchemy import func, insert, select

from .extensions import db
from .models import Role, Specialty, TrainerLanguage, TrainerProfile, User, WeeklyAvailability, trainer_specialties

DEMO_PASSWORD = "fittribe-demo"
DEMO_ACCOUNTS = {
    Role.MEMBER: ("member@fittribe.example", "Sam Member", "Europe/London"),
    Role.TRAINER: ("trainer@fittribe.example", "Maya Chen", "America/Los_Angeles"),
    Role.ADMIN: ("admin@fittribe.example", "Alex Admin", "UTC"),
}

SPECIALTIES = {
    "strength": "Strength training", "hiit": "HIIT", "yoga": "Yoga", "pilates": "Pilates",
    "mobility": "Mobility", "weight-loss": "Weight loss", "running": "Running", "boxing": "Boxing",
    "prenatal": "Pre- and postnatal", "rehab": "Injury rehab", "nutrition": "Nutrition coaching",
    "seniors": "Active ageing",
}

DEMO_TRAINERS = [
    dict(email="trainer@fittribe.example", name="Maya Chen", slug="maya-chen",
         headline="Strength & mobility coach for busy professionals",
         bio="Former collegiate rower turned strength coach. I build simple, progressive programs you can run "
             "from a small flat with a pair of dumbbells, and I care as much about how you move at 70 as at 30.",
         price=6500, years=9, tz="America/Los_Angeles", langs=["en", "zh"], specs=["strength", "mobility"],
         rating=Decimal("4.92"), reviews=138, lengths=[30, 60]),
    dict(email="lucia@fittribe.example", name="Lucía Fernández", slug="lucia-fernandez",
         headline="Vinyasa yoga and breathwork, in English or Spanish",
         bio="Ten years teaching yoga in Madrid and online. Classes adapt to stiff hips, desk shoulders and "
             "anxious minds; every session ends with five minutes of breathwork.",
         price=4500, years=10, tz="Europe/Madrid", langs=["es", "en"], specs=["yoga", "mobility", "prenatal"],
         rating=Decimal("4.85"), reviews=212, lengths=[45, 60, 90]),
    dict(email="kwame@fittribe.example", name="Kwame Mensah", slug="kwame-mensah",
         headline="Boxing conditioning and HIIT that you will actually enjoy",
         bio="Amateur boxing champion and certified PT. Expect pad work you can do with a partner or a "
             "shadow-boxing plan, plus conditioning that leaves you sweaty in 30 minutes.",
         price=5500, years=7, tz="Europe/London", langs=["en", "fr"], specs=["boxing", "hiit", "weight-loss"],
         rating=Decimal("4.78"), reviews=64, lengths=[30, 60]),
    dict(email="anna@fittribe.example", name="Anna Kowalski", slug="anna-kowalski",
         headline="Physio-informed rehab for knees, backs and shoulders",
         bio="Sports physiotherapist who moved into coaching. I bridge the gap between finishing physio and "
             "getting back to the sport you love, with clear milestones.",
         price=8000, years=12, tz="Europe/Warsaw", langs=["pl", "en", "de"], specs=["rehab", "mobility", "seniors"],
         rating=Decimal("4.97"), reviews=41, lengths=[60]),
    dict(email="diego@fittribe.example", name="Diego Santos", slug="diego-santos",
         headline="Marathon and 10K plans with weekly video check-ins",
         bio="Sub-2:40 marathoner and run coach. Training plans built around your week, gait feedback from "
             "your phone videos, and strength work that keeps you injury-free.",
         price=4000, years=6, tz="America/Sao_Paulo", langs=["pt", "es", "en"], specs=["running", "nutrition"],
         rating=Decimal("4.70"), reviews=89, lengths=[30, 45]),
]

PENDING_TRAINER = dict(email="pending@fittribe.example", name="Jordan Pending", slug="jordan-pending",
                       headline="New trainer awaiting approval", bio="Certified PT, waiting for review.",
                       price=3000, years=2, tz="America/New_York", langs=["en"], specs=["hiit"],
                       rating=Decimal("0"), reviews=0, lengths=[60])


def seed_demo() -> dict[str, int]:
    specialties = _ensure_specialties()
    created = {"users": 0, "trainers": 0}
    for role, (email, name, tz) in DEMO_ACCOUNTS.items():
        if role is not Role.TRAINER and _ensure_user(email, name, role, tz):
            created["users"] += 1
    for data, approved in [(t, True) for t in DEMO_TRAINERS] + [(PENDING_TRAINER, False)]:
        if _ensure_trainer(data, approved, specialties):
            created["trainers"] += 1
    db.session.flush()
    _ensure_weekly_hours()
    db.session.commit()
    _ensure_demo_session()
    _refresh_next_available()
    return created


def _refresh_next_available() -> None:
    """The hours and the demo session above bypass the booking services: give the demo trainers
    their real next free time for the search (and refresh it on every re-seed, as time passes)."""
    from .services.booking import refresh_next_available

    slugs = [data["slug"] for data in DEMO_TRAINERS + [PENDING_TRAINER]]
    refresh_next_available(db.session.scalars(select(TrainerProfile.id).where(TrainerProfile.slug.in_(slugs))))
    db.session.commit()


def _ensure_demo_session() -> None:
    """The demo member has one upcoming confirmed (simulated-paid) session with Maya."""
    from datetime import datetime, timedelta, timezone
    import secrets

    from flask import current_app

    from .models import Booking, BookingStatus, Payment, PaymentStatus
    from .services.booking import slots_for

    member = db.session.scalar(select(User).where(User.email == DEMO_ACCOUNTS[Role.MEMBER][0]))
    if db.session.scalar(select(func.count(Booking.id)).where(Booking.member_id == member.id)):
        return
    trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    slot = next((s for s in slots_for(trainer, 60) if s.starts_at >= tomorrow), None)
    if slot is None:
        return
    booking = Booking(trainer_id=trainer.id, member_id=member.id, starts_at=slot.starts_at, ends_at=slot.ends_at,
                      status=BookingStatus.CONFIRMED, price_cents=trainer.price_cents, currency=trainer.currency,
                      meeting_url=f"{current_app.config['JITSI_BASE_URL'].rstrip('/')}/FitTribe-{secrets.token_urlsafe(18)}")
    db.session.add(booking)
    db.session.flush()
    db.session.add(Payment(booking_id=booking.id, provider="simulated", provider_ref=f"pi_demo_{booking.id}",
                           amount_cents=booking.price_cents, currency=booking.currency, status=PaymentStatus.SUCCEEDED))
    db.session.commit()


# Demo weekly hours, local to each trainer: (weekdays, start hour, end hour).
DEMO_HOURS = {
    "maya-chen": [((0, 1, 2, 3, 4), 6, 10), ((0, 2, 4), 17, 20), ((5,), 8, 12)],
    "lucia-fernandez": [((0, 1, 2, 3, 4), 8, 13), ((1, 3), 18, 21)],
    "kwame-mensah": [((0, 1, 2, 3, 4, 5), 7, 9), ((0, 1, 2, 3), 18, 21)],
    "anna-kowalski": [((0, 2, 4), 9, 15)],
    "diego-santos": [((0, 1, 2, 3, 4), 6, 8), ((5, 6), 7, 11)],
}


def _ensure_weekly_hours() -> None:
    for slug, ranges in DEMO_HOURS.items():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == slug))
        if trainer is None or db.session.scalar(select(func.count(WeeklyAvailability.id)).where(
                WeeklyAvailability.trainer_id == trainer.id)):
            continue
        for weekdays, start, end in ranges:
            for weekday in weekdays:
                db.session.add(WeeklyAvailability(trainer_id=trainer.id, weekday=weekday,
                                                  start_time=time(start), end_time=time(end)))


def _ensure_specialties() -> dict[str, Specialty]:
    existing = {s.slug: s for s in db.session.scalars(select(Specialty))}
    for slug, name in SPECIALTIES.items():
        if slug not in existing:
            existing[slug] = Specialty(slug=slug, name=name)
            db.session.add(existing[slug])
    db.session.flush()
    return existing


def _ensure_user(email: str, name: str, role: Role, tz: str) -> User | None:
    if db.session.scalar(select(User).where(User.email == email)) is not None:
        return None
    user = User(email=email, name=name, role=role, time_zone=tz, password_hash=demo_password_hash())
    db.session.add(user)
    return user


def _ensure_trainer(data: dict, approved: bool, specialties: dict[str, Specialty]) -> bool:
    user = _ensure_user(data["email"], data["name"], Role.TRAINER, data["tz"])
    if user is None:
        return False
    db.session.add(TrainerProfile(
        user=user, slug=data["slug"], display_name=data["name"], headline=data["headline"], bio=data["bio"],
        price_cents=data["price"], years_experience=data["years"], time_zone=data["tz"], is_approved=approved,
        rating_avg=data["rating"], rating_count=data["reviews"], session_lengths=data["lengths"],
        specialties=[specialties[s] for s in data["specs"]],
        language_rows=[TrainerLanguage(code=c) for c in data["langs"]],
    ))
    return True


FIRST = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kira", "Liam",
         "Mei", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wei", "Yara", "Zane"]
LAST = ["Adams", "Brown", "Costa", "Dubois", "Eriksen", "Garcia", "Hoffmann", "Ivanova", "Jensen", "Kim",
        "Lopez", "Muller", "Novak", "Okafor", "Patel", "Rossi", "Silva", "Tanaka", "Weber", "Yilmaz"]
GOALS = ["strength", "fat loss", "mobility", "endurance", "posture", "confidence", "marathon prep", "flexibility"]


def seed_bulk_trainers(count: int, batch: int = 2000) -> int:
    """Add approved trainers until `count` bulk trainers exist (fast Core inserts)."""
    specialties = _ensure_specialties()
    db.session.commit()
    existing = db.session.scalar(select(func.count(User.id)).where(User.email.like("bulk-%@fittribe.example"))) or 0
    rng = random.Random(42 + existing)
    password_hash = demo_password_hash()
    spec_ids = [s.id for s in specialties.values()]
    langs = ["en", "es", "fr", "de", "it", "pt", "nl", "pl", "ja", "zh", "hi"]
    zones = ["UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Chicago", "Asia/Tokyo"]
    made = 0
    for start in range(existing, count, batch):
        end = min(count, start + batch)
        users = [dict(email=f"bulk-{i}@fittribe.example", password_hash=password_hash, role=Role.TRAINER,
                      name=f"{rng.choice(FIRST)} {rng.choice(LAST)}", time_zone=rng.choice(zones),
                      is_suspended=False) for i in range(start, end)]
        user_ids = db.session.scalars(insert(User).returning(User.id, sort_by_parameter_order=True), users).all()
        profiles = []
        for i, (user_id, user) in enumerate(zip(user_ids, users), start=start):
            count_reviews = rng.choice([0, 0, 1, 3, 8, 20, 50, 120, 300])
            profiles.append(dict(
                user_id=user_id, slug=f"bulk-{i}", display_name=user["name"],
                headline=f"{rng.choice(GOALS).capitalize()} coaching with {rng.randint(1, 25)} years on the floor",
                bio="Bulk benchmark trainer.", price_cents=rng.randrange(2000, 20000, 500),
                currency="USD", session_lengths=[60], years_experience=rng.randint(1, 25),
                time_zone=user["time_zone"], is_approved=rng.random() > 0.05,
                rating_avg=Decimal(str(round(rng.uniform(3.0, 5.0), 2))) if count_reviews else Decimal("0"),
                rating_count=count_reviews,
            ))
        trainer_ids = db.session.scalars(insert(TrainerProfile).returning(TrainerProfile.id, sort_by_parameter_order=True), profiles).all()
        db.session.execute(insert(trainer_specialties), [
            dict(trainer_id=tid, specialty_id=sid)
            for tid in trainer_ids for sid in rng.sample(spec_ids, rng.randint(1, 3))
        ])
        db.session.execute(insert(TrainerLanguage), [
            dict(trainer_id=tid, code=code) for tid in trainer_ids for code in rng.sample(langs, rng.randint(1, 3))
        ])
        db.session.commit()
        made += end - start
    return made


@cache
def demo_password_hash() -> str:
    """Hashed once: every demo account shares the demo password, and scrypt is slow on purpose."""
    user = User()
    user.set_password(DEMO_PASSWORD)
    return user.password_hash


# --- history: past sessions, payments and reviews ---------------------------------------------
# Regular members who trained with the demo trainers (the demo member trains with them too).
REGULARS = [
    ("priya.patel@fittribe.example", "Priya Patel", "Europe/London"),
    ("ben.adams@fittribe.example", "Ben Adams", "America/New_York"),
    ("mei.tanaka@fittribe.example", "Mei Tanaka", "Asia/Tokyo"),
    ("jonas.weber@fittribe.example", "Jonas Weber", "Europe/Berlin"),
    ("rosa.silva@fittribe.example", "Rosa Silva", "America/Sao_Paulo"),
    ("grace.okafor@fittribe.example", "Grace Okafor", "Africa/Lagos"),
]

# Per trainer: (stars, review, the trainer's reply or None, reports as (reporter, reason) pairs).
# A reporter is "trainer" (the reviewed trainer) or "member" (another member of the pool).
HISTORY_REVIEWS: dict[str, list[tuple[int, str, str | None, list[tuple[str, str]]]]] = {
    "maya-chen": [
        (5, "Maya rebuilt my deadlift from scratch over video. Clear cues, zero ego, and she noticed my hips "
            "shifting before I did.", "Thank you! Keep filming those top sets and we'll keep refining.", []),
        (5, "I only own two dumbbells and a mat, and she still made every minute count. The back pain I had after "
            "long workdays is gone.", None, []),
        (4, "Great mobility session, very structured. The connection dropped once, but she called back straight "
            "away and added the missing minutes at the end.", None, []),
        (3, "Good coaching, but the session felt rushed at the end; I'd have liked more time on the cool-down.",
         "Thanks for the honest feedback! I now keep the last ten minutes free for the cool-down.", []),
        (5, "Finally a coach who explains why. I left with a four-week plan I can actually follow between meetings.",
         None, []),
        (5, "Third session now: my squat depth improved and my knees no longer complain on the stairs.", None, []),
    ],
    "lucia-fernandez": [
        (5, "The breathwork at the end is worth the price alone. I slept better that night than in weeks.",
         "¡Qué bien! Five minutes every evening keeps that going.", []),
        (5, "Lucía adapts every pose to my stiff hips without making me feel like a beginner. Gracias!", None, []),
        (4, "Calm, precise and kind. I'd love slightly slower transitions, but the flow itself was lovely.", None, []),
        (5, "Prenatal session at 30 weeks: I felt safe the whole time and learned three stretches I now do every "
            "evening.", None, []),
        (2, "Too fast for me: I spent half the class trying to follow along on a small laptop screen.",
         "Sorry it felt rushed. Tell me at the start next time and I'll cue each transition more slowly.", []),
        (5, "I took the class in Spanish to practise the language; she made both the yoga and the vocabulary easy.",
         None, []),
    ],
    "kwame-mensah": [
        (5, "Thirty minutes of shadow boxing and I was soaked. Kwame's energy is contagious.", None, []),
        (4, "Hard, fun and well explained. Bring a towel and clear some space around you.", None, []),
        (4, "Great workout!!! For cheap supplements and 50% off protein visit bestgainz dot example and use the "
            "code KWAME at checkout!!!", None,
         [("member", "Spam: this is an advert for a shop, not a review."),
          ("trainer", "I have nothing to do with this shop; please remove the advert.")]),
        (5, "Learned a proper guard and footwork in one session. My partner and I now train together every week.",
         "Love that you train together now. Keep those elbows in!", []),
        (5, "Best HIIT I've done online. He counts you through the last round like a corner man.", None, []),
    ],
    "anna-kowalski": [
        (5, "After my ACL surgery I was scared to load the knee. Anna gave me clear milestones and I'm running "
            "again.", "So happy for you. Next milestone: hopping drills!", []),
        (5, "Physio-level knowledge with a coach's motivation. She checked my form from two camera angles.",
         None, []),
        (4, "Very thorough assessment. The homework was a bit much for one week, but it worked.", None, []),
        (1, "Useless. She wouldn't give me a diet plan and only talked about my knee for the whole hour. Avoid.",
         None, [("trainer", "The member booked a knee rehab session; I don't offer diet plans and said so when "
                            "they booked.")]),
    ],
    "diego-santos": [
        (5, "Diego's gait feedback from a phone video fixed my overstriding. I ran a 10K personal best three weeks "
            "later.", None, []),
        (5, "Plans that fit around shift work, and the weekly check-in keeps me honest.", None, []),
        (4, "Very knowledgeable. The session started five minutes late, but he made up for it at the end.",
         "Sorry about the late start, and thanks for your patience!", []),
        (2, "The coach was fine but the video kept freezing, this site is garbage and so are the people who "
            "built it.", None, [("member", "Insulting, and about the website rather than the coaching.")]),
        (3, "Solid running advice, though I expected more strength work than we did.", None, []),
    ],
}
HISTORY_UNREVIEWED_PER_TRAINER = 2  # completed sessions nobody reviewed (most members don't)


def seed_history(seed: int = 2024) -> dict[str, int]:
    """Past COMPLETED sessions with the demo trainers, each paid with a succeeded simulated payment,
    most of them reviewed (HISTORY_REVIEWS: texts, some trainer replies, 2–3 open reports), and the
    demo member's session with Maya from two days ago left unreviewed so the review form can be
    tried. Recomputes the demo trainers' ratings from their reviews at the end.

    Reusable for anything that needs history (analytics, earnings): run after seed_demo(). The same
    `seed` gives the same data (times are relative to now); idempotent: does nothing once the
    regular members exist. Returns what it added."""
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    from .models import Booking, BookingStatus, Payment, PaymentStatus, Review, ReviewFlag
    from .services.reviews import recompute_rating

    added = {"sessions": 0, "reviews": 0, "flags": 0}
    if db.session.scalar(select(User.id).where(User.email == REGULARS[0][0])) is not None:
        return added
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    regulars = [User(email=email, name=name, role=Role.MEMBER, time_zone=tz, password_hash=demo_password_hash())
                for email, name, tz in REGULARS]
    db.session.add_all(regulars)
    demo_member = db.session.scalar(select(User).where(User.email == DEMO_ACCOUNTS[Role.MEMBER][0]))
    trainers = {t.slug: t for t in db.session.scalars(select(TrainerProfile).where(
        TrainerProfile.slug.in_(HISTORY_REVIEWS)))}

    def completed_session(trainer: TrainerProfile, member: User, days_ago: int) -> Booking:
        local_start = datetime.combine((now - timedelta(days=days_ago)).date(), time(rng.choice([7, 9, 18])),
                                       ZoneInfo(trainer.time_zone))
        length = 60 if 60 in trainer.session_lengths else trainer.session_lengths[0]
        starts_at = local_start.astimezone(timezone.utc)
        booked_at = starts_at - timedelta(days=rng.randint(1, 10), hours=rng.randint(0, 12))
        booking = Booking(trainer_id=trainer.id, member_id=member.id, starts_at=starts_at,
                          ends_at=starts_at + timedelta(minutes=length), status=BookingStatus.COMPLETED,
                          price_cents=trainer.price_cents, currency=trainer.currency, created_at=booked_at,
                          meeting_url=f"https://meet.jit.si/FitTribe-demo-{rng.getrandbits(64):016x}")
        db.session.add(booking)
        db.session.flush()
        db.session.add(Payment(booking_id=booking.id, provider="simulated", provider_ref=f"pi_demo_{booking.id}",
                               amount_cents=booking.price_cents, currency=booking.currency,
                               status=PaymentStatus.SUCCEEDED, created_at=booked_at))
        added["sessions"] += 1
        return booking

    # Reviews are inserted oldest first, so their ids follow time (the profile lists by id).
    planned = []
    for slug, reviews in HISTORY_REVIEWS.items():
        trainer = trainers[slug]
        authors = rng.sample(regulars + [demo_member], len(reviews))
        days = sorted(rng.sample(range(5, 90), len(reviews) + HISTORY_UNREVIEWED_PER_TRAINER), reverse=True)
        for (stars, text, reply, reports), author, days_ago in zip(reviews, authors, days):
            booking = completed_session(trainer, author, days_ago)
            written = booking.ends_at + timedelta(hours=rng.randint(2, 96), minutes=rng.randint(0, 59))
            planned.append((written, trainer, booking, author, stars, text, reply, reports))
        for days_ago in days[len(reviews):]:
            completed_session(trainer, rng.choice(regulars), days_ago)
    completed_session(trainers["maya-chen"], demo_member, days_ago=2)  # the demo member can review this one

    for written, trainer, booking, author, stars, text, reply, reports in sorted(planned, key=lambda p: p[0]):
        review = Review(booking_id=booking.id, trainer_id=trainer.id, member_id=author.id, rating=stars, text=text,
                        created_at=written, reply=reply,
                        replied_at=written + timedelta(hours=rng.randint(1, 30), minutes=rng.randint(0, 59))
                        if reply else None)
        db.session.add(review)
        db.session.flush()
        added["reviews"] += 1
        for reporter, reason in reports:
            user = trainer.user if reporter == "trainer" else rng.choice([m for m in regulars if m.id != author.id])
            db.session.add(ReviewFlag(review_id=review.id, user_id=user.id, reason=reason,
                                      created_at=min(now, written + timedelta(hours=rng.randint(1, 48),
                                                                              minutes=rng.randint(0, 59)))))
            added["flags"] += 1
    for trainer in trainers.values():
        recompute_rating(trainer)
    db.session.commit()
    return added
