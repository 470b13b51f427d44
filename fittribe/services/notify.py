"""In-app notifications: stored, and pushed live to every open page of the user."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app
from sqlalchemy import func, select, update

from ..extensions import db
from ..models import Notification, Role, User
from ..realtime import outbox
from ..realtime.channels import user_channel

PAGE_SIZE = 20


def unread_count(user_id: int) -> int:
    return db.session.scalar(select(func.count(Notification.id)).where(
        Notification.user_id == user_id, Notification.read_at.is_(None))) or 0


def notify(user_id: int, kind: str, message: str, link: str | None = None) -> Notification:
    """Add a notification to the caller's transaction; it reaches the user's open pages when
    the caller commits (outbox), and a reconnecting page gets it by replay."""
    notification = Notification(user_id=user_id, kind=kind, message=message[:500], link=link)
    db.session.add(notification)
    db.session.flush()
    outbox.record(user_channel(user_id), partial="partials/notification_push.html", context={
        "notification": {"id": notification.id, "kind": kind, "message": notification.message, "link": link},
        "unread": unread_count(user_id),
    })
    return notification


def notify_admins(kind: str, message: str, link: str | None = None) -> int:
    """Notify every active admin (alerts an operator must act on); returns how many were told."""
    admin_ids = db.session.scalars(select(User.id).where(User.role == Role.ADMIN, User.is_suspended.is_(False))).all()
    for user_id in admin_ids:
        notify(user_id, kind, message, link)
    return len(admin_ids)


ALERT_GATE = "fittribe:alerts:gate:"
ALERT_HELD_BACK = "fittribe:alerts:held-back:"


def alert_admins(topic: str, message: str, link: str | None = None) -> bool:
    """An operator alert, at most one per `topic` per ADMIN_ALERT_WINDOW seconds: the first of a
    window is sent (with how many were held back in the window before), the rest are only counted.
    Anyone can make some alerts happen (a forged webhook, a declined test card): without this, 50
    requests would be 50 notifications to every admin. Returns whether it was sent."""
    from ..realtime.connection import redis_client

    client = redis_client()
    window = current_app.config["ADMIN_ALERT_WINDOW"]
    if client is not None and window > 0:
        if not client.set(ALERT_GATE + topic, 1, nx=True, ex=window):
            with client.pipeline() as pipe:
                pipe.incr(ALERT_HELD_BACK + topic)
                pipe.expire(ALERT_HELD_BACK + topic, 7 * 24 * 3600)
                pipe.execute()
            return False
        held_back = int(client.getdel(ALERT_HELD_BACK + topic) or 0)
        if held_back:
            message += (f" ({held_back} more alert{'s' if held_back != 1 else ''} like this came in the "
                        f"{window // 60:g} minutes before this one and were not sent one by one.)")
    notify_admins("alert", message, link)
    return True


def recent(user_id: int, page: int = 1):
    query = select(Notification).where(Notification.user_id == user_id).order_by(Notification.id.desc())
    return db.paginate(query, page=page, per_page=PAGE_SIZE, error_out=False)


def mark_all_read(user_id: int) -> int:
    result = db.session.execute(update(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None)).values(read_at=datetime.now(timezone.utc)))
    outbox.record(user_channel(user_id), partial="partials/unread_badge_push.html", context={"unread": 0})
    db.session.commit()
    return result.rowcount or 0
