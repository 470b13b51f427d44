"""SQLAlchemy models, one module per aggregate. Import here so Alembic sees every table."""
from .events import Event
from .notifications import Notification
from .trainers import Specialty, TrainerLanguage, TrainerProfile, trainer_specialties
from .users import Role, User

__all__ = ["Event", "Notification", "Role", "Specialty", "TrainerLanguage", "TrainerProfile", "User",
           "trainer_specialties"]
