from flask import Blueprint, abort, flash, url_for

from ..extensions import db
from ..models import Role, TrainerProfile
from ..services import trainers as trainer_service
from .access import role_required
from .forms import RejectTrainerForm
from .htmx import render, see_other

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


def _trainer_or_404(trainer_id: int) -> TrainerProfile:
    trainer = db.session.get(TrainerProfile, trainer_id)
    if trainer is None:
        abort(404)
    return trainer


@bp.post("/trainers/<int:trainer_id>/approve")
def approve(trainer_id: int):
    trainer = _trainer_or_404(trainer_id)
    trainer_service.approve(trainer)
    flash(f"{trainer.display_name} is approved and now listed.", "success")
    return see_other(url_for("admin.trainers"))


@bp.post("/trainers/<int:trainer_id>/reject")
def reject(trainer_id: int):
    trainer = _trainer_or_404(trainer_id)
    form = RejectTrainerForm()
    if not form.validate_on_submit():
        return render("pages/admin_trainers.html", "partials/approval_queue.html", status=422,
                      pending=trainer_service.pending_trainers(), reject_form=form, rejecting_id=trainer.id)
    trainer_service.reject(trainer, form.reason.data)
    flash(f"{trainer.display_name} was rejected; the reason is shown on their dashboard.", "info")
    return see_other(url_for("admin.trainers"))
