"""event positions: commit-ordered ids for live delivery

An event's `position` (its SSE id) is given when it is published, under one lock, after the
change it announces has committed: positions are ordered by publication, so a page that saw
position N has seen every earlier one. `event_cursor` holds the last position given out.

Revision ID: 5e1f0c2a9b7d
Revises: 012aace00d98
Create Date: 2026-12-05 07:15:00

"""
from alembic import op
import sqlalchemy as sa


revision = '5e1f0c2a9b7d'
down_revision = '012aace00d98'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('events', sa.Column('position', sa.BigInteger(), nullable=True))
    # Events published before this change get positions in id order (their old SSE ids), so
    # a page that reconnects across the deploy resumes where it was.
    op.execute("UPDATE events SET position = id WHERE published_at IS NOT NULL")
    op.create_index('ix_events_position', 'events', ['position'], unique=True)
    op.create_index('ix_events_channel_position', 'events', ['channel', 'position'])
    op.drop_index('ix_events_channel_id', table_name='events')
    # Given positions not yet on Redis (a publisher that died, or Redis away): sent first by the next.
    op.create_index('ix_events_positioned_unpublished', 'events', ['position'],
                    postgresql_where=sa.text('published_at IS NULL AND position IS NOT NULL'))
    op.create_table(
        'event_cursor',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('last_position', sa.BigInteger(), nullable=False),
        sa.CheckConstraint('id = 1', name=op.f('ck_event_cursor_single_row')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_event_cursor')),
    )
    op.execute("INSERT INTO event_cursor (id, last_position) SELECT 1, coalesce(max(position), 0) FROM events")


def downgrade():
    op.drop_table('event_cursor')
    op.drop_index('ix_events_positioned_unpublished', table_name='events')
    op.create_index('ix_events_channel_id', 'events', ['channel', 'id'])
    op.drop_index('ix_events_channel_position', table_name='events')
    op.drop_index('ix_events_position', table_name='events')
    op.drop_column('events', 'position')
