"""Enumerations shared by the canonical models.

Every enum is a ``StrEnum`` so that its values read the same in the database, in JSON output and in
configuration files.  An unknown value is a validation error naming the field; there is no
catch-all member that silently swallows a platform's new value.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AccountStatus",
    "Capability",
    "CardStatus",
    "ContentType",
    "Direction",
    "FanTier",
    "FollowState",
    "Gender",
    "LedgerKind",
    "OrderStatus",
]


class AccountStatus(StrEnum):
    """Whether the brand's authorisation of the app on a platform account stands."""

    ACTIVE = "active"
    UNAUTHORISED = "unauthorised"


class Capability(StrEnum):
    """What a platform adapter can do; declared by the adapter class, read by the hub."""

    FANS = "fans"
    ORDERS = "orders"
    POINTS = "points"
    CARDS = "cards"
    MESSAGES = "messages"
    WEBHOOKS = "webhooks"


class FanTier(StrEnum):
    """The Douyin 企业号 fan path: 潜在 → 路人 → 好感 → 真爱."""

    PROSPECT = "prospect"
    PASSERBY = "passerby"
    FOND = "fond"
    DEVOTED = "devoted"


class FollowState(StrEnum):
    """Whether the fan follows the account now."""

    UNKNOWN = "unknown"
    FOLLOWING = "following"
    UNFOLLOWED = "unfollowed"


class Gender(StrEnum):
    UNKNOWN = "unknown"
    MALE = "male"
    FEMALE = "female"


class Direction(StrEnum):
    """A message as seen from the brand: received from a fan, or sent to one."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ContentType(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    CARD = "card"
    TEMPLATE = "template"
    EVENT = "event"
    OTHER = "other"


class OrderStatus(StrEnum):
    CREATED = "created"
    PAID = "paid"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


class CardStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class LedgerKind(StrEnum):
    """Why a ledger entry exists. Entries are append-only; a correction is a ``REVERSAL``."""

    EARN = "earn"
    REDEEM = "redeem"
    REVERSAL = "reversal"
    EXPIRY = "expiry"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
