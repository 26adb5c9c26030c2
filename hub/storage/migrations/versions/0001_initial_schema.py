"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op



revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('accounts',
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=191), nullable=False),
    sa.Column('name', sa.String(), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('platform', 'account_id', name=op.f('uq_accounts_platform_account_id'))
    )
    op.create_table('members',
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('merged_into', sa.Integer(), nullable=True),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('lifetime_points', sa.Integer(), nullable=False),
    sa.Column('balance', sa.Integer(), nullable=False),
    sa.CheckConstraint('balance >= 0', name=op.f('ck_members_balance_not_negative')),
    sa.CheckConstraint('lifetime_points >= 0', name=op.f('ck_members_lifetime_not_negative')),
    sa.CheckConstraint('merged_into IS NULL OR merged_into <> member_id', name=op.f('ck_members_not_merged_into_self')),
    sa.ForeignKeyConstraint(['merged_into'], ['members.member_id'], name=op.f('fk_members_merged_into_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_members'))
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_members_merged_into'), ['merged_into'], unique=False)

    op.create_table('messages',
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=191), nullable=False),
    sa.Column('platform_msg_id', sa.String(length=191), nullable=False),
    sa.Column('conversation_id', sa.String(length=191), nullable=True),
    sa.Column('fan_uid', sa.String(length=191), nullable=True),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('content_type', sa.String(length=16), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('platform_msg_id', 'platform', 'account_id', name=op.f('uq_messages_platform_msg_id_platform_account_id'))
    )
    op.create_table('orders',
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=191), nullable=False),
    sa.Column('order_id', sa.String(length=191), nullable=False),
    sa.Column('buyer_uid', sa.String(length=191), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('refunded_fen', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_fen >= 0', name=op.f('ck_orders_amount_not_negative')),
    sa.CheckConstraint('refunded_fen >= 0 AND refunded_fen <= amount_fen', name=op.f('ck_orders_refund_within_amount')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('order_id', 'platform', 'account_id', name=op.f('uq_orders_order_id_platform_account_id'))
    )
    op.create_table('outbox',
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=191), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=191), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(), nullable=True),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_platform_account_id_target'), ['platform', 'account_id', 'target'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_status_available_at'), ['status', 'available_at'], unique=False)

    op.create_table('points_events',
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=191), nullable=False),
    sa.Column('event_id', sa.String(length=191), nullable=False),
    sa.Column('fan_uid', sa.String(length=191), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('delta <> 0', name=op.f('ck_points_events_delta_not_zero')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_events')),
    sa.UniqueConstraint('event_id', 'platform', 'account_id', name=op.f('uq_points_events_event_id_platform_account_id'))
    )
    op.create_table('sync_checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=191), nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('cursor', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_checkpoints')),
    sa.UniqueConstraint('platform', 'account_id', 'stream', name=op.f('uq_sync_checkpoints_platform_account_id_stream'))
    )
    op.create_table('fans',
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=191), nullable=False),
    sa.Column('platform_uid', sa.String(length=191), nullable=False),
    sa.Column('union_id', sa.String(length=191), nullable=True),
    sa.Column('phone_hash', sa.String(length=64), nullable=True),
    sa.Column('phone_encrypted', sa.String(), nullable=True),
    sa.Column('nickname', sa.String(), nullable=True),
    sa.Column('avatar_url', sa.String(), nullable=True),
    sa.Column('gender', sa.String(length=16), nullable=False),
    sa.Column('follow_state', sa.String(length=16), nullable=False),
    sa.Column('followed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unfollowed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tier', sa.String(length=16), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('follows', sa.JSON(), nullable=False),
    sa.Column('interactions', sa.JSON(), nullable=False),
    sa.Column('identity_keys', sa.JSON(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_fans_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fans')),
    sa.UniqueConstraint('platform_uid', 'platform', 'account_id', name=op.f('uq_fans_platform_uid_platform_account_id'))
    )
    with op.batch_alter_table('fans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fans_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fans_phone_hash'), ['phone_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_fans_union_id'), ['union_id'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=191), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('reverses_entry_id', sa.Integer(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('body_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('points <> 0', name=op.f('ck_ledger_entries_points_not_zero')),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_ledger_entries_member_id_members')),
    sa.ForeignKeyConstraint(['reverses_entry_id'], ['ledger_entries.entry_id'], name=op.f('fk_ledger_entries_reverses_entry_id_ledger_entries')),
    sa.PrimaryKeyConstraint('entry_id', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_entries_idempotency_key')),
    sa.UniqueConstraint('reverses_entry_id', name=op.f('uq_ledger_entries_reverses_entry_id'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entries_member_id'), ['member_id'], unique=False)

    op.create_table('member_cards',
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=191), nullable=False),
    sa.Column('card_no', sa.String(length=191), nullable=True),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('balance', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.CheckConstraint('balance >= 0', name=op.f('ck_member_cards_balance_not_negative')),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_member_cards_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_cards')),
    sa.UniqueConstraint('member_id', 'platform', 'account_id', name=op.f('uq_member_cards_member_id_platform_account_id'))
    )
    


def downgrade() -> None:
    
    op.drop_table('member_cards')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_member_id'))

    op.drop_table('ledger_entries')
    with op.batch_alter_table('fans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fans_union_id'))
        batch_op.drop_index(batch_op.f('ix_fans_phone_hash'))
        batch_op.drop_index(batch_op.f('ix_fans_member_id'))

    op.drop_table('fans')
    op.drop_table('sync_checkpoints')
    op.drop_table('points_events')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_status_available_at'))
        batch_op.drop_index(batch_op.f('ix_outbox_platform_account_id_target'))

    op.drop_table('outbox')
    op.drop_table('orders')
    op.drop_table('messages')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_merged_into'))

    op.drop_table('members')
    op.drop_table('accounts')
    
