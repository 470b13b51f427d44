"""Trainers edit weekly hours and date changes; members' calendars follow."""
from datetime import time

import pytest
from sqlalchemy import func, select

from fittribe.extensions import db
from fittribe.models import AvailabilityOverride, Event, WeeklyAvailability
from tests.helpers import HTMX, csrf_token_from, text_of


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(model.id)))


def test_trainer_adds_and_removes_weekly_hours_without_js(app, visitor, demo):
    visitor.login("trainer@fittribe.example")
    page = visitor.get("/dashboard/availability")
    assert page.status_code == 200 and "Monday 06:00–10:00" in text_of(page)
    before = count(app, WeeklyAvailability)
    response = visitor.post_form("/dashboard/availability",
                                 {"weekly-weekday": "6", "weekly-start": "14:00", "weekly-end": "16:30"}, post_url="/dashboard/availability/weekly")
    assert response.status_code == 303
    assert "Sunday 14:00–16:30" in text_of(visitor.get("/dashboard/availability"))
    assert count(app, WeeklyAvailability) == before + 1
    with app.app_context():
        event = db.session.scalar(select(Event).order_by(Event.id.desc()))
        row_id = db.session.scalar(select(WeeklyAvailability.id).where(
            WeeklyAvailability.weekday == 6, WeeklyAvailability.start_time == time(14)))
    assert event.payload.get("fragment") == "availability"  # open profiles get the new calendar pushed
    removed = visitor.post_form("/dashboard/availability", {}, post_url=f"/dashboard/availability/weekly/{row_id}/delete")
    assert removed.status_code == 303 and count(app, WeeklyAvailability) == before


@pytest.mark.parametrize("data, message", [
    ({"weekly-weekday": "0", "weekly-start": "09:00", "weekly-end": "08:00"}, "end must be after the start"),
    ({"weekly-weekday": "0", "weekly-start": "07:00", "weekly-end": "08:00"}, "overlaps your Monday hours 06:00–10:00"),
    ({"weekly-weekday": "9", "weekly-start": "07:00", "weekly-end": "08:00"}, "Not a valid choice"),
    ({"weekly-weekday": "0", "weekly-start": "7am", "weekly-end": "08:00"}, "Not a valid time"),
])
def test_bad_weekly_hours_give_422_and_change_nothing(app, visitor, demo, data, message):
    visitor.login("trainer@fittribe.example")
    before = count(app, WeeklyAvailability)
    response = visitor.post_form("/dashboard/availability", data, post_url="/dashboard/availability/weekly")
    assert response.status_code == 422 and message in text_of(response)
    assert count(app, WeeklyAvailability) == before


def test_day_off_and_other_hours_with_htmx(app, visitor, demo):
    visitor.login("trainer@fittribe.example")
    token = csrf_token_from(visitor.get("/dashboard/availability").get_data(as_text=True))
    day_off = visitor.client.post("/dashboard/availability/overrides", headers=HTMX,
                                  data={"csrf_token": token, "date-day": "2026-12-24", "date-start": "", "date-end": ""})
    assert day_off.status_code == 200
    html = text_of(day_off)
    assert html.lstrip().startswith('<div id="availability-editor"') and "Thu 24 Dec 2026: day off" in html
    half = visitor.client.post("/dashboard/availability/overrides", headers=HTMX,
                               data={"csrf_token": token, "date-day": "2026-12-24", "date-start": "10:00", "date-end": ""})
    assert half.status_code == 422 and "Give both a start and an end" in text_of(half)
    assert count(app, AvailabilityOverride) == 1


def test_only_trainers_edit_and_only_their_own_rows(app, visitor, demo):
    visitor.login("member@fittribe.example")
    assert visitor.get("/dashboard/availability").status_code == 403
    visitor.logout()
    with app.app_context():
        from fittribe.models import TrainerProfile

        lucia = db.session.scalar(select(TrainerProfile.id).where(TrainerProfile.slug == "lucia-fernandez"))
        lucia_row = db.session.scalar(select(WeeklyAvailability.id).where(WeeklyAvailability.trainer_id == lucia))
    visitor.login("trainer@fittribe.example")  # Maya may not delete Lucía's hours
    response = visitor.post_form("/dashboard/availability", {}, post_url=f"/dashboard/availability/weekly/{lucia_row}/delete")
    assert response.status_code == 404
    assert visitor.post_form("/dashboard/availability", {}, post_url="/dashboard/availability/nope/1/delete").status_code == 404


def test_editor_posts_need_the_csrf_token(app, visitor, demo):
    visitor.login("trainer@fittribe.example")
    before = count(app, WeeklyAvailability)
    response = visitor.client.post("/dashboard/availability/weekly",
                                   data={"weekly-weekday": "6", "weekly-start": "14:00", "weekly-end": "15:00"})
    assert response.status_code == 400 and count(app, WeeklyAvailability) == before
