"""daemon jobs: each scheduled job's last run and next due time

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'daemon_jobs',
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('platform', sa.String(length=64), nullable=True),
        sa.Column('account_id', sa.String(length=191), nullable=True),
        sa.Column('stream', sa.String(length=32), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=True),
        sa.Column('error', sa.String(), nullable=True),
        sa.Column('owner', sa.String(length=255), nullable=True),
        sa.Column('runs', sa.Integer(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('duration_seconds', sa.Float(), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_ok_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('next_due_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_daemon_jobs')),
    )


def downgrade() -> None:
    op.drop_table('daemon_jobs')
