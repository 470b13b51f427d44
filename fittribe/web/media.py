from flask import Blueprint, abort, current_app, send_from_directory

bp = Blueprint("media", __name__)


@bp.get("/media/<path:key>")
def file(key: str):
    """Files of the local photo storage (services/storage.py). Keys are never reused, so they
    are cached for a year."""
    if current_app.config["PHOTO_STORAGE"] != "local":
        abort(404)
    return send_from_directory(current_app.config["PHOTO_DIR"], key, max_age=31536000)
