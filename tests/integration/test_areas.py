"""Role-protected areas: trainer profile editing and admin approvals (who may open what: test_authorization.py)."""
import pytest
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import TrainerProfile
from tests.helpers import HTMX, text_of

ACCOUNTS = {"member": "member@fittribe.example", "trainer": "trainer@fittribe.example",
            "admin": "admin@fittribe.example"}

def pending_id(app) -> int:
    with app.app_context():
        return db.session.scalar(select(TrainerProfile.id).where(TrainerProfile.slug == "jordan-pending"))


def test_trainer_edits_profile(app, visitor, demo):
    visitor.login(ACCOUNTS["trainer"])
    form = visitor.get("/dashboard/profile")
    assert 'value="Maya Chen"' in form.get_data(as_text=True)
    data = {"display_name": "Maya C.", "headline": "New headline <b>bold</b>", "bio": "Line one\n\nLine two",
            "price": "72.50", "years_experience": "10", "specialties": ["yoga", "strength"],
            "languages": ["en", "es"], "time_zone": "Europe/Paris"}
    response = visitor.post_form("/dashboard/profile", data)
    assert response.status_code == 303
    with app.app_context():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
        assert (trainer.display_name, trainer.price_cents, trainer.years_experience, trainer.time_zone) == \
            ("Maya C.", 7250, 10, "Europe/Paris")
        assert sorted(s.slug for s in trainer.specialties) == ["strength", "yoga"]
        assert trainer.languages == ["en", "es"]
    profile = visitor.get("/trainers/maya-chen").get_data(as_text=True)
    assert "New headline &lt;b&gt;bold&lt;/b&gt;" in profile  # escaped, never markup
    assert "$72.50" in profile


@pytest.mark.parametrize("field, value", [("price", "-3"), ("price", "abc"), ("price", "1000000"),
                                          ("display_name", ""), ("headline", "x" * 141),
                                          ("years_experience", "200"), ("time_zone", "Nowhere/City"),
                                          ("specialties", "not-a-specialty"), ("languages", "xx")])
def test_trainer_profile_bad_input_changes_nothing(app, visitor, demo, field, value):
    visitor.login(ACCOUNTS["trainer"])
    data = {"display_name": "Maya Chen", "headline": "h", "bio": "", "price": "65", "years_experience": "9",
            "specialties": ["strength"], "languages": ["en"], "time_zone": "America/Los_Angeles", field: value}
    response = visitor.post_form("/dashboard/profile", data)
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.get_data(as_text=True) or 'class="error"' in response.get_data(as_text=True)
    with app.app_context():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
        assert trainer.price_cents == 6500 and trainer.headline.startswith("Strength")


def test_admin_approves_trainer_who_then_appears_in_search(app, visitor, client, demo):
    visitor.login(ACCOUNTS["admin"])
    queue = visitor.get("/admin/trainers")
    assert "Jordan Pending" in text_of(queue)
    response = visitor.post_form("/admin/trainers", {}, post_url=f"/admin/trainers/{pending_id(app)}/approve")
    assert response.status_code == 303
    assert "No trainers are waiting for approval" in text_of(visitor.get("/admin/trainers"))
    assert "Jordan Pending" in text_of(client.get("/trainers?q=jordan"))


def test_admin_rejects_with_reason_shown_to_trainer(app, visitor, demo):
    visitor.login(ACCOUNTS["admin"])
    url = f"/admin/trainers/{pending_id(app)}/reject"
    missing = visitor.post_form("/admin/trainers", {"reason": ""}, post_url=url)
    assert missing.status_code == 422 and "Tell the trainer why" in text_of(missing)
    response = visitor.post_form("/admin/trainers", {"reason": "Please add your certification."}, post_url=url)
    assert response.status_code == 303
    visitor.logout()
    visitor.login("pending@fittribe.example")
    dashboard = text_of(visitor.get("/dashboard/"))
    assert "Not approved" in dashboard and "Please add your certification." in dashboard


def test_admin_action_on_unknown_trainer_is_404(visitor, demo):
    visitor.login(ACCOUNTS["admin"])
    assert visitor.post_form("/admin/trainers", {}, post_url="/admin/trainers/999999/approve").status_code == 404


def test_admin_actions_need_csrf(app, visitor, demo):
    visitor.login(ACCOUNTS["admin"])
    response = visitor.client.post(f"/admin/trainers/{pending_id(app)}/approve")
    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(TrainerProfile, pending_id(app)).is_approved is False


def test_htmx_forbidden_gets_error_fragment(visitor, demo):
    visitor.login(ACCOUNTS["member"])
    response = visitor.get("/admin/trainers", headers=HTMX)
    assert response.status_code == 403
    html = text_of(response)
    assert "<html" not in html and "You can't open this page" in html


def test_profile_preview_shows_unsaved_values_and_stores_nothing(app, visitor, demo):
    visitor.login(ACCOUNTS["trainer"])
    data = {"display_name": "Maya <Preview>", "headline": "Fresh headline", "bio": "", "price": "abc",
            "years_experience": "9", "specialties": ["yoga"], "languages": ["en"], "time_zone": "America/Los_Angeles"}
    response = visitor.post_form("/dashboard/profile", data, post_url="/dashboard/profile/preview")
    card = response.get_data(as_text=True)
    assert response.status_code == 200 and "Maya &lt;Preview&gt;" in card and "Fresh headline" in card
    assert "$65" in card  # the invalid price keeps the saved one
    with app.app_context():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
        assert trainer.display_name == "Maya Chen" and trainer.headline != "Fresh headline"
    visitor.logout()
    visitor.login(ACCOUNTS["member"])
    assert visitor.post_form("/dashboard/", data, post_url="/dashboard/profile/preview").status_code == 403
