"""Canonical models of siyu-hub: the records every platform adapter produces.

This package depends on nothing of ``hub`` or ``plugins``.
"""

from schemas.enums import (
    AccountStatus,
    Capability,
    CardStatus,
    ContentType,
    Direction,
    FanTier,
    FollowState,
    Gender,
    LedgerKind,
    OrderStatus,
)
from schemas.models import (
    Account,
    Fan,
    FollowRelation,
    LedgerEntry,
    Member,
    MemberCard,
    Message,
    Order,
    PointsEvent,
    Record,
    SyncCheckpoint,
)
from schemas.types import (
    SHANGHAI,
    Fen,
    Id,
    Phone,
    UTCDateTime,
    from_epoch_millis,
    from_epoch_seconds,
    from_shanghai_local,
    normalise_phone,
)

__all__ = [
    "Account",
    "AccountStatus",
    "Capability",
    "CardStatus",
    "ContentType",
    "Direction",
    "Fan",
    "FanTier",
    "Fen",
    "FollowRelation",
    "FollowState",
    "Gender",
    "Id",
    "LedgerEntry",
    "LedgerKind",
    "Member",
    "MemberCard",
    "Message",
    "Order",
    "OrderStatus",
    "Phone",
    "PointsEvent",
    "Record",
    "SHANGHAI",
    "SyncCheckpoint",
    "UTCDateTime",
    "from_epoch_millis",
    "from_epoch_seconds",
    "from_shanghai_local",
    "normalise_phone",
]
