"""Which channels a page may read. Channels are derived from the session and the page being
viewed, never taken from the client."""
from __future__ import annotations

from ..models import Role

PUBLIC = "public"
ADMIN = "admin"


def user_channel(user_id: int) -> str:
    return f"user:{user_id}"


def trainer_channel(trainer_id: int) -> str:
    return f"trainer:{trainer_id}"


def channels_for(user, trainer_id: int | None = None) -> list[str]:
    """`user` is Flask-Login's current_user (possibly anonymous); `trainer_id` the trainer
    profile on screen, already checked to be visible to this user."""
    channels = [PUBLIC]
    if trainer_id is not None:
        channels.append(trainer_channel(trainer_id))
    if user.is_authenticated:
        channels.append(user_channel(user.id))
        if user.has_role(Role.ADMIN):
            channels.append(ADMIN)
    return channels
