from datetime import timedelta
from types import SimpleNamespace

from flask import Blueprint, abort, current_app, flash, request, url_for
from flask_login import current_user, login_required

from ..models import Role
from ..realtime import presence
from ..realtime.connection import REDIS_ERRORS
from ..models import AvailabilityOverride, WeeklyAvailability
from .. import clock
from ..services import availability_rules, earnings, photos, session_status
from ..services import trainers as trainer_service
from ..services import reviews as review_service
from ..services.booking import BookingError
from ..services.search import all_specialties
from .access import role_required
from .forms import OverrideForm, PhotoForm, TrainerProfileForm, WeeklyHoursForm, options
from .htmx import render, see_other
from .params import int_arg

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


@bp.get("/")
@login_required
def home():
    if current_user.has_role(Role.ADMIN):
        return see_other(url_for("admin.trainers"))
    if current_user.has_role(Role.TRAINER):
        trainer = current_user.trainer_profile
        return render("pages/dashboard_trainer.html", "pages/dashboard_trainer.html", trainer=trainer,
                      **_switch_context(trainer.id), **_sessions_context(),
                      trainer_reviews=review_service.trainer_reviews(trainer.id))
    return render("pages/dashboard_member.html", "pages/dashboard_member.html", **_sessions_context())


def _switch_context(trainer_id: int) -> dict:
    return {"presence": presence.status(trainer_id), "offline_within": presence.offline_within()}


def _sessions_context() -> dict:
    now = clock.now()
    upcoming, past = session_status.sessions_for(current_user, now)
    reviews_since = now - timedelta(days=current_app.config["REVIEW_WINDOW_DAYS"])
    return {"upcoming": [(b, session_status.status_of(b, now)) for b in upcoming],
            "past": [(b, session_status.status_of(b, now)) for b in past],
            "reviewable_ids": {b.id for b in past if b.review is None and b.ends_at > reviews_since}}


@bp.get("/payments")
@login_required
def payments():
    page = int_arg("page", 1)
    return render("pages/payment_history.html", "pages/payment_history.html",
                  results=earnings.payment_history(current_user.id, page))


@bp.get("/earnings")
@role_required(Role.TRAINER)
def trainer_earnings():
    return render("pages/earnings.html", "pages/earnings.html",
                  earnings=earnings.trainer_earnings(current_user.trainer_profile, clock.now()))


@bp.get("/sessions")
@login_required
def sessions():
    """The sessions fragment alone (pushed live; re-fetched when a push could not be replayed)."""
    return render("partials/upcoming_sessions.html", "partials/upcoming_sessions.html", **_sessions_context())


def sessions_context(user_id: int) -> dict:
    """Live fragment "upcoming": rendered for its user (current_user), see realtime/live.py."""
    return _sessions_context()


@bp.post("/profile/preview")
@role_required(Role.TRAINER)
def profile_preview():
    """The search card as it would look with the form's unsaved values (nothing is stored);
    fields that don't validate yet keep their saved value."""
    trainer = current_user.trainer_profile
    form = TrainerProfileForm()
    form.specialties.choices = options((s.slug, s.name) for s in all_specialties())
    form.validate()
    def valid(name: str, saved):
        return saved if getattr(form, name).errors else getattr(form, name).data
    price = valid("price", trainer.price)
    chosen = set(valid("specialties", [s.slug for s in trainer.specialties]) or [])
    preview = SimpleNamespace(
        id=trainer.id, slug=trainer.slug, photo_url=trainer.photo_url,
        display_name=valid("display_name", trainer.display_name),
        headline=valid("headline", trainer.headline) or "", currency=trainer.currency,
        price_cents=int(price * 100) if price is not None else trainer.price_cents,
        specialties=[s for s in all_specialties() if s.slug in chosen],
        languages=valid("languages", trainer.languages) or [], rating_avg=trainer.rating_avg,
        rating_count=trainer.rating_count, next_available_at=trainer.next_available_at,
        horizon_days=trainer.horizon_days, time_zone=trainer.time_zone)
    return render("partials/trainer_card.html", "partials/trainer_card.html", trainer=preview,
                  online_ids=presence.online_among([trainer.id]))


@bp.route("/profile", methods=["GET", "POST"])
@role_required(Role.TRAINER)
def trainer_profile():
    trainer = current_user.trainer_profile
    form = _profile_form()
    if form.validate_on_submit():
        trainer_service.update_profile(trainer, trainer_service.ProfileUpdate(
            display_name=form.display_name.data, headline=form.headline.data or "", bio=form.bio.data or "",
            price=form.price.data, years_experience=form.years_experience.data or 0,
            specialty_slugs=form.specialties.data, languages=form.languages.data, time_zone=form.time_zone.data,
            credentials=form.credentials.data or "", intro_video_url=form.intro_video_url.data,
        ))
        flash("Profile saved.", "success")
        return see_other(url_for("dashboard.trainer_profile"))
    return render("pages/trainer_profile_edit.html", "partials/trainer_profile_form.html",
                  status=422 if form.errors else 200, form=form, trainer=trainer, photo_form=PhotoForm(),
                  online_ids=presence.online_among([trainer.id]))


