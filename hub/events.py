"""Canonical events that the hub announces through the ``track_event`` hook.

A new kind of event is a new dataclass here, not a new hook.  Every event has a ``name``.
Events carry identifiers and canonical records, never secrets or clear-text phone numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from schemas import Fan, Message
from schemas.tables import utcnow

__all__ = ["Event", "FanUpserted", "MembersMerged", "MessageReceived", "PointsPosted"]


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event."""

    name: ClassVar[str] = "event"
    occurred_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, kw_only=True)
class FanUpserted(Event):
    """A fan was inserted (``created``) or changed by a sync or a webhook."""

    name: ClassVar[str] = "fan_upserted"
    fan: Fan
    created: bool


@dataclass(frozen=True, kw_only=True)
class MembersMerged(Event):
    """Member ``merged`` was merged into member ``survivor``."""

    name: ClassVar[str] = "members_merged"
    survivor: int
    merged: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class PointsPosted(Event):
    """A ledger entry changed a member's balance."""

    name: ClassVar[str] = "points_posted"
    member_id: int
    entry_id: int
    points: int
    balance: int


@dataclass(frozen=True, kw_only=True)
class MessageReceived(Event):
    """A message arrived from a platform."""

    name: ClassVar[str] = "message_received"
    message: Message
