"""pending work flags: fans to stitch, orders and points events to post

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('needs_stitch', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.create_index(batch_op.f('ix_fans_needs_stitch'), ['needs_stitch'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('needs_apply', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.create_index(batch_op.f('ix_orders_needs_apply'), ['needs_apply'], unique=False)

    with op.batch_alter_table('points_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('needs_apply', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.create_index(batch_op.f('ix_points_events_needs_apply'), ['needs_apply'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('points_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_points_events_needs_apply'))
        batch_op.drop_column('needs_apply')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_needs_apply'))
        batch_op.drop_column('needs_apply')

    with op.batch_alter_table('fans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fans_needs_stitch'))
        batch_op.drop_column('needs_stitch')
