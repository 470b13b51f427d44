"""SQLAlchemy models, one module per aggregate. Import here so Alembic sees every table."""
from .availability import AvailabilityOverride, WeeklyAvailability
from .bookings import ACTIVE_STATUSES, Booking, BookingStatus
from .events import Event, EventCursor
from .google import CalendarBusy, ConnectionStatus, GoogleConnection, GoogleEventSync, GoogleWatchChannel
from .notifications import Notification
from .payments import Payment, PaymentStatus, ProcessedWebhook
from .reviews import AuditEntry, Review, ReviewFlag
from .trainers import Specialty, TrainerLanguage, TrainerProfile, trainer_specialties
from .users import Role, User

__all__ = ["ACTIVE_STATUSES", "CalendarBusy", "ConnectionStatus", "GoogleConnection", "GoogleEventSync",
           "GoogleWatchChannel", "AuditEntry", "Review", "ReviewFlag", "AvailabilityOverride", "Booking", "BookingStatus",
           "Event", "EventCursor", "Notification", "Payment", "PaymentStatus", "ProcessedWebhook", "Role",
           "Specialty", "TrainerLanguage", "TrainerProfile", "User", "WeeklyAvailability", "trainer_specialties"]
