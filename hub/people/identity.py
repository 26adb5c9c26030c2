"""Identity stitching: every fan belongs to exactly one member.

Fans that share an identity key are one person; what a fan's keys are (phone hash, union id by
platform family, ``fan.identity_keys``, hook keys) and which values never are keys is
:mod:`hub.people.keys`'s.

Guard rails
    Blank, ``null``, ``-1``, all-zero and similar placeholder values are never keys.  A key value
    held by more than ``limit`` fans (a store's front-desk phone) is *blocked*: recorded in
    ``blocked_identity_keys`` and reported, never used to merge.

Two ways in
    :func:`stitch` is incremental: it files a few fans' keys and joins each fan to the member its
    keys lead to, merging members a new key connects (the smallest ``member_id`` survives; the
    merge is audited with the rule ``stitch:<kind>``).  :func:`stitch_all` stitches every fan
    without a member in one pass (union–find over the keys), for the first load of a platform.
    Both give the grouping "connected by keys under the limit", whatever order the fans arrived
    in — except that :func:`stitch` cannot take back a merge made before a key crossed the limit;
    it reports the key instead.  Fans split off by hand are never merged again automatically.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from sqlalchemy.exc import IntegrityError

from hub.errors import StorageError
from hub.storage import bulk
from hub.storage.database import database_reason
from hub.ledger.tx import lock_members, run_write
from hub.events import MembersMerged
from hub.people import first_load
from hub.people.keys import Key, fan_keys, hook_keys, usable
from hub.people.members import create_member, merge_in
from schemas.tables import BlockedIdentityKeyRow, FanIdentityKeyRow, FanRow, MemberChangeRow, MemberRow, utcnow

__all__ = ["DEFAULT_KEY_LIMIT", "StitchReport", "fan_keys", "stitch", "stitch_all", "usable"]

DEFAULT_KEY_LIMIT = 20
STITCH_LOCK = 0x5_1705_71C4
"""PostgreSQL advisory lock a bulk stitching pass holds while it writes (one pass at a time)."""

fans = FanRow.__table__
keys_t = FanIdentityKeyRow.__table__
members_t = MemberRow.__table__
MEMBER_COLUMNS = ("member_id", "level", "lifetime_points", "balance", "inserted_at", "updated_at")
blocked_t = BlockedIdentityKeyRow.__table__
changes = MemberChangeRow.__table__

@dataclass
class StitchReport:
    """What a stitching run did."""

    fans: int = 0
    members_created: int = 0
    merges: int = 0
    blocked: list[dict[str, Any]] = field(default_factory=list)
    merged: list[tuple[int, int, str]] = field(default_factory=list)
    """``(survivor, merged, reason)`` of each merge, announced as :class:`hub.events.MembersMerged`."""


def _pinned_fans(conn: sa.Connection) -> set[int]:
    """Fans split off by hand (in splits not undone): stitching leaves their members alone."""
    undone = set(conn.execute(sa.select(changes.c.undoes_change_id).where(changes.c.undoes_change_id.is_not(None))).scalars())
    pinned: set[int] = set()
    for change_id, fan_ids in conn.execute(sa.select(changes.c.id, changes.c.fan_ids).where(changes.c.action == "split")):
        if change_id not in undone:
            pinned.update(fan_ids)
    return pinned


def _live(conn: sa.Connection, member_id: int) -> int:
    for _ in range(64):
        row = conn.execute(sa.select(sa.column("merged_into")).select_from(sa.table("members")).where(
            sa.column("member_id") == member_id)).one()
        if row.merged_into is None:
            return member_id
        member_id = row.merged_into
    return member_id  # pragma: no cover


def _file_keys(conn: sa.Connection, fan_id: int, keys: set[Key]) -> None:
    have = {(r.kind, r.value) for r in conn.execute(sa.select(keys_t.c.kind, keys_t.c.value).where(keys_t.c.fan_id == fan_id))}
    for kind, value in have - keys:
        conn.execute(keys_t.delete().where(keys_t.c.fan_id == fan_id, keys_t.c.kind == kind, keys_t.c.value == value))
    if keys - have:
        conn.execute(keys_t.insert(), [{"fan_id": fan_id, "kind": k, "value": v} for k, v in sorted(keys - have)])


def _block(conn: sa.Connection, key: Key, count: int, report: StitchReport) -> None:
    conn.execute(blocked_t.insert().values(kind=key[0], value=key[1], fan_count=count, blocked_at=utcnow()))
    report.blocked.append({"kind": key[0], "fan_count": count})


def _stitch_one(conn: sa.Connection, row: Any, host: Any, limit: int, pinned: set[int], report: StitchReport) -> None:
    keys = fan_keys(row, hook_keys(host, row))
    _file_keys(conn, row.id, keys)
    blocked = {(b.kind, b.value) for b in conn.execute(sa.select(blocked_t.c.kind, blocked_t.c.value).where(
        sa.tuple_(blocked_t.c.kind, blocked_t.c.value).in_(sorted(keys))))} if keys else set()
    related: dict[int, str] = {}
    for key in sorted(keys - blocked):
        holders = conn.execute(sa.select(keys_t.c.fan_id, fans.c.member_id).join(fans, fans.c.id == keys_t.c.fan_id)
                               .where(keys_t.c.kind == key[0], keys_t.c.value == key[1])).all()
        if len(holders) > limit:
            _block(conn, key, len(holders), report)
            continue
        for holder in holders:
            if holder.fan_id != row.id and holder.member_id is not None and holder.fan_id not in pinned:
                related.setdefault(_live(conn, holder.member_id), key[0])
    own = _live(conn, row.member_id) if row.member_id is not None else None
    if row.id in pinned:
        related = {}
    candidates = set(related) | ({own} if own is not None else set())
    if not candidates:
        member_id = create_member(conn)
        report.members_created += 1
    else:
        member_id = min(candidates)
        lock_members(conn, candidates)
        for other in sorted(candidates - {member_id}):
            kind = related.get(other) or related.get(member_id) or "key"
            change = merge_in(conn, member_id, other, reason=f"fans share a {kind} key", actor="stitch",
                              rule=f"stitch:{kind}")
            report.merges += 1
            report.merged.append((member_id, other, change.reason))
    if row.member_id != member_id:
        conn.execute(fans.update().where(fans.c.id == row.id).values(member_id=member_id, updated_at=utcnow()))


def stitch(engine: sa.Engine, fan_ids: Iterable[int], *, host: Any = None, limit: int = DEFAULT_KEY_LIMIT) -> StitchReport:
    """Stitch the given fans incrementally, one write transaction per fan.

    :param fan_ids: ids of ``fans`` rows that are new or whose keys changed.
    :param host: the plugin host, for the ``identity_keys`` hook.
    :param limit: the most fans one key value may link before it is blocked.
    """
    report = StitchReport()
    for fan_id in fan_ids:
        def work(conn: sa.Connection, fan_id: int = fan_id) -> StitchReport:
            local = StitchReport()
            if conn.dialect.name == "postgresql":  # waits for a bulk pass writing (it holds the lock alone)
                conn.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": STITCH_LOCK})
            row = conn.execute(sa.select(fans).where(fans.c.id == fan_id)).one()
            _stitch_one(conn, row, host, limit, _pinned_fans(conn), local)
            return local
        one = _write(engine, work)
        report.fans += 1
        report.members_created += one.members_created
        report.merges += one.merges
        report.blocked.extend(one.blocked)
        report.merged.extend(one.merged)
        if host is not None:  # after the commit, as every track_event
            for survivor, merged, reason in one.merged:
                host.emit(MembersMerged(survivor=survivor, merged=merged, reason=reason))
    return report


def _rows(engine: sa.Engine) -> Iterator[Any]:
    """The fans without a member, in id order; on PostgreSQL each with ``version``, the row
    version read (``xmin``: any later write of the row changes it)."""
    columns = [fans.c.id, fans.c.platform, fans.c.account_id, fans.c.platform_uid, fans.c.union_id,
               fans.c.phone_hash, fans.c.identity_keys]
    if engine.dialect.name == "postgresql":
        columns.append(sa.literal_column("fans.xmin::text::bigint").label("version"))
    last = 0
    while True:
        with engine.connect() as conn:
            batch = conn.execute(sa.select(*columns).where(fans.c.member_id.is_(None), fans.c.id > last)
                                 .order_by(fans.c.id).limit(50_000)).all()
        if not batch:
            return
        yield from batch
        last = batch[-1].id


def _find(parent: list[int], i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        parent[i], i = root, parent[i]
    return root


def _existing_keys(conn: sa.Connection, keys: list[Key]) -> set[int]:
    """Indexes into ``keys`` of those already filed for some stitched fan."""
    if conn.execute(sa.select(keys_t.c.id).limit(1)).first() is None:
        return set()
    position = {k: i for i, k in enumerate(keys)}
    found: set[int] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        for kind, value in conn.execute(sa.select(keys_t.c.kind, keys_t.c.value).where(
                sa.tuple_(keys_t.c.kind, keys_t.c.value).in_(chunk))):
            found.add(position[(kind, value)])
    return found


def _chunks(rows: Iterable[tuple[Any, ...]], size: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


class _Overtaken(Exception):
    """Another writer stitched between this pass's read and its write: its plan is stale."""


