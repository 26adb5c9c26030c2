"""Posting a page of earned points in one transaction, for the sync engine and bulk imports.

The rules are :func:`hub.ledger.post`'s, item by item; only the work is set-based: one look-up of
the page's keys, one locking read of its members (ascending id), one multi-row insert each for
entries and lots, one balance update per member and one card update queued per member.  The
statements are driver-level (:mod:`hub.storage.bulk`): at this volume SQLAlchemy's per-row
parameter processing costs more than the database does.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from hub.errors import IdempotencyConflict, NotFound
from hub.storage.bulk import insert_rows, select_in, time_binder, update_rows
from hub.ledger.cards import LedgerPolicy, enqueue_many
from hub.ledger.lots import Posted, body_hash, check_key, entries, entry_model, lots, make_entry, members
from hub.ledger.postings import DEFAULT_POLICY, _aware, _points, _reason, announce
from hub.ledger.tx import resolve_member, run_write
from schemas import LedgerEntry, LedgerKind
from schemas.tables import utcnow

__all__ = ["Earn", "post_many"]

ENTRY_COLUMNS = ("idempotency_key", "member_id", "kind", "points", "reason", "reverses_entry_id", "expires_at",
                 "body_hash", "created_at")
LOT_COLUMNS = ("member_id", "source_entry_id", "origin_entry_id", "fan_id", "points", "remaining", "earned",
               "earned_at", "expires_at")
MEMBER_STATE = ("member_id", "merged_into", "balance", "lifetime_points")


@dataclass(frozen=True)
class Earn:
    """One earned-points posting: the arguments of :func:`hub.ledger.post`."""

    member_id: int
    points: int
    reason: str
    key: str
    expires_at: datetime | None = None
    fan_id: int | None = None


def _digest(item: Earn, quoted: dict[str, str]) -> str:
    """:func:`body_hash` of the body :func:`hub.ledger.postings.earn_in` hashes, written directly
    when every field is of the plain type (``quoted`` caches JSON-quoted reasons)."""
    reason = item.reason.strip()
    if type(item.member_id) is int and type(item.points) is int and type(item.fan_id) in (int, type(None)):
        text = quoted.get(reason)
        if text is None:
            text = quoted[reason] = json.dumps(reason, ensure_ascii=False)
        expires = json.dumps(item.expires_at.isoformat()) if item.expires_at else "null"
        fan = "null" if item.fan_id is None else str(item.fan_id)
        body = (f'{{"expires_at":{expires},"fan":{fan},"member":{item.member_id},"op":"earn",'
                f'"points":{item.points},"reason":{text}}}')
        return hashlib.sha256(body.encode()).hexdigest()
    return body_hash({"op": "earn", "member": item.member_id, "points": item.points, "reason": reason,
                      "expires_at": item.expires_at.isoformat() if item.expires_at else None, "fan": item.fan_id})


def _check(items: list[Earn]) -> None:
    for item in items:
        _points(item.points), _reason(item.reason), check_key(item.key), _aware(item.expires_at, "expires_at")
        if type(item.member_id) is not int or item.member_id <= 0:
            raise NotFound(f"no member {item.member_id!r}")


def post_many(
    engine: sa.Engine, items: list[Earn], *, now: datetime | None = None, policy: LedgerPolicy = DEFAULT_POLICY,
    host: Any = None,
) -> list[Posted]:
    """Post every item in one write transaction; returns one :class:`Posted` per item, in order.

    An item whose key was used before (or earlier in ``items``) with the same body is a replay:
    its :class:`Posted` carries the first entry and ``created=False``.  The balance of each
    :class:`Posted` is its member's balance after the whole page.

    :raises InvalidPosting: an item is malformed; nothing is written.
    :raises IdempotencyConflict: a key was used (before, or earlier in ``items``) for a different
        body; nothing is written.
    :raises NotFound: a member does not exist; nothing is written.
    """
    _check(items)
    _aware(now, "now")
    quoted: dict[str, str] = {}
    digests = [_digest(item, quoted) for item in items]
    first_of: dict[str, int] = {}
    for i, item in enumerate(items):
        j = first_of.setdefault(item.key, i)
        if digests[j] != digests[i]:
            raise IdempotencyConflict(f"idempotency key {item.key!r} appears twice with different bodies", key=item.key)

    def work(conn: sa.Connection) -> list[Posted]:
        when = (now or utcnow()).astimezone(UTC)
        known: dict[str, tuple[int, int]] = {}
        for entry_id, key, member_id, digest in select_in(
                conn, entries, ("entry_id", "idempotency_key", "member_id", "body_hash"), "idempotency_key", first_of):
            if digest != digests[first_of[key]]:
                raise IdempotencyConflict(f"idempotency key {key!r} was used for a different request "
                                          f"(entry {entry_id})", key=key, entry_id=entry_id)
            known[key] = (entry_id, member_id)
        fresh = [i for key, i in first_of.items() if key not in known]
        live, state = _lock(conn, {items[i].member_id for i in fresh}, {m for _, m in known.values()})
        made = _insert(conn, [items[i] for i in fresh], [digests[i] for i in fresh], live, when)
        added: dict[int, int] = defaultdict(int)
        for entry in made.values():
            added[entry.member_id] += entry.points
        changed: dict[int, tuple[int, int]] = {}
        updates = []
        stamp = time_binder(conn, entries.c.created_at)(when)
        for member_id, points in added.items():
            balance, lifetime = state[member_id][0] + points, state[member_id][1] + points
            level = policy.level_for(lifetime)
            state[member_id] = (balance, lifetime)
            changed[member_id] = (balance, level)
            updates.append((balance, lifetime, level, stamp, member_id))
        update_rows(conn, members, ("balance", "lifetime_points", "level", "updated_at"), "member_id", updates)
        enqueue_many(conn, changed)
        earlier = _entries(conn, [entry_id for entry_id, _ in known.values()])
        out = []
        for item in items:
            entry = made.pop(item.key, None)
            if entry is not None:
                out.append(Posted(entry, True, entry.member_id, state[entry.member_id][0]))
                earlier[item.key] = entry
                continue
            entry = earlier[item.key]
            owner = live.get(entry.member_id, entry.member_id)
            out.append(Posted(entry, False, owner, state.get(owner, (0, 0))[0]))
        return out

    posted = run_write(engine, work)
    announce(host, posted)
    return posted


def _lock(conn: sa.Connection, wanted: set[int], owners: set[int]) -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
    """Lock the members in ascending id order; return each one's live member and the live
    members' ``(balance, lifetime_points)``.

    :raises NotFound: a member in ``wanted`` does not exist.
    """
    rows = select_in(conn, members, MEMBER_STATE, "member_id", sorted(wanted | owners), order_by="member_id",
                     for_update=True)
    missing = sorted(wanted - {row[0] for row in rows})
    if missing:
        raise NotFound(f"no member {missing[0]}")
    live: dict[int, int] = {}
    state: dict[int, tuple[int, int]] = {}
    for member_id, merged_into, balance, lifetime in rows:
        if merged_into is None:
            live[member_id], state[member_id] = member_id, (balance, lifetime)
    for member_id, merged_into, _, _ in rows:
        if merged_into is not None:
            survivor = resolve_member(conn, member_id)
            live[member_id] = survivor.member_id
            state.setdefault(survivor.member_id, (survivor.balance, survivor.lifetime_points))
    return live, state


def _insert(
    conn: sa.Connection, items: list[Earn], digests: list[str], live: dict[int, int], when: datetime,
) -> dict[str, LedgerEntry]:
    """Insert the entries and lots of new postings; return the entries by key."""
    if not items:
        return {}
    stamp = time_binder(conn, entries.c.created_at)
    created = stamp(when)
    ids = dict((key, entry_id) for entry_id, key in insert_rows(
        conn, entries, ENTRY_COLUMNS,
        [(item.key, live[item.member_id], str(LedgerKind.EARN), item.points, item.reason.strip(), None,
          stamp(item.expires_at), digest, created) for item, digest in zip(items, digests, strict=True)],
        returning=("entry_id", "idempotency_key")))
    insert_rows(conn, lots, LOT_COLUMNS, [
        (live[item.member_id], ids[item.key], ids[item.key], item.fan_id, item.points, item.points, item.points,
         created, stamp(item.expires_at)) for item in items])
    return {item.key: make_entry(ids[item.key], item.key, live[item.member_id], LedgerKind.EARN, item.points,
                                 item.reason.strip(), None, item.expires_at.astimezone(UTC) if item.expires_at else None,
                                 when) for item in items}


def _entries(conn: sa.Connection, entry_ids: list[int]) -> dict[str, LedgerEntry]:
    """Earlier entries by key, read through Core so their times come back typed."""
    out: dict[str, LedgerEntry] = {}
    for start in range(0, len(entry_ids), 5_000):
        for row in conn.execute(sa.select(entries).where(entries.c.entry_id.in_(entry_ids[start:start + 5_000]))):
            out[row.idempotency_key] = entry_model(row)
    return out
