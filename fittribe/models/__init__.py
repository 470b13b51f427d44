"""SQLAlchemy models, one module per aggregate. Import here so Alembic sees every table."""
from .trainers import Specialty, TrainerLanguage, TrainerProfile, trainer_specialties
from .users import Role, User

__all__ = ["Role", "Specialty", "TrainerLanguage", "TrainerProfile", "User", "trainer_specialties"]
