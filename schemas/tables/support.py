"""Tables that support the records: tokens, stored callbacks, identity keys, the merge audit and
the ledger's lots."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from schemas.tables.columns import _code, _json, _time, utcnow

__all__ = ["BlockedIdentityKeyRow", "FanIdentityKeyRow", "LedgerLotRow", "LedgerLotUseRow", "MemberChangeRow", "TokenRow", "WebhookEventRow"]


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
