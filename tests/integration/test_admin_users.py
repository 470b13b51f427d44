"""Admins find accounts and suspend / reactivate them, with a reason, an audit trail and an
immediate effect (logged out, trainer out of search)."""
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import AuditEntry, User
from tests.helpers import Browser, text_of


def _user(app, email):
    with app.app_context():
        return db.session.scalar(select(User).where(User.email == email))


def test_admin_finds_users_by_text_and_role(app, visitor, demo):
    visitor.login("admin@fittribe.example")
    page = text_of(visitor.get("/admin/users?q=maya"))
    assert "trainer@fittribe.example" in page and "member@fittribe.example" not in page
    members = text_of(visitor.get("/admin/users?role=member"))
    assert "member@fittribe.example" in members and "trainer@fittribe.example" not in members
    assert visitor.get("/admin/users?role=wizard").status_code == 400
    assert "No accounts match" in text_of(visitor.get("/admin/users?q=nobody-at-all"))


def test_suspend_needs_a_reason_then_logs_the_trainer_out_and_hides_them(app, visitor, demo):
    trainer_session = Browser(app.test_client())
    trainer_session.login("trainer@fittribe.example")
    maya = _user(app, "trainer@fittribe.example")
    visitor.login("admin@fittribe.example")
    confirm = visitor.get(f"/admin/users/{maya.id}/suspend")
    assert confirm.status_code == 200 and "Suspend Maya Chen?" in text_of(confirm)
    refused = visitor.post_form(f"/admin/users/{maya.id}/suspend", {"reason": " "})
    assert refused.status_code == 422 and "Give a reason" in text_of(refused)
    assert not _user(app, "trainer@fittribe.example").is_suspended
    done = visitor.post_form(f"/admin/users/{maya.id}/suspend", {"reason": "Fake certificates"})
    assert done.status_code == 303 and _user(app, "trainer@fittribe.example").is_suspended
    assert trainer_session.get("/dashboard/").status_code == 302  # logged out at once
    assert "Maya Chen" not in text_of(app.test_client().get("/trainers?q=maya"))
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()))
        assert (entry.action, entry.target_id, entry.detail) == ("suspend", maya.id, "Fake certificates")
    assert "Fake certificates" in text_of(visitor.get("/admin/users"))

    visitor.post_form("/admin/users", {}, post_url=f"/admin/users/{maya.id}/reactivate")
    assert not _user(app, "trainer@fittribe.example").is_suspended
    assert "Maya Chen" in text_of(app.test_client().get("/trainers?q=maya"))


def test_admin_cannot_suspend_themselves(app, visitor, demo):
    admin = _user(app, "admin@fittribe.example")
    visitor.login("admin@fittribe.example")
    response = visitor.post_form(f"/admin/users/{admin.id}/suspend", {"reason": "oops"})
    assert response.status_code == 422 and "your own account" in text_of(response)


def test_approvals_are_audited_and_the_trainer_is_told(app, visitor, demo):
    pending = _user(app, "pending@fittribe.example")
    visitor.login("admin@fittribe.example")
    with app.app_context():
        trainer_id = db.session.get(User, pending.id).trainer_profile.id
    visitor.post_form("/admin/trainers", {}, post_url=f"/admin/trainers/{trainer_id}/approve")
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()))
        assert (entry.action, entry.target_type, entry.target_id) == ("approve", "trainer", trainer_id)
