"""Trainer faces and profile details (issue 15): photo upload checked, cropped and re-encoded by
Pillow into the local storage (shown on cards and the profile, initials otherwise), chip
specialties, an intro video link of allowed hosts only, credentials."""
from io import BytesIO

import pytest
from PIL import Image
from sqlalchemy import select

from fittribe.extensions import db
from fittribe.models import TrainerProfile
from fittribe.services.storage import LocalStorage
from tests.helpers import csrf_token_from, text_of

TRAINER = "trainer@fittribe.example"  # Maya Chen, listed


@pytest.fixture
def photo_dir(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "PHOTO_DIR", str(tmp_path))
    return tmp_path


def image_bytes(fmt: str = "PNG", size=(800, 600), exif: bool = False) -> bytes:
    out = BytesIO()
    image = Image.new("RGB", size, (200, 30, 30))
    if exif:
        info = Image.Exif()
        info[0x010F] = "SecretCam"  # camera make: must not survive the re-encoding
        image.save(out, fmt, exif=info)
    else:
        image.save(out, fmt)
    return out.getvalue()


def upload(visitor, data: bytes, filename: str = "me.png", **extra):
    token = csrf_token_from(visitor.get("/dashboard/profile").get_data(as_text=True))
    return visitor.client.post("/dashboard/profile/photo", content_type="multipart/form-data",
                               data={"csrf_token": token, "photo": (BytesIO(data), filename), **extra})


def maya(app) -> TrainerProfile:
    with app.app_context():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
        db.session.expunge(trainer)
        return trainer


def test_a_photo_is_cropped_square_re_encoded_and_shown_everywhere(app, visitor, demo, photo_dir):
    visitor.login(TRAINER)
    response = upload(visitor, image_bytes("JPEG", (1200, 800), exif=True), "holiday.jpg")
    assert response.status_code == 303
    trainer = maya(app)
    stored = photo_dir / trainer.photo_key
    assert trainer.photo_url == f"/media/{trainer.photo_key}" and stored.is_file()
    with Image.open(stored) as image:
        assert image.format == "WEBP" and image.size == (app.config["PHOTO_SIZE"],) * 2
        assert b"SecretCam" not in stored.read_bytes()
    served = visitor.get(trainer.photo_url)
    assert served.status_code == 200 and served.mimetype == "image/webp"
    for page in ("/trainers/maya-chen", "/trainers", "/"):
        assert f'<img class="avatar' in text_of(visitor.get(page)) and trainer.photo_url in text_of(visitor.get(page))

    # A new photo replaces the old file; removing it brings the initials back.
    assert upload(visitor, image_bytes()).status_code == 303
    assert not stored.exists() and (photo_dir / maya(app).photo_key).is_file()
    token = csrf_token_from(visitor.get("/dashboard/profile").get_data(as_text=True))
    assert visitor.client.post("/dashboard/profile/photo", data={"csrf_token": token, "remove": "1"}).status_code == 303
    assert maya(app).photo_url is None and not any(photo_dir.rglob("*.webp"))
    assert '<span class="avatar avatar-large" aria-hidden="true">MC</span>' in text_of(visitor.get("/trainers/maya-chen"))


@pytest.mark.parametrize("data, filename, message", [
    (b"", "empty.png", "Choose a photo to upload."),
    (b"MZ\x90\x00 definitely not an image", "photo.png", "not a photo we can read"),
    (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "x.svg", "not a photo we can read"),
    (None, "anim.gif", "Upload a JPEG, PNG or WebP photo."),
    (None, "tiny.png", "too small"),
])
def test_bad_files_are_refused_with_a_clear_message_and_nothing_stored(app, visitor, demo, photo_dir,
                                                                       data, filename, message):
    if data is None:
        data = image_bytes("GIF") if filename.endswith(".gif") else image_bytes(size=(40, 40))
    visitor.login(TRAINER)
    response = upload(visitor, data, filename)
    assert response.status_code == 422 and message in text_of(response)
    assert 'aria-invalid="true"' in text_of(response)
    assert maya(app).photo_url is None and not any(photo_dir.rglob("*"))


