"""member cards reported on fans

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_no', sa.String(length=191), nullable=True))
        batch_op.add_column(sa.Column('card_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('needs_card', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index(batch_op.f('ix_fans_needs_card'), ['needs_card'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('fans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fans_needs_card'))
        batch_op.drop_column('needs_card')
        batch_op.drop_column('card_status')
        batch_op.drop_column('card_no')
