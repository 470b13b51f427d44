"""The numbers pages quote, read from the settings (or constants) that enforce them, so a changed
setting can never leave a page promising something else."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import current_app

from .session_status import JOIN_OPENS


def span(amount: float, unit: str) -> str:
    """10 → "10 minutes", 1 → "1 hour", 1.5 → "1.5 hours"."""
    return f"{amount:g} {unit}{'' if amount == 1 else 's'}"


@dataclass(frozen=True)
class Terms:
    hold: str  # how long a time is held while the member pays
    free_cancel: str  # a member cancelling at least this long ahead is refunded in full
    join_opens: str  # the video link opens this long before the start

    @staticmethod
    def free_cancel_until(starts_at: datetime) -> datetime:
        return free_cancel_until(starts_at)

    @staticmethod
    def free_cancel_open(starts_at: datetime) -> bool:
        return free_cancel_open(starts_at)


def free_cancel_until(starts_at: datetime) -> datetime:
    return starts_at - timedelta(hours=current_app.config["CANCEL_FULL_REFUND_HOURS"])


def free_cancel_open(starts_at: datetime, now: datetime | None = None) -> bool:
    """A member cancelling now would be refunded in full (the rule booking_changes enforces)."""
    return (now or datetime.now(timezone.utc)) <= free_cancel_until(starts_at)


def current_terms() -> Terms:
    config = current_app.config
    return Terms(hold=span(config["HOLD_MINUTES"], "minute"),
                 free_cancel=span(config["CANCEL_FULL_REFUND_HOURS"], "hour"),
                 join_opens=span(JOIN_OPENS.total_seconds() / 60, "minute"))
