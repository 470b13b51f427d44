from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .users import utcnow


class Event(db.Model):
    """Outbox row: written in the same transaction as the change it announces, published to
    Redis after commit. Its id is the SSE `id:` a browser sends back as Last-Event-ID."""
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    # None: an unnamed message carrying out-of-band fragments; otherwise a named SSE event.
    type: Mapped[str | None] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_events_channel_id", "channel", "id"),
        # The relay looks only at rows still waiting to be published.
        Index("ix_events_unpublished", "id", postgresql_where=published_at.is_(None)),
        Index("ix_events_created_at", "created_at"),
    )
