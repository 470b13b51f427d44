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