def _marker(conn: sa.Connection) -> tuple[int, int, int]:
    """What any stitching changes: the identity keys filed (count, last id) and the last member id."""
    keys = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(keys_t.c.id), 0))
                        .select_from(keys_t)).one()
    last_member = conn.execute(sa.select(sa.func.coalesce(sa.func.max(members_t.c.member_id), 0))).scalar_one()
    return int(keys[0]), int(keys[1]), int(last_member)


def _write(engine: sa.Engine, work: Any) -> Any:
    """:func:`run_write`, whose last lost race is a one-line error without the statement's parameters."""
    try:
        return run_write(engine, work)
    except IntegrityError as exc:
        raise StorageError(f"stitching kept losing a race to another writer: {database_reason(exc)}") from None


def stitch_all(engine: sa.Engine, *, host: Any = None, limit: int = DEFAULT_KEY_LIMIT) -> StitchReport:
    """Stitch every fan that has no member yet, in one pass (union–find over the keys).

    Memory grows with the number of distinct keys, not with anything else.  Fans whose keys
    reach an already stitched fan are handed to :func:`stitch`, so that they join its member.
    Members are numbered in the order of their smallest fan id, so the same fans always give the
    same members.

    Safe beside another writer (two ``siyu sync`` at once): the pass is planned from a read and
    written in one write transaction that first checks nothing was stitched since the read; if
    something was, the pass is planned again (:data:`REPLANS` times), then the fans left are
    stitched one by one (:func:`stitch`), each in its own transaction.

    On PostgreSQL a pass that writes most of ``fans`` (a first load) rebuilds that table's
    indexes rather than writing through them, holding it exclusively while it writes: readers
    of ``fans`` and ``fan_identity_keys`` wait for the pass (:mod:`hub.people.first_load`).

    The fans it stitches leave with ``needs_stitch`` cleared, except one written after the pass
    read it (a callback's new key), which keeps its flag for :func:`stitch`.  On PostgreSQL the
    pass's own ``UPDATE`` clears the flags, where a row's version is still the one it read (no
    second write of every fan on a first load); on SQLite the flags of the fans without a member
    are cleared before the pass reads them, and a write after that raises a fan's flag again.
    """
    postgres = engine.dialect.name == "postgresql"
    if not postgres:
        _clear_flags(engine)
    for _ in range(REPLANS):
        try:
            return _stitch_pass(engine, host, limit)
        except _Overtaken:
            continue
    if postgres:
        _clear_flags(engine)
    left = [row.id for row in _rows(engine)]
    return stitch(engine, left, host=host, limit=limit)