@bp.post("/profile/photo")
@role_required(Role.TRAINER)
def profile_photo():
    """Upload (or, with remove=1, delete) the trainer's photo. A plain multipart form: Post/Redirect/Get,
    or the editor again with the reason (422) when the file is refused, nothing stored."""
    trainer = current_user.trainer_profile
    form = PhotoForm()  # its CSRF token was checked before the view (CSRFProtect)
    if request.form.get("remove"):
        photos.remove_photo(trainer)
        flash("Photo removed: your initials show instead.", "success")
        return see_other(url_for("dashboard.trainer_profile"))
    upload = form.photo.data
    try:
        photos.set_photo(trainer, upload.read() if upload else b"")
    except photos.PhotoError as error:
        return _profile_with_photo_error(str(error))
    flash("Photo saved.", "success")
    return see_other(url_for("dashboard.trainer_profile"))


def _profile_with_photo_error(message: str):
    photo_form = PhotoForm(formdata=None)
    photo_form.photo.errors = [message]
    return render("pages/trainer_profile_edit.html", "pages/trainer_profile_edit.html", status=422,
                  form=_profile_form(formdata=None), trainer=current_user.trainer_profile, photo_form=photo_form,
                  online_ids=presence.online_among([current_user.trainer_profile.id]))


def _profile_form(**kwargs) -> TrainerProfileForm:
    trainer = current_user.trainer_profile
    form = TrainerProfileForm(obj=trainer, price=trainer.price, specialties=[s.slug for s in trainer.specialties],
                              languages=trainer.languages, **kwargs)
    form.specialties.choices = options((s.slug, s.name) for s in all_specialties())
    return form


@bp.post("/available")
@role_required(Role.TRAINER)
def set_available():
    """The "available now" switch: with a page of hers open, members see her online while it is on."""
    trainer = current_user.trainer_profile
    turn_on = request.form.get("available") == "on"
    try:
        presence.set_available(trainer.id, turn_on)
    except REDIS_ERRORS:
        abort(503, "Live status is unavailable right now, so the switch can't change. Try again in a minute.")
    if request.headers.get("HX-Request") == "true":
        return render("partials/available_switch.html", "partials/available_switch.html",
                      **_switch_context(trainer.id))
    flash("You are available now." if turn_on else "You are no longer available now.", "success")
    return see_other(url_for("dashboard.home"))


def _editor(status: int = 200, weekly_form=None, override_form=None):
    trainer = current_user.trainer_profile
    return render("pages/availability.html", "partials/availability_editor.html", status=status, trainer=trainer,
                  weekly=availability_rules.weekly_hours(trainer), overrides=availability_rules.overrides(trainer),
                  weekly_form=weekly_form or WeeklyHoursForm(formdata=None, prefix="weekly"),
                  override_form=override_form or OverrideForm(formdata=None, prefix="date"),
                  weekdays=availability_rules.WEEKDAYS)


def _saved(message: str):
    """htmx swaps the updated editor in place; without JS, Post/Redirect/Get."""
    if request.headers.get("HX-Request") == "true":
        return _editor()
    flash(message, "success")
    return see_other(url_for("dashboard.availability"))


@bp.get("/availability")
@role_required(Role.TRAINER)
def availability():
    return _editor()


def _add(form, form_name: str, add, message: str):
    """Validate an editor form, apply `add(trainer, form)`, and answer like every editor action."""
    if form.validate_on_submit():
        try:
            add(current_user.trainer_profile, form)
        except BookingError as error:
            form.end.errors.append(str(error))
        else:
            return _saved(message)
    return _editor(422, **{form_name: form})


@bp.post("/availability/weekly")
@role_required(Role.TRAINER)
def add_weekly_hours():
    return _add(WeeklyHoursForm(prefix="weekly"), "weekly_form", lambda trainer, form: availability_rules.add_weekly(
        trainer, form.weekday.data, form.start.data, form.end.data), "Weekly hours added.")


@bp.post("/availability/overrides")
@role_required(Role.TRAINER)
def add_override():
    return _add(OverrideForm(prefix="date"), "override_form", lambda trainer, form: availability_rules.add_override(
        trainer, form.day.data, form.start.data, form.end.data), "Date change added.")


@bp.post("/availability/<kind>/<int:row_id>/delete")
@role_required(Role.TRAINER)
def delete_availability(kind: str, row_id: int):
    model = {"weekly": WeeklyAvailability, "overrides": AvailabilityOverride}.get(kind)
    if model is None or not availability_rules.delete(current_user.trainer_profile, model, row_id):
        abort(404)
    return _saved("Removed.")
