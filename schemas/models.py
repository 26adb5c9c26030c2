"""Canonical records: what every platform adapter produces and every hook receives.

These models validate on construction.  A platform's quirks (string numbers, local times,
milliseconds) are resolved by the adapter before a record is built; what arrives here is already
in the hub's units: integer fen, integer points, UTC datetimes, normalised phone numbers.

The database rows that store them live in :mod:`schemas.tables`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, TypeAdapter, model_validator

from schemas.enums import (
    AccountStatus,
    CardStatus,
    ContentType,
    Direction,
    FanTier,
    FollowState,
    Gender,
    LedgerKind,
    OrderStatus,
)
from schemas.types import Fen, Id, Phone, UTCDateTime

__all__ = [
    "Account",
    "Fan",
    "FollowRelation",
    "LedgerEntry",
    "Member",
    "MemberCard",
    "Message",
    "Order",
    "PointsEvent",
    "Record",
    "SyncCheckpoint",
]


class Record(BaseModel):
    """Base of the canonical records: strict about unknown fields and about assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)

    @classmethod
    def many(cls, values: Iterable[Mapping[str, Any]]) -> list[Self]:
        """Records of this kind from their field values, validated in one call: how an adapter
        builds a page (``Fan.many({...} for item in items)``).

        The rules are those of ``Fan(**fields)`` (the fields given count as set, for partial
        updates); one call for the whole page costs pydantic less than a call per record.

        :raises pydantic.ValidationError: if any record is invalid; each error's location starts
            with the record's index in ``values``, and no input value is repeated.
        """
        return _list_validator(cls).validate_python(values if isinstance(values, list) else list(values))


@cache
def _list_validator(model: type[Record]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model], config=ConfigDict(hide_input_in_errors=True))  # type: ignore[valid-type]


class Account(Record):
    """A brand's account on one platform (企业号, corp + agent, app_id, shop, …).

    ``status`` is what the platform last said of the brand's authorisation: ``active``, or
    ``unauthorised`` after the brand revoked the app (an adapter reports it from a callback).
    """

    platform: Id
    account_id: Id
    name: str | None = None
    status: AccountStatus | None = None


class FollowRelation(Record):
    """One staff member's (or one account's) relation with a fan, such as a WeCom follow_user."""

    staff_id: Id
    followed_at: UTCDateTime | None = None
    remark: str | None = None
    tag_ids: list[str] = Field(default_factory=list)
    add_way: int | None = None
    state: str | None = None
    ended_at: UTCDateTime | None = None


class Fan(Record):
    """One identity of a person on one platform account."""

    platform: Id
    account_id: Id
    platform_uid: Id
    union_id: Id | None = None
    phone: Phone | None = None
    other_phones: list[Phone] = Field(
        default_factory=list,
        description="more numbers known for the person (WeCom remark_mobiles); kept only as keyed hashes, "
                    "and matched like the phone when stitching")
    nickname: str | None = None
    avatar_url: str | None = None
    gender: Gender = Gender.UNKNOWN
    follow_state: FollowState = FollowState.UNKNOWN
    followed_at: UTCDateTime | None = None
    unfollowed_at: UTCDateTime | None = None
    tier: FanTier | None = None
    card_no: Id | None = Field(default=None, description="the fan's member card on this account, if any")
    card_status: CardStatus | None = Field(default=None, description="opened (active) or closed by the fan")
    tags: list[str] = Field(default_factory=list)
    follows: list[FollowRelation] = Field(default_factory=list)
    interactions: dict[str, NonNegativeInt] = Field(
        default_factory=dict, description="interaction counters as the platform reports them (totals)")
    interactions_added: dict[str, PositiveInt] = Field(
        default_factory=dict,
        description="counts one callback adds to the stored counters (a message, a follow); applied once per "
                    "stored callback, so only webhooks should use it, never a re-readable sync page",
    )
    identity_keys: dict[str, str] = Field(
        default_factory=dict,
        description="Extra keys that identify the person across platforms, by kind.",
    )

    def __repr__(self) -> str:  # the phone number never reaches a log through a repr
        return f"Fan(platform={self.platform!r}, account_id={self.account_id!r}, platform_uid={self.platform_uid!r})"

    __str__ = __repr__


class Member(Record):
    """One person across platforms. A merged member points to its survivor."""

    member_id: int = Field(gt=0)
    merged_into: int | None = Field(default=None, gt=0)
    level: int = Field(default=0, ge=0)
    lifetime_points: NonNegativeInt = 0


class MemberCard(Record):
    """A member's card on one platform account, as last pushed."""

    member_id: int = Field(gt=0)
    platform: Id
    account_id: Id
    card_no: Id | None = None
    level: int = Field(default=0, ge=0)
    balance: NonNegativeInt = 0
    status: CardStatus = CardStatus.ACTIVE


class Message(Record):
    """A private message, fan-group message, subscription or template message."""

    platform: Id
    account_id: Id
    platform_msg_id: Id
    conversation_id: str | None = None
    fan_uid: Id | None = None
    direction: Direction
    content_type: ContentType
    body: dict[str, Any] = Field(default_factory=dict)
    sent_at: UTCDateTime


class Order(Record):
    """A purchase in a platform shop, in integer fen."""

    platform: Id
    account_id: Id
    order_id: Id
    buyer_uid: Id
    amount_fen: Fen
    refunded_fen: Fen = 0
    status: OrderStatus
    created_at: UTCDateTime | None = None
    paid_at: UTCDateTime | None = None
    refunded_at: UTCDateTime | None = None

    @model_validator(mode="after")
    def _refund_within_amount(self) -> Order:
        if self.refunded_fen > self.amount_fen:
            raise ValueError("refunded_fen exceeds amount_fen")
        return self


class PointsEvent(Record):
    """A points change reported by a platform, or derived from an order by an earning rule."""

    platform: Id
    account_id: Id
    event_id: Id
    fan_uid: Id
    delta: int
    reason: str = Field(min_length=1)
    occurred_at: UTCDateTime
    expires_at: UTCDateTime | None = None

    @model_validator(mode="after")
    def _nonzero(self) -> PointsEvent:
        if self.delta == 0:
            raise ValueError("delta must not be zero")
        return self


class LedgerEntry(Record):
    """One append-only line of the points ledger."""

    entry_id: int | None = None
    idempotency_key: Id
    member_id: int = Field(gt=0)
    kind: LedgerKind
    points: int
    reason: str = Field(min_length=1)
    reverses_entry_id: int | None = None
    expires_at: UTCDateTime | None = None
    created_at: UTCDateTime

    @model_validator(mode="after")
    def _sign_matches_kind(self) -> LedgerEntry:
        if self.points == 0:
            raise ValueError("points must not be zero")
        positive = {LedgerKind.EARN, LedgerKind.TRANSFER_IN}
        negative = {LedgerKind.REDEEM, LedgerKind.EXPIRY, LedgerKind.TRANSFER_OUT}
        if self.kind in positive and self.points < 0:
            raise ValueError(f"a {self.kind} entry adds points")
        if self.kind in negative and self.points > 0:
            raise ValueError(f"a {self.kind} entry removes points")
        return self


class SyncCheckpoint(Record):
    """Where an incremental stream of one account stopped."""

    platform: Id
    account_id: Id
    stream: Id
    cursor: str | None = None
    updated_at: UTCDateTime