def _clear_flags(engine: sa.Engine) -> None:
    """Clear ``needs_stitch`` of the fans without a member: a pass that reads them next stitches them."""
    with engine.begin() as conn:
        conn.execute(fans.update().where(fans.c.member_id.is_(None), fans.c.needs_stitch.is_(True))
                     .values(needs_stitch=False))


REPLANS = 3
"""How many times a bulk pass overtaken by another writer is planned again."""


def _stitch_pass(engine: sa.Engine, host: Any, limit: int) -> StitchReport:
    report = StitchReport()
    with engine.connect() as conn:
        marker = _marker(conn)  # before the read: anything written after it shows
    key_index: dict[Key, int] = {}
    counts = array("q")
    fan_ids = array("q")
    versions = array("q")  # on PostgreSQL: each fan's row version as read
    versioned = engine.dialect.name == "postgresql"
    flat = array("q")
    offsets = array("q", [0])
    for row in _rows(engine):
        fan_ids.append(row.id)
        if versioned:
            versions.append(row.version)
        for key in fan_keys(row, hook_keys(host, row)):
            index = key_index.setdefault(key, len(counts))
            if index == len(counts):
                counts.append(0)
            counts[index] += 1
            flat.append(index)
        offsets.append(len(flat))
    keys = list(key_index)
    del key_index
    with engine.connect() as conn:
        existing = _existing_keys(conn, keys)
    parent = list(range(len(fan_ids)))
    first = array("q", [-1]) * len(keys)
    late: set[int] = set()
    for i in range(len(fan_ids)):
        for index in flat[offsets[i]:offsets[i + 1]]:
            if counts[index] > limit:
                continue
            if index in existing:
                late.add(i)
            elif first[index] < 0:
                first[index] = i
            else:
                a, b = _find(parent, i), _find(parent, first[index])
                if a != b:
                    parent[max(a, b)] = min(a, b)
    roots = array("q", (_find(parent, i) for i in range(len(fan_ids))))  # the group of each fan
    late_roots = {roots[i] for i in late}
    groups: dict[int, int] = {}
    assign: list[tuple[int, int]] = []
    handed_over: list[int] = []

    def work(conn: sa.Connection) -> None:
        groups.clear(), assign.clear(), handed_over.clear()
        if conn.dialect.name == "postgresql":  # SQLite's write transaction already excludes other writers
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": STITCH_LOCK})
        if _marker(conn) != marker:
            raise _Overtaken
        start = int(conn.execute(sa.text("SELECT COALESCE(MAX(member_id), 0) FROM members")).scalar_one()) + 1
        for i, fan_id in enumerate(fan_ids):
            root = roots[i]
            if root in late_roots:
                handed_over.append(fan_id)
                continue
            if root not in groups:
                groups[root] = start + len(groups)
            assign.append((groups[root], fan_id))
        now = bulk.time_binder(conn, fans.c.updated_at)(utcnow())  # as UTCDateTimeType stores it (naive UTC on SQLite)
        new_members = ((m, 0, 0, 0, now, now) for m in groups.values())
        filed = ((fan_ids[i], *keys[index]) for i in range(len(fan_ids))  # generated as written
                 if roots[i] not in late_roots for index in flat[offsets[i]:offsets[i + 1]])
        if conn.dialect.name == "postgresql":  # COPY and one UPDATE … FROM (hub.people.first_load)
            late_keys = sum(offsets[i + 1] - offsets[i] for i in range(len(fan_ids)) if roots[i] in late_roots) \
                if late_roots else 0
            # every fan read, with the member it joins (None: handed over) and its version as read
            staged = ((None if roots[i] in late_roots else groups[roots[i]], fan_ids[i], versions[i])
                      for i in range(len(fan_ids)))
            first_load.write_pass(conn, members=new_members, member_columns=MEMBER_COLUMNS, fans=staged,
                                  fan_count=len(fan_ids), keys=filed, key_count=len(flat) - late_keys,
                                  keys_before=marker[0], now=now)
        else:  # set-based statements (hub.storage.bulk): multi-row on SQLite
            for chunk in _chunks(new_members):
                bulk.insert_rows(conn, members_t, MEMBER_COLUMNS, chunk)
            for chunk in _chunks((m, now, f) for m, f in assign):
                bulk.update_rows(conn, fans, ("member_id", "updated_at"), "id", chunk)
            for chunk in _chunks(filed):
                bulk.insert_rows(conn, keys_t, ("fan_id", "kind", "value"), chunk)
        if groups:  # members were inserted with their ids: the next default id follows them
            bulk.reset_sequence(conn, members_t, "member_id")
        already = {(b.kind, b.value) for b in conn.execute(sa.select(blocked_t.c.kind, blocked_t.c.value))}
        report.blocked.clear()
        for index, n in enumerate(counts):
            if n > limit and keys[index] not in already:
                _block(conn, keys[index], n, report)

    _write(engine, work)
    report.fans = len(assign)
    report.members_created = len(groups)
    if handed_over:
        later = stitch(engine, handed_over, host=host, limit=limit)
        report.fans += later.fans
        report.members_created += later.members_created
        report.merges += later.merges
        report.blocked.extend(later.blocked)
        report.merged.extend(later.merged)
    return report
