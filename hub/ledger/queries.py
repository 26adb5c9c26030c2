"""Reading the ledger: a member's balance, its lots and its history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hub.errors import NotFound
from hub.ledger.lots import entries, entry_model, lots, members
from schemas import LedgerEntry
from schemas.tables import utcnow

__all__ = ["balance", "history", "live_member_id"]


def live_member_id(conn: sa.Connection, member_id: int) -> int:
    """Follow ``merged_into`` to the live member, without locking.

    :raises NotFound: no such member.
    """
    current = member_id
    for _ in range(64):
        row = conn.execute(sa.select(members.c.merged_into).where(members.c.member_id == current)).first()
        if row is None:
            raise NotFound(f"no member {member_id}")
        if row.merged_into is None:
            return current
        current = row.merged_into
    raise NotFound(f"member {member_id} has a merge chain that does not end")  # pragma: no cover


def balance(engine: sa.Engine, member_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    """A member's balance, the part of it usable now, lifetime points, level and open lots.

    :param member_id: the member; a merged one reports its survivor (``member_id`` says which).
    :param now: the time at which ``available`` is reckoned (default: now).
    """
    now = now or utcnow()
    with engine.connect() as conn:
        live = live_member_id(conn, member_id)
        row = conn.execute(sa.select(members).where(members.c.member_id == live)).one()
        held = conn.execute(
            sa.select(lots.c.lot_id, lots.c.remaining, lots.c.expires_at, lots.c.earned_at)
            .where(lots.c.member_id == live, lots.c.remaining > 0)
            .order_by(lots.c.earned_at, lots.c.lot_id)
        ).all()
    available = sum(lot.remaining for lot in held if lot.expires_at is None or lot.expires_at > now)
    return {
        "member_id": live,
        "asked_for": member_id,
        "balance": row.balance,
        "available": available,
        "lifetime_points": row.lifetime_points,
        "level": row.level,
        "lots": [
            {"lot_id": lot.lot_id, "remaining": lot.remaining, "earned_at": lot.earned_at,
             "expires_at": lot.expires_at}
            for lot in held
        ],
    }


def history(engine: sa.Engine, member_id: int, *, limit: int | None = None) -> list[LedgerEntry]:
    """A member's entries, oldest first (the last ``limit`` when given).

    :raises NotFound: no such member.
    """
    with engine.connect() as conn:
        if conn.execute(sa.select(members.c.member_id).where(members.c.member_id == member_id)).first() is None:
            raise NotFound(f"no member {member_id}")
        query = sa.select(entries).where(entries.c.member_id == member_id).order_by(entries.c.entry_id.desc())
        if limit is not None:
            query = query.limit(limit)
        rows = conn.execute(query).all()
    return [entry_model(row) for row in reversed(rows)]
