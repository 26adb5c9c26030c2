"""Database tables (SQLModel) for the canonical records.

Each table carries a unique constraint on its natural key from DESIGN.md, so a second insert of
the same platform record is a constraint error rather than a silent duplicate.  Where records are
looked up by a batch of platform ids (fans, orders, points events, messages), the id leads the
key's index: PostgreSQL then uses it for ``uid IN (…)`` even before a table has statistics,
instead of scanning every row of the account.  Enum columns are
stored as short strings (no database enum types), so a plugin adding a value needs no migration.
Times are stored as UTC by :class:`UTCDateTimeType` and come back timezone-aware on every backend.

Phone numbers are never stored in clear: ``phone_hash`` is an HMAC-SHA256 under the deployment's
phone key, and ``phone_encrypted`` holds the number only when the operator configured an
encryption key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = [
    "AccountRow",
    "BlockedIdentityKeyRow",
    "FanIdentityKeyRow",
    "FanRow",
    "LedgerEntryRow",
    "LedgerLotRow",
    "LedgerLotUseRow",
    "MemberCardRow",
    "MemberChangeRow",
    "MemberRow",
    "MessageRow",
    "OrderRow",
    "OutboxRow",
    "PointsEventRow",
    "SyncCheckpointRow",
    "TokenRow",
    "UTCDateTimeType",
    "WebhookEventRow",
    "metadata",
    "utcnow",
]

metadata = SQLModel.metadata
metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTimeType(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("refusing to store a naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: sa.Dialect) -> Any:
        """On SQLite a time is stored as the text of its naive UTC value, ``YYYY-MM-DD
        HH:MM:SS.ffffff`` (the SQLite dialect's storage format); a value already in UTC (every
        canonical record's) is written straight from ``isoformat``, the rest go the general way.
        """
        process = super().bind_processor(dialect)
        if dialect.name != "sqlite" or process is None:
            return process

        def utc_text(value: Any) -> Any:
            if type(value) is datetime and value.tzinfo is UTC:
                return value.isoformat(" ", "microseconds")[:26]  # the text before '+00:00'
            return process(value)

        return utc_text

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(nullable: bool = True, **kw: Any) -> Any:
    return Field(sa_type=UTCDateTimeType, nullable=nullable, **kw)


def _json(**kw: Any) -> Any:
    return Field(sa_type=sa.JSON, nullable=False, **kw)


def _code(length: int = 32, **kw: Any) -> Any:
    return Field(sa_type=sa.String(length), nullable=False, **kw)


def _flag(default: bool = True) -> Any:
    """Work pending on a row (stitching a fan, posting an order's points); set when the row is
    written, cleared by the step that does the work, so a crash between the two loses nothing."""
    return Field(default=default, nullable=False, index=True,
                 sa_column_kwargs={"server_default": sa.true() if default else sa.false()})


class _Stamped(SQLModel):
    inserted_at: datetime = _time(nullable=False, default_factory=utcnow)
    updated_at: datetime = _time(nullable=False, default_factory=utcnow)


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


# ---------------------------------------------------------------------------------------------
# Members and the points ledger (identity keys, merge audit, ledger lots).
# ---------------------------------------------------------------------------------------------


class TokenRow(SQLModel, table=True):
    """An account's current access token (and refresh token), shared by every process."""

    __tablename__ = "tokens"
    __table_args__ = (sa.UniqueConstraint("platform", "account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = _code(64)
    account_id: str = _code(191)
    access_token: str = Field(sa_type=sa.Text, nullable=False)
    expires_at: datetime = _time(nullable=False)
    refresh_token: str | None = Field(default=None, sa_type=sa.Text)
    refresh_expires_at: datetime | None = _time()
    extra: dict[str, Any] = _json(default_factory=dict)
    updated_at: datetime = _time(nullable=False, default_factory=utcnow)


class WebhookEventRow(SQLModel, table=True):
    """A verified callback, stored before it is acknowledged; ``dedupe_key`` makes a replay a no-op.

    ``status`` is ``received`` until the records in ``payload`` are applied (``processed``) or
    applying them failed (``failed``, with ``error``).
    """

    __tablename__ = "webhook_events"
    __table_args__ = (sa.UniqueConstraint("platform", "account_id", "dedupe_key"), sa.Index(None, "status"))

    id: int | None = Field(default=None, primary_key=True)
    platform: str = _code(64)
    account_id: str = _code(191)
    dedupe_key: str = _code(191)
    status: str = _code(16, default="received")
    payload: dict[str, Any] = _json(default_factory=dict)
    error: str | None = None
    received_at: datetime = _time(nullable=False, default_factory=utcnow)
    processed_at: datetime | None = _time()


class FanIdentityKeyRow(SQLModel, table=True):
    """One identity key of one fan (``phone`` hash, ``wechat_union_id``, a plugin's key …).

    Fans that share a key belong to one member, unless the key is blocked.
    """

    __tablename__ = "fan_identity_keys"
    __table_args__ = (sa.UniqueConstraint("fan_id", "kind", "value"), sa.Index(None, "kind", "value"))

    id: int | None = Field(default=None, primary_key=True)
    fan_id: int = Field(foreign_key="fans.id")
    kind: str = _code(64)
    value: str = _code(191)


class BlockedIdentityKeyRow(SQLModel, table=True):
    """A key value shared by more fans than the configured limit: never used to merge."""

    __tablename__ = "blocked_identity_keys"
    __table_args__ = (sa.UniqueConstraint("kind", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = _code(64)
    value: str = _code(191)
    fan_count: int
    blocked_at: datetime = _time(nullable=False, default_factory=utcnow)


class MemberChangeRow(SQLModel, table=True):
    """The audit of a merge, a split or the undoing of either: what, why, when, by whom.

    ``member_id`` lost the fans and points, ``other_member_id`` received them.  ``fan_ids`` and
    ``lot_ids`` list what moved; ``undoes_change_id`` is unique, so a change is undone once.
    """

    __tablename__ = "member_changes"
    __table_args__ = (
        sa.UniqueConstraint("undoes_change_id"),
        sa.CheckConstraint("points >= 0", name="points_not_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    action: str = _code(16)
    member_id: int = Field(foreign_key="members.member_id", index=True)
    other_member_id: int = Field(foreign_key="members.member_id", index=True)
    fan_ids: list[int] = _json(default_factory=list)
    lot_ids: list[int] = _json(default_factory=list)
    points: int = 0
    lifetime_points: int = 0
    reason: str
    actor: str = _code(191)
    rule: str | None = Field(default=None, sa_type=sa.String(191))
    undoes_change_id: int | None = Field(default=None, foreign_key="member_changes.id")
    created_at: datetime = _time(nullable=False, default_factory=utcnow)


class LedgerLotRow(SQLModel, table=True):
    """Points a member holds, by where they came from and when they expire.

    A credit entry opens a lot; debits consume lots (a redemption: the oldest unexpired first);
    merges and splits hand whole lots to another member.  The sum of a member's ``remaining``
    equals its balance.  Lots are the ledger's working state: entries stay the record.
    """

    __tablename__ = "ledger_lots"
    __table_args__ = (
        sa.CheckConstraint("points > 0", name="points_positive"),
        sa.CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_within_points"),
        sa.CheckConstraint("earned >= 0", name="earned_not_negative"),
        sa.Index(None, "member_id", "earned_at"),
        sa.Index(None, "expires_at"),
    )

    lot_id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.member_id")
    source_entry_id: int = Field(foreign_key="ledger_entries.entry_id", index=True)
    origin_entry_id: int = Field(foreign_key="ledger_entries.entry_id", index=True)
    fan_id: int | None = Field(default=None, foreign_key="fans.id", index=True)
    points: int
    remaining: int
    earned: int = 0
    earned_at: datetime = _time(nullable=False)
    expires_at: datetime | None = _time()


class LedgerLotUseRow(SQLModel, table=True):
    """How many points of which lot a debit entry consumed; a reversal restores them."""

    __tablename__ = "ledger_lot_uses"
    __table_args__ = (sa.CheckConstraint("points > 0", name="points_positive"),)

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(foreign_key="ledger_entries.entry_id", index=True)
    lot_id: int = Field(foreign_key="ledger_lots.lot_id")
    points: int