def test_a_photo_over_the_size_limit_is_refused(app, visitor, demo, photo_dir, monkeypatch):
    monkeypatch.setitem(app.config, "PHOTO_MAX_BYTES", 1000)
    visitor.login(TRAINER)
    response = upload(visitor, image_bytes(size=(400, 400)) + b"\0" * 2000)
    assert response.status_code == 422 and "too large" in text_of(response)
    assert maya(app).photo_url is None


def test_only_trainers_upload_photos_and_only_with_a_csrf_token(app, visitor, demo, photo_dir):
    visitor.login("member@fittribe.example")
    token = csrf_token_from(visitor.get("/dashboard/").get_data(as_text=True))
    response = visitor.client.post("/dashboard/profile/photo", content_type="multipart/form-data",
                                   data={"csrf_token": token, "photo": (BytesIO(image_bytes()), "me.png")})
    assert response.status_code == 403
    visitor.logout()
    visitor.login(TRAINER)
    forged = visitor.client.post("/dashboard/profile/photo", content_type="multipart/form-data",
                                 data={"photo": (BytesIO(image_bytes()), "me.png")})
    assert forged.status_code == 400 and not any(photo_dir.rglob("*"))


def test_local_storage_keeps_keys_inside_its_folder(tmp_path):
    storage = LocalStorage(tmp_path / "media")
    with pytest.raises(ValueError):
        storage.path("../../etc/passwd")
    assert storage.path("trainers/1/a.webp") == (tmp_path / "media" / "trainers/1/a.webp").resolve()


def _save_profile(visitor, **changes):
    page = visitor.get("/dashboard/profile").get_data(as_text=True)
    data = {"csrf_token": csrf_token_from(page), "display_name": "Maya Chen", "headline": "Strength coach",
            "bio": "Hi", "price": "65", "years_experience": "8", "specialties": ["strength", "yoga"],
            "languages": ["en"], "time_zone": "Europe/London", "credentials": "", "intro_video_url": "", **changes}
    return visitor.client.post("/dashboard/profile", data=data)


def test_specialties_are_checkboxes_and_credentials_and_video_show_on_the_profile(app, visitor, demo):
    visitor.login(TRAINER)
    editor = text_of(visitor.get("/dashboard/profile"))
    assert 'type="checkbox"' in editor and 'name="specialties"' in editor and "Ctrl" not in editor
    assert "<select multiple" not in editor and 'enctype="multipart/form-data"' in editor
    response = _save_profile(visitor, credentials="NASM-CPT (2019), Precision Nutrition L1",
                             intro_video_url="https://www.youtube.com/watch?v=abc123")
    assert response.status_code == 303, text_of(response)[:2000]
    profile = text_of(visitor.get("/trainers/maya-chen"))
    assert "NASM-CPT (2019), Precision Nutrition L1" in profile
    assert 'href="https://www.youtube.com/watch?v=abc123"' in profile and "intro video" in profile
    assert {s.slug for s in db_specialties(app)} >= {"strength", "yoga"}


def db_specialties(app):
    with app.app_context():
        trainer = db.session.scalar(select(TrainerProfile).where(TrainerProfile.slug == "maya-chen"))
        return list(trainer.specialties)


@pytest.mark.parametrize("link", [
    "http://www.youtube.com/watch?v=abc",  # not https
    "https://evil.example/watch?v=abc",
    "https://www.youtube.com.evil.example/x",
    "https://user@www.youtube.com/x",
    "javascript:alert(1)",
    "https://www.youtube.com:8443/x",
    "https://www.youtube.com:notaport/x",
])
def test_intro_video_links_must_be_https_on_allowed_hosts(app, visitor, demo, link):
    visitor.login(TRAINER)
    response = _save_profile(visitor, intro_video_url=link)
    assert response.status_code == 422 and "Paste an https link to your video on YouTube or Vimeo." in text_of(response)
    assert maya(app).intro_video_url is None
