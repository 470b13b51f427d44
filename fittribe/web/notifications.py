from flask import Blueprint, flash, url_for
from flask_login import current_user, login_required

from ..services import notify
from .htmx import render, see_other
from .params import int_arg

bp = Blueprint("notifications", __name__, url_prefix="/notifications")


@bp.get("/")
@login_required
def index():
    return render("pages/notifications.html", "partials/notification_list.html",
                  notifications=notify.recent(current_user.id, int_arg("page", 1)))


@bp.post("/read")
@login_required
def mark_all_read():
    count = notify.mark_all_read(current_user.id)
    flash(f"Marked {count} notification{'s' if count != 1 else ''} as read." if count else "Nothing unread.", "info")
    return see_other(url_for("notifications.index"))
