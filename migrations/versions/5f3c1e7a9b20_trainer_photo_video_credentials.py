"""trainer photo key, intro video link, credentials

The uploaded photo's storage key (photo_url already holds its public address), an optional intro
video link and a free-text credentials line on trainer profiles.

Revision ID: 5f3c1e7a9b20
Revises: 870b753621e0
Create Date: 2026-12-05 07:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '5f3c1e7a9b20'
down_revision = '870b753621e0'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('trainer_profiles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photo_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('intro_video_url', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('credentials', sa.Text(), server_default='', nullable=False))


def downgrade():
    with op.batch_alter_table('trainer_profiles', schema=None) as batch_op:
        batch_op.drop_column('credentials')
        batch_op.drop_column('intro_video_url')
        batch_op.drop_column('photo_key')
