"""Levels from lifetime points, and the member-card updates a balance change queues.

Card updates go into the ``outbox`` in the transaction that changed the balance, one item per
active card the member holds.  For one card (platform, account, ``card:<member_id>``) only the
newest unsent item matters: queuing a new one marks the older pending ones ``superseded``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import sqlalchemy as sa

from hub.storage.bulk import select_in
from schemas.tables import MemberCardRow, OutboxRow, utcnow

__all__ = ["CARD_UPDATE", "DEFAULT_LEVEL_THRESHOLDS", "LedgerPolicy", "enqueue_card_updates", "enqueue_many"]

CARD_UPDATE = "card_update"
DEFAULT_LEVEL_THRESHOLDS = (1_000, 5_000, 20_000)

cards = MemberCardRow.__table__
outbox = OutboxRow.__table__


class Card(NamedTuple):
    member_id: int
    id: int
    platform: str
    account_id: str
    card_no: str


@dataclass(frozen=True)
class LedgerPolicy:
    """The configurable rules of the ledger.

    :param level_thresholds: lifetime earned points at which levels 1, 2, 3 … begin; a member
        below the first threshold is level 0.  Must be strictly increasing positive integers.
    """

    level_thresholds: Sequence[int] = DEFAULT_LEVEL_THRESHOLDS

    def __post_init__(self) -> None:
        steps = list(self.level_thresholds)
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)) or any(t <= 0 for t in steps):
            raise ValueError("level thresholds must be strictly increasing positive integers")

    def level_for(self, lifetime_points: int) -> int:
        """The level that ``lifetime_points`` reach."""
        return bisect_right(list(self.level_thresholds), lifetime_points)


def card_target(member_id: int) -> str:
    return f"card:{member_id}"


def enqueue_card_updates(conn: sa.Connection, member_id: int, *, balance: int, level: int) -> int:
    """Queue one ``card_update`` per active card of ``member_id``; returns how many were queued.

    :param conn: the open write transaction that changed the balance or level.
    :param member_id: the live member.
    :param balance: its balance after the change.
    :param level: its level after the change.
    """
    now = utcnow()
    held = conn.execute(
        sa.select(cards.c.platform, cards.c.account_id, cards.c.card_no)
        .where(cards.c.member_id == member_id, cards.c.status == "active")
        .order_by(cards.c.id)
    ).all()
    target = card_target(member_id)
    for card in held:
        conn.execute(
            outbox.update()
            .where(
                outbox.c.platform == card.platform,
                outbox.c.account_id == card.account_id,
                outbox.c.target == target,
                outbox.c.status == "pending",
            )
            .values(status="superseded", updated_at=now)
        )
        conn.execute(
            outbox.insert().values(
                platform=card.platform,
                account_id=card.account_id,
                kind=CARD_UPDATE,
                target=target,
                payload={"member_id": member_id, "card_no": card.card_no, "balance": balance, "level": level},
                status="pending",
                attempts=0,
                available_at=now,
                inserted_at=now,
                updated_at=now,
            )
        )
    return len(held)


def enqueue_many(conn: sa.Connection, changed: dict[int, tuple[int, int]]) -> int:
    """:func:`enqueue_card_updates` for many members at once: ``{member_id: (balance, level)}``."""
    if not changed:
        return 0
    rows = select_in(conn, cards, ("member_id", "id", "platform", "account_id", "card_no", "status"), "member_id",
                     sorted(changed))
    held = [Card(*row[:5]) for row in sorted(rows) if row[5] == "active"]
    if not held:
        return 0
    now = utcnow()
    wanted = [(c.platform, c.account_id, card_target(c.member_id)) for c in held]
    for start in range(0, len(wanted), 300):
        conn.execute(outbox.update().where(
            outbox.c.status == "pending",
            sa.tuple_(outbox.c.platform, outbox.c.account_id, outbox.c.target).in_(wanted[start:start + 300]),
        ).values(status="superseded", updated_at=now))
    conn.execute(outbox.insert(), [
        {"platform": c.platform, "account_id": c.account_id, "kind": CARD_UPDATE, "target": card_target(c.member_id),
         "payload": {"member_id": c.member_id, "card_no": c.card_no, "balance": changed[c.member_id][0],
                     "level": changed[c.member_id][1]},
         "status": "pending", "attempts": 0, "available_at": now, "inserted_at": now, "updated_at": now}
        for c in held])
    return len(held)
