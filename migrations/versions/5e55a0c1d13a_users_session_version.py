"""users.session_version: revoking every session and remember cookie of a user

A user's login cookies carry the version they were made with; logout, a password reset, a
suspension and "log out everywhere" bump it, and the user loader refuses any other version.

Revision ID: 5e55a0c1d13a
Revises: 5f3c1e7a9b20
Create Date: 2026-12-05 07:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '5e55a0c1d13a'
down_revision = '5f3c1e7a9b20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.drop_column('session_version')
