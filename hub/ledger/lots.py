"""Entries, lots and balances: the building blocks every ledger and member operation shares.

Everything here runs inside a write transaction the caller opened (:func:`hub.ledger.tx.run_write`)
after it locked the members it touches.  Nothing here commits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hub.errors import IdempotencyConflict, InvalidPosting, Overdraw
from hub.ledger.cards import LedgerPolicy, enqueue_card_updates
from schemas import LedgerEntry, LedgerKind
from schemas.tables import LedgerEntryRow, LedgerLotRow, LedgerLotUseRow, MemberRow, utcnow

MAX_POINTS = 2**31 - 1
"""The most points one entry, a balance or a lifetime total can hold: the points columns are
``INTEGER``, 32-bit on PostgreSQL, so the same limit holds on both backends."""

__all__ = [
    "MAX_POINTS",
    "Posted",
    "apply_change",
    "body_hash",
    "check_key",
    "consume",
    "entry_model",
    "make_entry",
    "find_replay",
    "insert_entry",
    "open_lot",
]

entries = LedgerEntryRow.__table__
lots = LedgerLotRow.__table__
uses = LedgerLotUseRow.__table__
members = MemberRow.__table__


@dataclass(frozen=True)
class Posted:
    """The outcome of a posting: the entry, whether this call wrote it, and the balance after.

    :param entry: the ledger entry (the first one, when the key was a replay).
    :param created: ``False`` when the key had been used before and nothing was written.
    :param member_id: the live member whose balance the entry changed.
    :param balance: that member's balance now.
    """

    entry: LedgerEntry
    created: bool
    member_id: int
    balance: int


def body_hash(body: dict[str, Any]) -> str:
    """A stable hash of what a request asked for, to tell a replay from a conflicting reuse."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidPosting("an idempotency key is required")
    if len(key) > 191:
        raise InvalidPosting("an idempotency key is at most 191 characters")
    return key


_ENTRY_FIELDS = frozenset(LedgerEntry.model_fields)
assert not LedgerEntry.__private_attributes__, "make_entry sets no private attributes"


def make_entry(
    entry_id: int, key: str, member_id: int, kind: LedgerKind, points: int, reason: str,
    reverses_entry_id: int | None, expires_at: datetime | None, created_at: datetime,
) -> LedgerEntry:
    """A :class:`LedgerEntry` from stored, already valid values, without validation: what
    ``model_construct`` builds with every field given, at a quarter of its cost (a page of
    postings builds hundreds)."""
    entry = object.__new__(LedgerEntry)
    object.__setattr__(entry, "__dict__", {
        "entry_id": entry_id, "idempotency_key": key, "member_id": member_id, "kind": kind, "points": points,
        "reason": reason, "reverses_entry_id": reverses_entry_id, "expires_at": expires_at,
        "created_at": created_at})
    object.__setattr__(entry, "__pydantic_fields_set__", set(_ENTRY_FIELDS))
    object.__setattr__(entry, "__pydantic_extra__", None)
    object.__setattr__(entry, "__pydantic_private__", None)
    return entry


def entry_model(row: Any) -> LedgerEntry:
    """The canonical entry of a stored row (already valid: built without re-validating)."""
    return make_entry(row.entry_id, row.idempotency_key, row.member_id, LedgerKind(row.kind), row.points,
                      row.reason, row.reverses_entry_id, row.expires_at, row.created_at)


def find_replay(conn: sa.Connection, key: str, digest: str) -> Posted | None:
    """The earlier posting under ``key``, or ``None`` if the key is new.

    :raises IdempotencyConflict: the key was used for a different body.
    """
    row = conn.execute(sa.select(entries).where(entries.c.idempotency_key == key)).first()
    if row is None:
        return None
    if row.body_hash != digest:
        raise IdempotencyConflict(
            f"idempotency key {key!r} was used for a different request (entry {row.entry_id})",
            key=key, entry_id=row.entry_id, member_id=row.member_id,
        )
    live = row.member_id
    for _ in range(64):
        member = conn.execute(sa.select(members).where(members.c.member_id == live)).one()
        if member.merged_into is None:
            break
        live = member.merged_into
    return Posted(entry=entry_model(row), created=False, member_id=live, balance=member.balance)


