"""Posting to the ledger: earn, redeem, reverse and expire.

Each operation is one write transaction: check the request, return the first entry if the
idempotency key was used before (or refuse a different body under it), lock the live member,
append the entry, move lots and update the balance, queue card updates, commit.  A refusal raises
before the commit, so nothing of it is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hub.errors import AlreadyReversed, InvalidPosting, NotFound, NotReversible
from hub.events import PointsPosted
from hub.ledger.cards import LedgerPolicy
from hub.ledger.lots import (
    Posted,
    MAX_POINTS,
    apply_change,
    body_hash,
    check_key,
    consume,
    entry_model,
    entries,
    find_replay,
    insert_entry,
    lots,
    open_lot,
    uses,
)
from hub.ledger.tx import resolve_member, run_write
from schemas import LedgerKind
from schemas.tables import utcnow

__all__ = ["announce", "earn_in", "expire", "post", "redeem", "reverse"]

DEFAULT_POLICY = LedgerPolicy()
NOT_REVERSIBLE = {LedgerKind.REVERSAL, LedgerKind.TRANSFER_IN, LedgerKind.TRANSFER_OUT}


def _points(points: object) -> int:
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise InvalidPosting(f"points must be a positive whole number, got {str(points)[:40]}")
    if points > MAX_POINTS:
        raise InvalidPosting(f"points must be at most {MAX_POINTS}, the largest balance the ledger holds")
    return points


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidPosting("a reason is required")
    return reason.strip()


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise InvalidPosting(f"{name} must carry a time zone")
    return value


def announce(host: Any, posted: list[Posted]) -> None:
    """Tell ``track_event`` implementations about entries this call wrote (after the commit)."""
    if host is None:
        return
    for p in posted:
        if p.created and p.entry.entry_id is not None:
            host.hook.track_event(event=PointsPosted(
                member_id=p.member_id, entry_id=p.entry.entry_id, points=p.entry.points, balance=p.balance
            ))


def earn_in(
    conn: sa.Connection,
    *,
    member_id: int,
    points: int,
    reason: str,
    key: str,
    expires_at: datetime | None = None,
    fan_id: int | None = None,
    now: datetime | None = None,
    policy: LedgerPolicy = DEFAULT_POLICY,
) -> Posted:
    """Credit earned points inside an open write transaction (see :func:`post`)."""
    points, reason, key = _points(points), _reason(reason), check_key(key)
    _aware(expires_at, "expires_at")
    digest = body_hash({"op": "earn", "member": member_id, "points": points, "reason": reason,
                        "expires_at": expires_at.isoformat() if expires_at else None, "fan": fan_id})
    replay = find_replay(conn, key, digest)
    if replay is not None:
        return replay
    member = resolve_member(conn, member_id)
    now = now or utcnow()
    row = insert_entry(conn, key=key, member_id=member.member_id, kind=LedgerKind.EARN, points=points,
                       reason=reason, digest=digest, expires_at=expires_at, now=now)
    open_lot(conn, member_id=member.member_id, entry_id=row.entry_id, origin_entry_id=row.entry_id,
             points=points, earned=points, earned_at=now, expires_at=expires_at, fan_id=fan_id)
    balance, _, _ = apply_change(conn, member, points=points, lifetime=points, policy=policy)
    return Posted(entry_model(row), True, member.member_id, balance)


def post(
    engine: sa.Engine,
    *,
    member_id: int,
    points: int,
    reason: str,
    key: str,
    expires_at: datetime | None = None,
    fan_id: int | None = None,
    now: datetime | None = None,
    policy: LedgerPolicy = DEFAULT_POLICY,
    host: Any = None,
) -> Posted:
    """Credit ``points`` earned by ``member_id`` (a merged member's points go to its survivor).

    :param engine: the database.
    :param member_id: the member; a merged one is followed to its survivor.
    :param points: a positive whole number.
    :param reason: why, for people reading the history.
    :param key: the idempotency key: a replay returns the first entry and writes nothing.
    :param expires_at: when these points expire, if they do.
    :param fan_id: the fan whose activity earned them (a split moves them with the fan).
    :param now: the posting time (default: now).
    :param policy: levels and other rules.
    :param host: the plugin host, to announce :class:`hub.events.PointsPosted`.
    :raises InvalidPosting: bad points, reason, key or time.
    :raises NotFound: no such member.
    :raises IdempotencyConflict: the key was used for a different request.
    """
    posted = run_write(engine, lambda conn: earn_in(
        conn, member_id=member_id, points=points, reason=reason, key=key, expires_at=expires_at,
        fan_id=fan_id, now=now, policy=policy,
    ))
    announce(host, [posted])
    return posted


def redeem(
    engine: sa.Engine,
    *,
    member_id: int,
    points: int,
    key: str,
    reason: str = "redeemed",
    now: datetime | None = None,
    policy: LedgerPolicy = DEFAULT_POLICY,
    host: Any = None,
) -> Posted:
    """Spend ``points`` of ``member_id``, taking the oldest unexpired lots first.

    Parameters as for :func:`post`.

    :raises Overdraw: the member has fewer unexpired points; nothing is written.
    """
    points, reason, key = _points(points), _reason(reason), check_key(key)
    _aware(now, "now")
    digest = body_hash({"op": "redeem", "member": member_id, "points": points, "reason": reason})

    def work(conn: sa.Connection) -> Posted:
        replay = find_replay(conn, key, digest)
        if replay is not None:
            return replay
        member = resolve_member(conn, member_id)
        when = now or utcnow()
        row = insert_entry(conn, key=key, member_id=member.member_id, kind=LedgerKind.REDEEM, points=-points,
                           reason=reason, digest=digest, now=when)
        consume(conn, member_id=member.member_id, points=points, entry_id=row.entry_id, usable_at=when)
        balance, _, _ = apply_change(conn, member, points=-points, policy=policy)
        return Posted(entry_model(row), True, member.member_id, balance)

    posted = run_write(engine, work)
    announce(host, [posted])
    return posted


def reverse_in(
    conn: sa.Connection, entry_id: int, *, key: str, reason: str | None = None, now: datetime | None = None,
    policy: LedgerPolicy = DEFAULT_POLICY,
) -> Posted:
    """Reverse an entry inside an open write transaction (see :func:`reverse`)."""
    key = check_key(key)
    digest = body_hash({"op": "reverse", "entry": entry_id, "reason": reason})
    replay = find_replay(conn, key, digest)
    if replay is not None:
        return replay
    original = conn.execute(sa.select(entries).where(entries.c.entry_id == entry_id)).first()
    if original is None:
        raise NotFound(f"no ledger entry {entry_id}")
    kind = LedgerKind(original.kind)
    if kind in NOT_REVERSIBLE:
        raise NotReversible(f"entry {entry_id} is a {kind} entry and cannot be reversed", entry_id=entry_id)
    member = resolve_member(conn, original.member_id)
    done = conn.execute(sa.select(entries.c.entry_id).where(entries.c.reverses_entry_id == entry_id)).first()
    if done is not None:
        raise AlreadyReversed(f"entry {entry_id} was reversed by entry {done.entry_id}", entry_id=entry_id)
    when = now or utcnow()
    text = (reason or "").strip() or f"reversal of entry {entry_id}"
    row = insert_entry(conn, key=key, member_id=member.member_id, kind=LedgerKind.REVERSAL,
                       points=-original.points, reason=text, digest=digest, reverses=entry_id, now=when)
    lifetime = 0
    if original.points > 0:
        consume(conn, member_id=member.member_id, points=original.points, entry_id=row.entry_id,
                prefer_origin=entry_id)
        if kind is LedgerKind.EARN:
            lifetime = -original.points
            conn.execute(lots.update().where(lots.c.source_entry_id == entry_id,
                                             lots.c.member_id == member.member_id).values(earned=0))
    else:
        used = conn.execute(
            sa.select(uses.c.points, lots.c.origin_entry_id, lots.c.fan_id, lots.c.earned_at, lots.c.expires_at)
            .join(lots, lots.c.lot_id == uses.c.lot_id)
            .where(uses.c.entry_id == entry_id)
            .order_by(uses.c.id)
        ).all()
        for use in used:
            open_lot(conn, member_id=member.member_id, entry_id=row.entry_id, origin_entry_id=use.origin_entry_id,
                     points=use.points, earned=0, earned_at=use.earned_at, expires_at=use.expires_at,
                     fan_id=use.fan_id)
    balance, _, _ = apply_change(conn, member, points=-original.points, lifetime=lifetime, policy=policy)
    return Posted(entry_model(row), True, member.member_id, balance)


def reverse(
    engine: sa.Engine,
    entry_id: int,
    *,
    key: str,
    reason: str | None = None,
    now: datetime | None = None,
    policy: LedgerPolicy = DEFAULT_POLICY,
    host: Any = None,
) -> Posted:
    """Append the reversal of entry ``entry_id`` to its (live) member.

    Reversing earned points takes back that entry's lot first, then the oldest lots, and lowers
    the lifetime points; reversing a redemption or an expiry restores the lots it consumed, with
    their original expiry.

    :param entry_id: the entry to reverse: an earn, a redemption or an expiry.
    :param key: the idempotency key of the reversal.
    :raises NotFound: no such entry.
    :raises NotReversible: the entry is a reversal or a transfer.
    :raises AlreadyReversed: the entry was reversed before (under another key).
    :raises Overdraw: the member no longer holds the points to take back.
    """
    posted = run_write(engine, lambda conn: reverse_in(conn, entry_id, key=key, reason=reason, now=now,
                                                        policy=policy))
    announce(host, [posted])
    return posted


def expire(
    engine: sa.Engine, *, as_of: datetime | None = None, policy: LedgerPolicy = DEFAULT_POLICY, host: Any = None
) -> list[Posted]:
    """Write one ``expiry`` entry for every lot with points left whose expiry is at or before
    ``as_of``.  The key of each is ``expiry:lot:<lot_id>``, so a lot expires exactly once however
    often (and however concurrently) this runs.

    :param as_of: the cut-off (default: now).
    :return: the entries written by this call.
    """
    as_of = _aware(as_of, "as_of") or utcnow()
    due = conn_scalars(engine, sa.select(lots.c.member_id).where(
        lots.c.remaining > 0, lots.c.expires_at.is_not(None), lots.c.expires_at <= as_of).distinct())
    written: list[Posted] = []
    for member_id in sorted(due):
        written.extend(run_write(engine, lambda conn, m=member_id: _expire_member(conn, m, as_of, policy)))
    announce(host, written)
    return written


def conn_scalars(engine: sa.Engine, query: sa.Select[Any]) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def _expire_member(conn: sa.Connection, member_id: int, as_of: datetime, policy: LedgerPolicy) -> list[Posted]:
    member = resolve_member(conn, member_id)
    due = conn.execute(
        sa.select(lots.c.lot_id, lots.c.remaining, lots.c.expires_at)
        .where(lots.c.member_id == member.member_id, lots.c.remaining > 0,
               lots.c.expires_at.is_not(None), lots.c.expires_at <= as_of)
        .order_by(lots.c.earned_at, lots.c.lot_id)
    ).all()
    written = []
    for lot in due:
        key = f"expiry:lot:{lot.lot_id}"
        row = insert_entry(conn, key=key, member_id=member.member_id, kind=LedgerKind.EXPIRY,
                           points=-lot.remaining, reason=f"expired at {lot.expires_at.isoformat()}",
                           digest=body_hash({"op": "expire", "lot": lot.lot_id}))
        conn.execute(lots.update().where(lots.c.lot_id == lot.lot_id).values(remaining=0))
        conn.execute(uses.insert().values(entry_id=row.entry_id, lot_id=lot.lot_id, points=lot.remaining))
        balance, _, _ = apply_change(conn, member, points=-lot.remaining, policy=policy)
        written.append(Posted(entry_model(row), True, member.member_id, balance))
    return written
