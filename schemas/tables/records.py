"""Tables of the canonical records: accounts, members, fans, cards, messages, orders, points
events, the ledger's entries, sync checkpoints and the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from schemas.tables.columns import _code, _flag, _json, _Stamped, _time, utcnow

__all__ = ["AccountRow", "FanRow", "LedgerEntryRow", "MemberCardRow", "MemberRow", "MessageRow", "OrderRow", "OutboxRow", "PointsEventRow", "SyncCheckpointRow"]


class AccountRow(_Stamped, table=True):
    __tablename__ = "accounts"
    __table_args__ = (sa.UniqueConstraint("platform", "account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = _code(64)
    account_id: str = _code(191)
    name: str | None = None
    status: str = _code(32, default="active")


class MemberRow(_Stamped, table=True):
    __tablename__ = "members"
    __table_args__ = (
        sa.CheckConstraint("balance >= 0", name="balance_not_negative"),
        sa.CheckConstraint("lifetime_points >= 0", name="lifetime_not_negative"),
        sa.CheckConstraint("merged_into IS NULL OR merged_into <> member_id", name="not_merged_into_self"),
    )

    member_id: int | None = Field(default=None, primary_key=True)
    merged_into: int | None = Field(default=None, foreign_key="members.member_id", index=True)
    level: int = 0
    lifetime_points: int = 0
    balance: int = 0


class FanRow(_Stamped, table=True):
    __tablename__ = "fans"
    __table_args__ = (sa.UniqueConstraint("platform_uid", "platform", "account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = _code(64)
    account_id: str = _code(191)
    platform_uid: str = _code(191)
    union_id: str | None = Field(default=None, sa_type=sa.String(191), index=True)
    phone_hash: str | None = Field(default=None, sa_type=sa.String(64), index=True)
    phone_encrypted: str | None = None
    nickname: str | None = None
    avatar_url: str | None = None
    gender: str = _code(16, default="unknown")
    follow_state: str = _code(16, default="unknown")
    followed_at: datetime | None = _time()
    unfollowed_at: datetime | None = _time()
    tier: str | None = Field(default=None, sa_type=sa.String(16))
    card_no: str | None = Field(default=None, sa_type=sa.String(191))
    card_status: str | None = Field(default=None, sa_type=sa.String(16))
    tags: list[str] = _json(default_factory=list)
    follows: list[dict[str, Any]] = _json(default_factory=list)
    interactions: dict[str, int] = _json(default_factory=dict)
    identity_keys: dict[str, str] = _json(default_factory=dict)
    member_id: int | None = Field(default=None, foreign_key="members.member_id", index=True)
    needs_stitch: bool = _flag()
    needs_card: bool = _flag(default=False)


class MemberCardRow(_Stamped, table=True):
    __tablename__ = "member_cards"
    __table_args__ = (
        sa.UniqueConstraint("member_id", "platform", "account_id"),
        sa.CheckConstraint("balance >= 0", name="balance_not_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.member_id")
    platform: str = _code(64)
    account_id: str = _code(191)
    card_no: str | None = Field(default=None, sa_type=sa.String(191))
    level: int = 0
    balance: int = 0
    status: str = _code(16, default="active")


class MessageRow(_Stamped, table=True):
    __tablename__ = "messages"
    __table_args__ = (sa.UniqueConstraint("platform_msg_id", "platform", "account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = _code(64)
    account_id: str = _code(191)
    platform_msg_id: str = _code(191)
    conversation_id: str | None = Field(default=None, sa_type=sa.String(191))
    fan_uid: str | None = Field(default=None, sa_type=sa.String(191))
    direction: str = _code(16)
    content_type: str = _code(16)
    body: dict[str, Any] = _json(default_factory=dict)
    sent_at: datetime = _time(nullable=False)


class OrderRow(_Stamped, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        sa.UniqueConstraint("order_id", "platform", "account_id"),
        sa.CheckConstraint("amount_fen >= 0", name="amount_not_negative"),
        sa.CheckConstraint("refunded_fen >= 0 AND refunded_fen <= amount_fen", name="refund_within_amount"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = _code(64)
    account_id: str = _code(191)
    order_id: str = _code(191)
    buyer_uid: str = _code(191)
    amount_fen: int
    refunded_fen: int = 0
    status: str = _code(32)
    created_at: datetime | None = _time()
    paid_at: datetime | None = _time()
    refunded_at: datetime | None = _time()
    needs_apply: bool = _flag()


class PointsEventRow(_Stamped, table=True):
    __tablename__ = "points_events"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "platform", "account_id"),
        sa.CheckConstraint("delta <> 0", name="delta_not_zero"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = _code(64)
    account_id: str = _code(191)
    event_id: str = _code(191)
    fan_uid: str = _code(191)
    delta: int
    reason: str
    occurred_at: datetime = _time(nullable=False)
    expires_at: datetime | None = _time()
    needs_apply: bool = _flag()


class LedgerEntryRow(SQLModel, table=True):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.UniqueConstraint("idempotency_key"),
        sa.UniqueConstraint("reverses_entry_id"),
        sa.CheckConstraint("points <> 0", name="points_not_zero"),
    )

    entry_id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = _code(191)
    member_id: int = Field(foreign_key="members.member_id", index=True)
    kind: str = _code(16)
    points: int
    reason: str
    reverses_entry_id: int | None = Field(default=None, foreign_key="ledger_entries.entry_id")
    expires_at: datetime | None = _time()
    body_hash: str = _code(64)
    created_at: datetime = _time(nullable=False, default_factory=utcnow)


class SyncCheckpointRow(SQLModel, table=True):
    __tablename__ = "sync_checkpoints"
    __table_args__ = (sa.UniqueConstraint("platform", "account_id", "stream"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = _code(64)
    account_id: str = _code(191)
    stream: str = _code(64)
    cursor: str | None = Field(default=None, sa_type=sa.Text)
    updated_at: datetime = _time(nullable=False, default_factory=utcnow)


class OutboxRow(_Stamped, table=True):
    """Work to send to a platform (a member-card update, an outbound message), queued in the same
    transaction as the change that caused it and drained with retries.

    ``target`` names what the item updates (``card:<member_id>``); for one target the items are
    sent in ``id`` order, and a newer pending item supersedes an older unsent one.
    ``status`` is one of ``pending``, ``sending`` (claimed by a drainer until ``available_at``),
    ``done``, ``dead``, ``superseded``.
    """

    __tablename__ = "outbox"
    __table_args__ = (sa.Index(None, "status", "available_at"), sa.Index(None, "platform", "account_id", "target"))

    id: int | None = Field(default=None, primary_key=True)
    platform: str = _code(64)
    account_id: str = _code(191)
    kind: str = _code(32)
    target: str = _code(191)
    payload: dict[str, Any] = _json(default_factory=dict)
    status: str = _code(16, default="pending")
    attempts: int = 0
    last_error: str | None = None
    available_at: datetime = _time(nullable=False, default_factory=utcnow)
