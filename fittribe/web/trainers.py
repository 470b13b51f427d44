from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, redirect, request, url_for
from flask_login import current_user

from ..models import Role, TrainerProfile
from ..extensions import db
from ..realtime.presence import online_among
from ..services import picker
from ..services.reviews import visible_reviews
from ..services.search import SearchFilters, all_specialties, find_listed_trainer, search_trainers
from .forms import SearchForm
from .htmx import is_partial_request, render
from .params import aware_datetime, date_arg, int_arg, parse_int

bp = Blueprint("trainers", __name__)


@bp.get("/trainers")
def search():
    form = SearchForm(request.args, specialties=all_specialties())
    if not form.validate():
        return render("pages/search.html", "partials/search_results.html", status=400, form=form, results=None)
    results = search_trainers(_filters_from(form), per_page=current_app.config["SEARCH_PAGE_SIZE"])
    return render("pages/search.html", "partials/search_results.html", form=form, results=results,
                  online_ids=online_among([t.id for t in results.items]))


@bp.get("/search")
def search_alias():
    """People type /search: send them (and their filters) to the search, which lives at /trainers."""
    return redirect(url_for("trainers.search", **request.args.to_dict(flat=False)), code=301)


def _filters_from(form: SearchForm) -> SearchFilters:
    def cents(value: Decimal | None) -> int | None:
        return None if value is None else int(value * 100)

    return SearchFilters(
        text=(form.q.data or "").strip(),
        specialty=form.specialty.data or None,
        min_price_cents=cents(form.min_price.data),
        max_price_cents=cents(form.max_price.data),
        min_rating=Decimal(form.min_rating.data) if form.min_rating.data else None,
        language=form.language.data or None,
        sort=form.sort.data or "rating",
        page=form.page.data or 1,
    )


@bp.get("/trainers/<slug>")
def profile(slug: str):
    trainer = find_listed_trainer(slug)
    if trainer is None:
        trainer = _unlisted_profile_for_owner_or_admin(slug)
    return render("pages/trainer_profile.html", "partials/trainer_profile.html", trainer=trainer,
                  online_ids=online_among([trainer.id]), live_trainer_id=trainer.id, **_chosen_calendar(trainer),
                  reviews=visible_reviews(trainer.id, int_arg("reviews_page", 1)))


@bp.get("/trainers/<slug>/calendar")
def calendar(slug: str):
    """The booking calendar with the day and length chosen in the query (htmx swaps it in when a
    day or length is picked; the address bar then shows the profile with that choice, so reload,
    back and forward keep it)."""
    trainer = find_listed_trainer(slug) or _unlisted_profile_for_owner_or_admin(slug)
    context = _chosen_calendar(trainer)
    response = render("partials/calendar.html", "partials/calendar.html", trainer=trainer, **context)
    if is_partial_request():
        choice = context["choice"]
        response.headers["HX-Push-Url"] = url_for("trainers.profile", slug=slug, day=choice.day if choice.day_chosen else None,
                                                  length=choice.length if choice.length_chosen else None)
    return response


@bp.get("/trainers/<slug>/availability")
def availability(slug: str):
    """The free times alone, every day and length (the live fragment, re-fetched when a push could
    not be replayed or the viewer's clock became known; the page applies its own choice)."""
    trainer = find_listed_trainer(slug) or _unlisted_profile_for_owner_or_admin(slug)
    return render("partials/availability.html", "partials/availability.html", **availability_context(trainer.id))


@bp.get("/trainers/<slug>/next-available")
def next_available(slug: str):
    """A card's "Next available" on the viewer's clock; without htmx, the profile, which shows
    the same and more."""
    trainer = find_listed_trainer(slug) or abort(404)
    if not is_partial_request():
        return redirect(url_for("trainers.profile", slug=slug))
    return render("partials/next_available.html", "partials/next_available.html", trainer=trainer)


# Live fragments (fittribe/realtime/live.py): the render context of a push, for current_user.
def availability_context(trainer_id: int) -> dict | None:
    """Pushed to every open profile of the trainer: the free times of every day and length, shown
    as the default choice; each page keeps its own (static/js/live.js)."""
    trainer = db.session.get(TrainerProfile, trainer_id)
    if trainer is None:
        return None
    laid_out = _picker(trainer)
    return {"trainer": trainer, "calendar": laid_out, "choice": picker.choose(laid_out)}


def availability_parts(trainer_id: int, spans: list) -> set[str] | None:
    """The days of the viewer's strip a change over `spans` touched: a push carries only those."""
    trainer = db.session.get(TrainerProfile, trainer_id)
    if trainer is None:
        return None
    times = [(datetime.fromisoformat(start), datetime.fromisoformat(end)) for start, end in spans]
    return picker.touched_days(trainer, _viewer_zone(trainer), times)


def next_available_context(trainer_id: int) -> dict | None:
    trainer = db.session.get(TrainerProfile, trainer_id)
    return None if trainer is None else {"trainer": trainer}


def _viewer_zone(trainer: TrainerProfile) -> str:
    """The clock the calendar is laid out on: the viewer's, or (not known yet) the trainer's."""
    return current_user.time_zone or trainer.time_zone


def _picker(trainer: TrainerProfile, picked: datetime | None = None) -> picker.Picker:
    zone = _viewer_zone(trainer)
    return picker.lay_out(trainer, zone, through=picked.astimezone(ZoneInfo(zone)).date() if picked else None)


def _chosen_calendar(trainer: TrainerProfile) -> dict:
    """The calendar with the query's choice: `length` (minutes), `day` (YYYY-MM-DD on the viewer's
    clock) and `time` (a start picked before logging in); anything not on offer falls back to the
    default (the shortest length, its first day with a free time)."""
    picked = aware_datetime(request.args.get("time"))
    laid_out = _picker(trainer, picked)
    choice = picker.choose(laid_out, parse_int(request.args.get("length"), 1, 24 * 60), date_arg("day"), picked)
    return {"calendar": laid_out, "choice": choice}


def _unlisted_profile_for_owner_or_admin(slug: str) -> TrainerProfile:
    """An unapproved profile is visible only to its trainer (as a preview) and to admins."""
    trainer = db.session.scalar(db.select(TrainerProfile).where(TrainerProfile.slug == slug))
    if trainer is None or not current_user.is_authenticated:
        abort(404)
    if current_user.id != trainer.user_id and not current_user.has_role(Role.ADMIN):
        abort(404)
    return trainer
