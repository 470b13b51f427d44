"""Trainer photos: an upload is accepted only if Pillow reads it as a JPEG, PNG or WebP of sane
size; it is then turned upright, cropped square, resized and re-encoded as WebP (which drops
EXIF/GPS data and anything hidden in the original file) before it is stored."""
from __future__ import annotations

import secrets
from io import BytesIO

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError

from ..extensions import db
from ..models import TrainerProfile
from .storage import current_storage

ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP"}
MAX_PIXELS = 40_000_000  # refuse decompression bombs before decoding them
MIN_SIDE = 100


class PhotoError(ValueError):
    """The upload is not a photo we can use; the message says why, for the person."""


def normalised(data: bytes) -> bytes:
    max_bytes = current_app.config["PHOTO_MAX_BYTES"]
    if not data:
        raise PhotoError("Choose a photo to upload.")
    if len(data) > max_bytes:
        raise PhotoError(f"The photo is too large: at most {max_bytes // (1024 * 1024)} MB.")
    try:
        with Image.open(BytesIO(data)) as image:
            if image.format not in ACCEPTED_FORMATS:
                raise PhotoError("Upload a JPEG, PNG or WebP photo.")
            if image.width * image.height > MAX_PIXELS:
                raise PhotoError("The photo has too many pixels: use one under 40 megapixels.")
            if min(image.size) < MIN_SIDE:
                raise PhotoError(f"The photo is too small: at least {MIN_SIDE}×{MIN_SIDE} pixels.")
            image.load()
            size = current_app.config["PHOTO_SIZE"]
            square = ImageOps.fit(ImageOps.exif_transpose(image).convert("RGB"), (size, size), Image.Resampling.LANCZOS)
    except PhotoError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise PhotoError("This file is not a photo we can read. Upload a JPEG, PNG or WebP image.") from None
    out = BytesIO()
    square.save(out, "WEBP", quality=82, method=4)
    return out.getvalue()


def set_photo(trainer: TrainerProfile, data: bytes) -> None:
    """Store the cleaned photo under a new key (so caches never serve the old one), then forget
    the old file."""
    cleaned = normalised(data)
    storage = current_storage()
    old_key = trainer.photo_key
    key = f"trainers/{trainer.id}/{secrets.token_hex(8)}.webp"
    trainer.photo_url = storage.save(key, cleaned, "image/webp")
    trainer.photo_key = key
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        storage.delete(key)
        raise
    if old_key:
        storage.delete(old_key)


def remove_photo(trainer: TrainerProfile) -> None:
    old_key = trainer.photo_key
    trainer.photo_url = trainer.photo_key = None
    db.session.commit()
    if old_key:
        current_storage().delete(old_key)
