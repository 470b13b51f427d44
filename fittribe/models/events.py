from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, DateTime, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .users import utcnow


class Event(db.Model):
    """Outbox row: written in the same transaction as the change it announces, published to
    Redis after commit. Its `position`, given at publication (fittribe/realtime/outbox.py), is
    the SSE `id:` a browser sends back as Last-Event-ID."""
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    # None: an unnamed message carrying out-of-band fragments; otherwise a named SSE event.
    type: Mapped[str | None] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Publication order across every channel; None until published.
    position: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_events_position", "position", unique=True),
        Index("ix_events_channel_position", "channel", "position"),
        # The relay looks only at rows still waiting to be published.
        Index("ix_events_unpublished", "id", postgresql_where=published_at.is_(None)),
        Index("ix_events_created_at", "created_at"),
        Index("ix_events_positioned_unpublished", "position",
              postgresql_where=published_at.is_(None) & position.is_not(None)),
    )


class EventCursor(db.Model):
    """The one row holding the last position given to an event."""
    __tablename__ = "event_cursor"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_position: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
