"""search indexes: rating rank, suspended users, trigram text search

Measured with bench/search.py (10,000 trainers): the default "Top rated" search scored and
sorted every listed trainer per request, every search and count joined all users to drop the
suspended ones, and the name/goal filter (ILIKE '%…%') scanned the whole table.

* ix_trainer_profiles_rating_rank: an index on the Bayesian rating
  expression, descending, then id. fittribe.models.trainers.bayesian_rating() renders exactly
  this expression, so the ORDER BY walks the index and stops after one page.
* ix_users_is_suspended: the public listing is now an anti-join
  against the few suspended users (fittribe.services.search.listed_trainers).
* ix_trainer_profiles_{display_name,headline}_trgm: pg_trgm GIN indexes that
  serve ILIKE '%…%' for selective searches.

Revision ID: 14fe94d2a1cf
Revises: b56f569f9d27
Create Date: 2026-11-27 08:22:14.635788

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '14fe94d2a1cf'
down_revision = 'b56f569f9d27'
branch_labels = None
depends_on = None

# PRIOR_MEAN 4.0 × PRIOR_WEIGHT 10 = 40.0 and PRIOR_WEIGHT 10, as in fittribe/models/trainers.py
# at this revision. Written out here so the migration does not change when the model does.
RATING_RANK = "((CAST(rating_avg AS FLOAT) * rating_count + 40.0) / (rating_count + 10)) DESC"
TRIGRAM_COLUMNS = ("display_name", "headline")


def upgrade():
    op.create_index("ix_trainer_profiles_rating_rank", "trainer_profiles", [sa.text(RATING_RANK), "id"])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_is_suspended"), ["is_suspended"], unique=False)
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in TRIGRAM_COLUMNS:
        op.create_index(f"ix_trainer_profiles_{column}_trgm", "trainer_profiles", [column],
                        postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})


def downgrade():
    for column in TRIGRAM_COLUMNS:
        op.drop_index(f"ix_trainer_profiles_{column}_trgm", table_name="trainer_profiles")
    # The pg_trgm extension stays: other objects in the database may use it.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_is_suspended"))
    op.drop_index("ix_trainer_profiles_rating_rank", table_name="trainer_profiles")