def insert_entry(
    conn: sa.Connection,
    *,
    key: str,
    member_id: int,
    kind: LedgerKind,
    points: int,
    reason: str,
    digest: str,
    reverses: int | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> Any:
    """Append one entry and return its row."""
    row = conn.execute(
        entries.insert()
        .values(
            idempotency_key=key, member_id=member_id, kind=str(kind), points=points, reason=reason,
            reverses_entry_id=reverses, expires_at=expires_at, body_hash=digest, created_at=now or utcnow(),
        )
        .returning(*entries.c)
    ).one()
    return row


def open_lot(
    conn: sa.Connection,
    *,
    member_id: int,
    entry_id: int,
    origin_entry_id: int,
    points: int,
    earned: int,
    earned_at: datetime,
    expires_at: datetime | None,
    fan_id: int | None,
) -> int:
    """Open a lot of ``points`` for ``member_id``, credited by entry ``entry_id``."""
    return conn.execute(
        lots.insert()
        .values(
            member_id=member_id, source_entry_id=entry_id, origin_entry_id=origin_entry_id, fan_id=fan_id,
            points=points, remaining=points, earned=earned, earned_at=earned_at, expires_at=expires_at,
        )
        .returning(lots.c.lot_id)
    ).scalar_one()


def consume(
    conn: sa.Connection,
    *,
    member_id: int,
    points: int,
    entry_id: int,
    usable_at: datetime | None = None,
    prefer_origin: int | None = None,
) -> list[tuple[int, int]]:
    """Take ``points`` from the member's lots and record the uses under ``entry_id``.

    Lots whose points came from entry ``prefer_origin`` go first (a reversal takes back the
    points it reverses when they are still there); then the oldest lots by ``earned_at``.  With
    ``usable_at`` (a redemption) lots that have expired by then are not touched.

    :return: ``(lot_id, points taken)`` pairs.
    :raises Overdraw: the lots hold fewer than ``points``.
    """
    query = sa.select(lots.c.lot_id, lots.c.remaining, lots.c.origin_entry_id, lots.c.earned_at).where(
        lots.c.member_id == member_id, lots.c.remaining > 0
    )
    if usable_at is not None:
        query = query.where(sa.or_(lots.c.expires_at.is_(None), lots.c.expires_at > usable_at))
    held = conn.execute(query).all()
    held.sort(key=lambda lot: (lot.origin_entry_id != prefer_origin, lot.earned_at, lot.lot_id))
    available = sum(lot.remaining for lot in held)
    if available < points:
        what = "unexpired points" if usable_at is not None else "points"
        raise Overdraw(
            f"member {member_id} has {available} {what}, fewer than the {points} asked for",
            available=available, member_id=member_id,
        )
    taken: list[tuple[int, int]] = []
    left = points
    for lot in held:
        if left == 0:
            break
        take = min(left, lot.remaining)
        conn.execute(lots.update().where(lots.c.lot_id == lot.lot_id).values(remaining=lot.remaining - take))
        taken.append((lot.lot_id, take))
        left -= take
    conn.execute(uses.insert(), [{"entry_id": entry_id, "lot_id": lot_id, "points": n} for lot_id, n in taken])
    return taken


def apply_change(
    conn: sa.Connection, member: Any, *, points: int, lifetime: int = 0, policy: LedgerPolicy,
    queue_cards: bool = True,
) -> tuple[int, int, int]:
    """Add ``points`` to the balance and ``lifetime`` to the lifetime points of a locked member,
    set its level and queue card updates; returns ``(balance, lifetime_points, level)``.

    The database's ``balance >= 0`` check is the last line of defence; callers check first.
    """
    current = conn.execute(
        sa.select(members.c.balance, members.c.lifetime_points, members.c.level)
        .where(members.c.member_id == member.member_id)
    ).one()
    balance = current.balance + points
    lifetime_points = max(0, current.lifetime_points + lifetime)
    if balance > MAX_POINTS or lifetime_points > MAX_POINTS:
        raise InvalidPosting(f"member {member.member_id}: this would pass the largest balance the ledger holds "
                             f"({MAX_POINTS}); nothing written")
    level = policy.level_for(lifetime_points)
    if (balance, lifetime_points, level) == tuple(current):
        return balance, lifetime_points, level
    conn.execute(
        members.update()
        .where(members.c.member_id == member.member_id)
        .values(balance=balance, lifetime_points=lifetime_points, level=level, updated_at=utcnow())
    )
    if queue_cards and (balance != current.balance or level != current.level):
        enqueue_card_updates(conn, member.member_id, balance=balance, level=level)
    return balance, lifetime_points, level
