"""Planning the write of a batch of records (what :mod:`hub.sync.store` does behind its doors).

A plan is what a batch would change, decided before it is written: its outcome
(:class:`UpsertResult`) and its statements.  :func:`plan_upsert` reads the stored rows of the
batch (one index-only look-up of their keys; full rows only for those found) and plans new
records' inserts, changed records' updates in place, and counts the rest unchanged.
:func:`plan_inserts` plans the batch as new records without touching the database, and its
insert checks that assumption as it runs: it leaves out any record already stored, and
:func:`write_plan`, finding fewer rows inserted than planned, plans the batch again with
:func:`plan_upsert` in a new transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from datetime import datetime
from operator import attrgetter
from typing import Any

import sqlalchemy as sa

from hub.people.phones import PhoneVault
from hub.storage import bulk
from hub.sync.kinds import Kind, kind_of, new_rows
from schemas import Record
from schemas.tables import utcnow

__all__ = ["StoredMeanwhile", "UpsertPlan", "UpsertResult", "plan_inserts", "plan_upsert", "write_plan"]


@dataclass
class UpsertResult:
    """What one write of records did; ``changed`` lists ``(record, created)`` for new or changed records."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    changed: list[tuple[Record, bool]] = field(default_factory=list)


@dataclass
class UpsertPlan:
    """What :func:`plan_upsert` or :func:`plan_inserts` decided: the outcome, and the statements
    that write it."""

    result: UpsertResult = field(default_factory=UpsertResult)
    statements: list[bulk.Statement] = field(default_factory=list)

    def write(self, conn: sa.Connection) -> UpsertResult:
        """Run the statements on ``conn`` (for :func:`plan_upsert`'s plans, in the transaction that
        read; :func:`write_plan` writes any plan safely in a transaction of its own).

        :raises StoredMeanwhile: when an insert of :func:`plan_inserts` met stored records.
        """
        for statement in self.statements:
            done = statement(conn)
            if isinstance(statement, bulk.PreparedInsert) and statement.skip_on and done != statement.count:
                raise StoredMeanwhile(f"{statement.count - done} of the records planned as new are stored")
        return self.result


class StoredMeanwhile(Exception):
    """A plan made without a look-up (:func:`plan_inserts`) took stored records for new ones."""


_OWNER = attrgetter("platform", "account_id")


def _groups(records: Sequence[Record]) -> dict[tuple[Kind, str, str], dict[str, Record]]:
    """The records by kind and account, each group by uid (a later duplicate in a batch wins).

    :raises TypeError: for a record kind the hub does not store.
    """
    types = set(map(type, records))
    if len(types) == 1:
        kind = kind_of(types.pop())
        owners = set(map(_OWNER, records))
        if len(owners) == 1:  # one kind from one account, as a sync page is: grouped by C-level loops
            return {(kind, *owners.pop()): dict(zip(map(attrgetter(kind.uid), records), records))}
    groups: dict[tuple[Kind, str, str], dict[str, Record]] = defaultdict(dict)
    for record in records:
        kind = kind_of(type(record))
        fields = record.__dict__
        groups[(kind, fields["platform"], fields["account_id"])][fields[kind.uid]] = record
    return groups


def _inserts(dialect: sa.Dialect, kind: Kind, records: list[Record], phones: PhoneVault,
             now: datetime, *, skip_stored: bool = False) -> bulk.PreparedInsert:
    """The driver-level insert of new ``records`` (:func:`hub.storage.bulk.prepare_insert`);
    ``skip_stored``: leaving out those stored on their natural key."""
    return bulk.prepare_insert(dialect, kind.table, new_rows(kind, records, phones, now), len(records),
                               skip_on=kind.key if skip_stored else ())


def plan_inserts(dialect: sa.Dialect, records: Sequence[Record], phones: PhoneVault) -> UpsertPlan:
    """What :func:`plan_upsert` plans for ``records`` if none of them is stored: their inserts,
    made without touching the database.  Each insert leaves out the records that are stored
    when it runs (on their natural key), and :meth:`UpsertPlan.write` then raises
    :class:`StoredMeanwhile` (:func:`write_plan` plans the batch again).  A first sync, whose
    records are all new, is planned this way without waiting for the database and written with
    one statement a page."""
    plan = UpsertPlan()
    now = utcnow()
    groups = _groups(records)
    for (kind, *_), by_uid in groups.items():
        inserts = list(by_uid.values())
        plan.result.inserted += len(inserts)
        plan.result.changed += [(record, True) for record in inserts]
        plan.statements.append(_inserts(dialect, kind, inserts, phones, now, skip_stored=True))
    plan.result.unchanged += len(records) - sum(len(g) for g in groups.values())
    return plan


