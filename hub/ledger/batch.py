"""Posting a page of earned points in one transaction, for the sync engine and bulk imports.

The rules are :func:`hub.ledger.post`'s, item by item; only the work is batched: the keys are
looked up together, the members locked together (ascending id), entries and lots inserted with
one ``executemany`` each, and each member's balance updated and card update queued once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hub.errors import IdempotencyConflict
from hub.ledger.cards import LedgerPolicy, enqueue_many
from hub.ledger.lots import Posted, body_hash, check_key, entries, entry_model, lots
from hub.ledger.postings import DEFAULT_POLICY, _aware, _points, _reason, announce
from hub.ledger.tx import lock_members, resolve_member, run_write
from schemas import LedgerKind
from schemas.tables import utcnow

__all__ = ["Earn", "post_many"]


@dataclass(frozen=True)
class Earn:
    """One earned-points posting: the arguments of :func:`hub.ledger.post`."""

    member_id: int
    points: int
    reason: str
    key: str
    expires_at: datetime | None = None
    fan_id: int | None = None


def _digest(item: Earn) -> str:
    return body_hash({"op": "earn", "member": item.member_id, "points": item.points, "reason": item.reason.strip(),
                      "expires_at": item.expires_at.isoformat() if item.expires_at else None, "fan": item.fan_id})


def post_many(
    engine: sa.Engine, items: list[Earn], *, now: datetime | None = None, policy: LedgerPolicy = DEFAULT_POLICY,
    host: Any = None,
) -> list[Posted]:
    """Post every item in one write transaction; returns one :class:`Posted` per item, in order.

    :raises InvalidPosting: an item is malformed; nothing is written.
    :raises IdempotencyConflict: a key was used (before, or earlier in ``items``) for a different
        body; nothing is written.
    :raises NotFound: a member does not exist; nothing is written.
    """
    for item in items:
        _points(item.points), _reason(item.reason), check_key(item.key), _aware(item.expires_at, "expires_at")
    digests = [_digest(item) for item in items]
    first_of: dict[str, int] = {}
    for i, item in enumerate(items):
        j = first_of.setdefault(item.key, i)
        if digests[j] != digests[i]:
            raise IdempotencyConflict(f"idempotency key {item.key!r} appears twice with different bodies", key=item.key)

    def work(conn: sa.Connection) -> list[Posted]:
        when = now or utcnow()
        known: dict[str, Any] = {}
        keys = list(first_of)
        for start in range(0, len(keys), 500):
            for row in conn.execute(sa.select(entries).where(entries.c.idempotency_key.in_(keys[start:start + 500]))):
                if row.body_hash != digests[first_of[row.idempotency_key]]:
                    raise IdempotencyConflict(f"idempotency key {row.idempotency_key!r} was used for a different "
                                              f"request (entry {row.entry_id})", key=row.idempotency_key,
                                              entry_id=row.entry_id)
                known[row.idempotency_key] = row
        fresh = [i for key, i in first_of.items() if key not in known]
        locked = lock_members(conn, {items[i].member_id for i in fresh} | {r.member_id for r in known.values()})
        live = {m: row if row.merged_into is None else resolve_member(conn, m) for m, row in locked.items()}
        rows = conn.execute(entries.insert().returning(*entries.c, sort_by_parameter_order=True), [
            {"idempotency_key": items[i].key, "member_id": live[items[i].member_id].member_id, "kind": str(LedgerKind.EARN),
             "points": items[i].points, "reason": items[i].reason.strip(), "reverses_entry_id": None,
             "expires_at": items[i].expires_at, "body_hash": digests[i], "created_at": when} for i in fresh
        ]).all() if fresh else []
        if rows:
            conn.execute(lots.insert(), [
                {"member_id": row.member_id, "source_entry_id": row.entry_id, "origin_entry_id": row.entry_id,
                 "fan_id": items[i].fan_id, "points": row.points, "remaining": row.points, "earned": row.points,
                 "earned_at": when, "expires_at": row.expires_at} for i, row in zip(fresh, rows, strict=True)])
        added: dict[int, int] = defaultdict(int)
        for row in rows:
            added[row.member_id] += row.points
        state = {r.member_id: (r.balance, r.lifetime_points) for r in live.values()}
        changed: dict[int, tuple[int, int]] = {}
        updates = []
        for member_id, points in added.items():
            balance, lifetime = state[member_id][0] + points, state[member_id][1] + points
            level = policy.level_for(lifetime)
            state[member_id] = (balance, lifetime)
            changed[member_id] = (balance, level)
            updates.append({"m": member_id, "b": balance, "l": lifetime, "v": level, "t": when})
        if updates:
            conn.execute(sa.text("UPDATE members SET balance = :b, lifetime_points = :l, level = :v, updated_at = :t "
                                 "WHERE member_id = :m"), updates)
            enqueue_many(conn, changed)
        made = {row.idempotency_key: row for row in rows}
        out = []
        for item in items:
            row = made.get(item.key)
            if row is not None:
                out.append(Posted(entry_model(row), True, row.member_id, state[row.member_id][0]))
                made.pop(item.key)
                known[item.key] = row
                continue
            row = known[item.key]
            owner = live[row.member_id].member_id if row.member_id in live else row.member_id
            out.append(Posted(entry_model(row), False, owner, state.get(owner, (0, 0))[0]))
        return out

    posted = run_write(engine, work)
    announce(host, posted)
    return posted
