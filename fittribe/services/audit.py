"""The moderation audit log: who did what to which account, review or profile, and why."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import AuditEntry, User


def record(actor: User, action: str, target_type: str, target_id: int, detail: str | None = None) -> AuditEntry:
    """Add an entry to the caller's transaction (it commits with the change it describes)."""
    entry = AuditEntry(actor_id=actor.id, action=action, target_type=target_type, target_id=target_id,
                       detail=(detail or None) and detail[:500])
    db.session.add(entry)
    return entry


def recent(target_type: str | None = None, limit: int = 20) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target_type:
        query = query.where(AuditEntry.target_type == target_type)
    return list(db.session.scalars(query))