def write_plan(
    engine: sa.Engine, planned: UpsertPlan, records: Sequence[Record], phones: PhoneVault,
    also: bulk.Statement | None = None,
) -> UpsertResult:
    """Write ``planned`` (what :func:`plan_inserts` or :func:`plan_upsert` made of ``records``,
    the latter on another connection) and then ``also`` (a sync's checkpoint) in one transaction
    of their own.

    A plan's view of what is stored may be out of date when it is written: when a record it
    takes to be new is stored (by an earlier page, a callback, another process), the batch is
    planned again with :func:`plan_upsert` in a new transaction, whether the plan's insert left
    the record out (:func:`plan_inserts`) or met the natural key's constraint.
    """
    try:
        with engine.begin() as conn:
            return _write(conn, planned, also)
    except (StoredMeanwhile, sa.exc.IntegrityError):
        with engine.begin() as conn:
            return _write(conn, plan_upsert(conn, records, phones), also)


def _write(conn: sa.Connection, planned: UpsertPlan, also: bulk.Statement | None) -> UpsertResult:
    result = planned.write(conn)
    if also is not None:
        also(conn)
    return result


def plan_upsert(conn: sa.Connection, records: Sequence[Record], phones: PhoneVault) -> UpsertPlan:
    """Read what ``records`` would change and prepare the statements, writing nothing yet.

    :func:`hub.sync.store.upsert` is this followed by :meth:`UpsertPlan.write` in the same
    transaction.
    """
    groups = _groups(records)
    plan = UpsertPlan()
    for (kind, platform, account_id), by_uid in groups.items():
        _plan_group(conn, kind, platform, account_id, by_uid, phones, plan)
    plan.result.unchanged += len(records) - sum(len(g) for g in groups.values())
    return plan


def _stored_uids(conn: sa.Connection, kind: Kind, platform: str, account_id: str, uids: list[str]) -> list[str]:
    """Which of ``uids`` are stored: one index-only look-up."""
    return [uid for (uid,) in bulk.select_in(conn, kind.table, (kind.uid,), kind.uid, uids,
                                             where={"platform": platform, "account_id": account_id})]


def _existing(conn: sa.Connection, kind: Kind, platform: str, account_id: str, uids: list[str]) -> dict[str, Any]:
    """The stored rows of ``uids``, by uid.  A page of new records (the common case of a first
    sync) costs one index-only look-up of the uids; full rows are read only for those found."""
    found = _stored_uids(conn, kind, platform, account_id, uids)
    if not found:
        return {}
    table = kind.table
    c = table.c
    existing: dict[str, Any] = {}
    for start in range(0, len(found), 500):
        rows = conn.execute(sa.select(table).where(c[kind.uid].in_(found[start:start + 500]), c.platform == platform,
                                                   c.account_id == account_id)).mappings()
        existing.update({row[kind.uid]: row for row in rows})
    return existing


def _plan_group(
    conn: sa.Connection, kind: Kind, platform: str, account_id: str, by_uid: dict[str, Record], phones: PhoneVault,
    plan: UpsertPlan,
) -> None:
    table = kind.table
    result = plan.result
    existing = _existing(conn, kind, platform, account_id, list(by_uid))
    now = utcnow()
    inserts = [record for uid, record in by_uid.items() if uid not in existing]
    updates: dict[frozenset[str], list[tuple[dict[str, Any], int]]] = defaultdict(list)
    changed: set[str] = set()
    for uid, record in by_uid.items() if existing else ():
        row = existing.get(uid)
        if row is None:
            continue
        values = kind.merge(record, row, kind.values(record, record.model_fields_set, phones))
        diff = {k: v for k, v in values.items() if row[k] != v}
        if not diff:
            result.unchanged += 1
            continue
        diff.update({flag: True for flag, watched in kind.flags if watched is None or watched & diff.keys()})
        diff["updated_at"] = now
        updates[frozenset(diff)].append((diff, row["id"]))
        result.updated += 1
        changed.add(uid)
    result.inserted += len(inserts)
    if changed:  # in the records' order
        result.changed += [(record, uid not in changed) for uid, record in by_uid.items()
                           if uid in changed or uid not in existing]
    else:
        result.changed += [(record, True) for record in inserts]
    if inserts:
        plan.statements.append(_inserts(conn.dialect, kind, inserts, phones, now))
    for columns, diffs in updates.items():  # rows that change the same columns: one statement
        names = sorted(columns)
        values = [bulk.driver_values(conn.dialect, table.c[name], [diff[name] for diff, _ in diffs]) for name in names]
        rows = list(zip(*values, [row_id for _, row_id in diffs], strict=True))
        plan.statements.append(partial(bulk.update_rows, table=table, columns=names, key="id", rows=rows))
