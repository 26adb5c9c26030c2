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

from schemas.tables.columns import UTCDateTimeType, metadata, utcnow
from schemas.tables.daemon import DaemonJobRow
from schemas.tables.records import (
    AccountRow,
    FanRow,
    LedgerEntryRow,
    MemberCardRow,
    MemberRow,
    MessageRow,
    OrderRow,
    OutboxRow,
    PointsEventRow,
    SyncCheckpointRow,
)
from schemas.tables.support import (
    BlockedIdentityKeyRow,
    FanIdentityKeyRow,
    LedgerLotRow,
    LedgerLotUseRow,
    MemberChangeRow,
    TokenRow,
    WebhookEventRow,
)

__all__ = [
    "AccountRow",
    "BlockedIdentityKeyRow",
    "DaemonJobRow",
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
