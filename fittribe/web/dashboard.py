from flask import Blueprint, flash, request, url_for
from flask_login import current_user, login_required

from ..models import Role
from ..realtime import presence
from ..services import trainers as trainer_service
from ..services.search import all_specialties
from .access import role_required
from .forms import TrainerProfileForm, options
from .htmx import render, see_other

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


@bp.get("/")
@login_required
def home():
    if current_user.has_role(Role.ADMIN):
        return see_other(url_for("admin.trainers"))
    if current_user.has_role(Role.TRAINER):
        trainer = current_user.trainer_profile
        return render("pages/dashboard_trainer.html", "pages/dashboard_trainer.html", trainer=trainer,
                      available_until=presence.available_until(trainer.id))
    return render("pages/dashboard_member.html", "pages/dashboard_member.html")


@bp.route("/profile", methods=["GET", "POST"])
@role_required(Role.TRAINER)
def trainer_profile():
    trainer = current_user.trainer_profile
    form = TrainerProfileForm(obj=trainer, price=trainer.price,
                              specialties=[s.slug for s in trainer.specialties], languages=trainer.languages)
    form.specialties.choices = options((s.slug, s.name) for s in all_specialties())
    if form.validate_on_submit():
        trainer_service.update_profile(trainer, trainer_service.ProfileUpdate(
            display_name=form.display_name.data, headline=form.headline.data or "", bio=form.bio.data or "",
            price=form.price.data, years_experience=form.years_experience.data or 0,
            specialty_slugs=form.specialties.data, languages=form.languages.data, time_zone=form.time_zone.data,
        ))
        flash("Profile saved.", "success")
        return see_other(url_for("dashboard.trainer_profile"))
    return render("pages/trainer_profile_edit.html", "partials/trainer_profile_form.html",
                  status=422 if form.errors else 200, form=form, trainer=trainer)


@bp.post("/available")
@role_required(Role.TRAINER)
def set_available():
    """The "available now" switch: the trainer shows as online to members while it is on."""
    trainer = current_user.trainer_profile
    turn_on = request.form.get("available") == "on"
    presence.set_available(trainer.id, turn_on)
    if request.headers.get("HX-Request") == "true":
        return render("partials/available_switch.html", "partials/available_switch.html",
                      available_until=presence.available_until(trainer.id))
    flash("You are shown as available now." if turn_on else "You are no longer shown as available.", "success")
    return see_other(url_for("dashboard.home"))
