from flask import Blueprint, abort, flash, request, url_for
from flask_login import current_user

from ..extensions import db
from ..models import Role, TrainerProfile, User
from ..services import audit, user_admin
from ..services import trainers as trainer_service
from .access import role_required
from .forms import RejectTrainerForm
from .htmx import render, see_other
from .params import int_arg

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@role_required(Role.ADMIN)
def require_admin():
    """Every admin route, present and future, is admin-only."""


@bp.get("/")
def index():
    return see_other(url_for("admin.trainers"))


@bp.get("/trainers")
def trainers():
    return render("pages/admin_trainers.html", "partials/approval_queue.html",
                  pending=trainer_service.pending_trainers(), reject_form=RejectTrainerForm(), rejecting_id=None)


@bp.post("/trainers/<int:trainer_id>/approve")
def approve(trainer_id: int):
    trainer = db.get_or_404(TrainerProfile, trainer_id)
    trainer_service.approve(trainer, current_user)
    flash(f"{trainer.display_name} is approved and now listed.", "success")
    return see_other(url_for("admin.trainers"))


@bp.post("/trainers/<int:trainer_id>/reject")
def reject(trainer_id: int):
    trainer = db.get_or_404(TrainerProfile, trainer_id)
    form = RejectTrainerForm()
    if not form.validate_on_submit():
        return render("pages/admin_trainers.html", "partials/approval_queue.html", status=422,
                      pending=trainer_service.pending_trainers(), reject_form=form, rejecting_id=trainer.id)
    trainer_service.reject(trainer, form.reason.data, current_user)
    flash(f"{trainer.display_name} was rejected; the reason is shown on their dashboard.", "info")
    return see_other(url_for("admin.trainers"))


@bp.get("/users")
def users():
    role = request.args.get("role", "")
    if role and role not in {r.value for r in Role}:
        abort(400, "Unknown role.")
    results = user_admin.find_users(request.args.get("q", "")[:100], Role(role) if role else None,
                                    request.args.get("suspended") == "1", int_arg("page", 1))
    return render("pages/admin_users.html", "partials/admin_user_table.html", results=results,
                  recent=audit.recent("user", limit=10))


@bp.route("/users/<int:user_id>/suspend", methods=["GET", "POST"])
def suspend_user(user_id: int):
    """A confirmation page with the reason, then the suspension (works without JS)."""
    user = db.get_or_404(User, user_id)
    error = None
    if request.method == "POST":
        try:
            user_admin.suspend(user, current_user, request.form.get("reason", "")[:500])
        except user_admin.AdminActionError as problem:
            error = str(problem)
        else:
            flash(f"{user.name} is suspended and logged out everywhere.", "info")
            return see_other(url_for("admin.users"))
    return render("pages/admin_suspend.html", "pages/admin_suspend.html", status=422 if error else 200,
                  user=user, error=error, reason=request.form.get("reason", ""))


@bp.post("/users/<int:user_id>/reactivate")
def reactivate_user(user_id: int):
    user = db.get_or_404(User, user_id)
    try:
        user_admin.reactivate(user, current_user)
    except user_admin.AdminActionError as problem:
        abort(409, str(problem))
    flash(f"{user.name} can log in again.", "success")
    return see_other(url_for("admin.users"))


from . import admin_reviews  # noqa: E402,F401  (review moderation routes on this blueprint)
