from flask import Blueprint, current_app

from ..realtime.presence import online_among
from ..services.search import all_specialties, top_trainers
from .htmx import render

bp = Blueprint("public", __name__)


@bp.get("/")
def home():
    highlights = top_trainers(current_app.config["HOMEPAGE_HIGHLIGHTS"])
    return render("pages/home.html", "partials/trainer_grid.html", trainers=highlights,
                  specialties=all_specialties(), online_ids=online_among([t.id for t in highlights]))
