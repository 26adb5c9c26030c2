"""Writing canonical records: idempotent upserts on natural keys.

:func:`upsert` takes a batch of canonical records (fans, orders, points events, messages) and,
inside the caller's transaction, inserts the new ones and updates the changed ones in place.
A record updates only the fields its producer set (pydantic's ``model_fields_set``), so a webhook
that knows only a fan's follow state does not blank the fan's nickname.  Applying the same batch
twice changes nothing the second time.  Phone numbers become their keyed hash (and, when
configured, their encryption) here; the clear number goes no further.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from datetime import datetime
from enum import Enum
from itertools import chain
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from hub.storage import bulk
from hub.events import FanUpserted, MessageReceived
from hub.people.phones import PhoneVault
from schemas import Account, Direction, Fan, Message, Order, PointsEvent, Record
from schemas.tables import AccountRow, FanRow, MessageRow, OrderRow, PointsEventRow, utcnow

if TYPE_CHECKING:
    from hub.plugins import PluginHost

__all__ = ["UpsertPlan", "UpsertResult", "announce", "plan_inserts", "plan_upsert", "upsert", "write_plan"]


@dataclass
class UpsertResult:
    """What one :func:`upsert` did; ``changed`` lists ``(record, created)`` for new or changed records."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    changed: list[tuple[Record, bool]] = field(default_factory=list)


_FAN_DERIVED = frozenset({"phone", "other_phones", "interactions_added"})
"""Fan fields that are not columns: they become other columns' values."""
_FAN_FIELDS = Fan.model_fields  # read once: pydantic's class accessor is not free


def _fan_values(fan: Fan, fields: Iterable[str], phones: PhoneVault) -> dict[str, Any]:
    source = fan.__dict__  # pydantic keeps the validated field values here
    values = {name: source[name] for name in fields if name not in _FAN_DERIVED}
    if "interactions_added" in fields and fan.interactions_added:
        # a new fan starts from its reported counters plus these
        counts = dict(fan.interactions)
        for kind, added in fan.interactions_added.items():
            counts[kind] = counts.get(kind, 0) + added
        values["interactions"] = counts
    if "phone" in fields:
        values["phone_hash"] = phones.hash(fan.phone) if fan.phone else None
        values["phone_encrypted"] = phones.encrypt(fan.phone) if fan.phone else None
    if values.get("follows"):
        values["follows"] = sorted((f.model_dump(mode="json") for f in fan.follows), key=lambda f: f["staff_id"])
    elif "follows" in values:
        values["follows"] = []
    if "other_phones" in fields and fan.other_phones:
        # hashed into identity keys; the numbers themselves go no further
        hashed = {f"phone:{phones.hash(number)[:12]}": phones.hash(number) for number in fan.other_phones
                  if number != fan.phone}
        values["identity_keys"] = {**values.get("identity_keys", fan.identity_keys), **hashed}
    return values


_FAN_READ = (*(name for name in _FAN_FIELDS if name not in _FAN_DERIVED), "phone", "interactions_added", "other_phones")
_FAN_VALUES = itemgetter(*_FAN_READ)


def _fan_columns(fans: list[Fan], phones: PhoneVault) -> dict[str, list[Any]]:
    """The column values of new fans, a column at a time: what :func:`_fan_values` gives each
    fan, without a dictionary per fan.  A first sync inserts fans by the million, so the work is
    done by C-level loops over the records' field values; only the few records that carry phone
    numbers, relations or added counters get work of their own."""
    states = [fan.__dict__ for fan in fans]  # pydantic keeps the validated field values here
    # each record read once (the values it holds, in one tuple), then turned into columns
    columns = dict(zip(_FAN_READ, map(list, zip(*map(_FAN_VALUES, states), strict=True)), strict=True))
    numbers = columns.pop("phone")
    columns["phone_hash"] = [phones.hash(number) if number else None for number in numbers]
    columns["phone_encrypted"] = ([phones.encrypt(number) if number else None for number in numbers]
                                  if phones.encrypts else [None] * len(fans))
    # the per-record work, where a record has any (``any`` finds out in one C loop)
    for field, column, derived in (("follows", "follows", "follows"),
                                   ("interactions_added", "interactions", "interactions_added"),
                                   ("other_phones", "identity_keys", "other_phones")):
        given = columns.pop(field) if field != column else columns[field]
        if any(given):
            target = columns[column]
            for i in [i for i, value in enumerate(given) if value]:
                target[i] = _fan_values(fans[i], (derived,), phones)[column]
    return columns


def _merge_fan(fan: Fan, row: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Follow relations merge by ``staff_id`` and identity keys by kind; nothing is dropped.

    A relation the record carries updates the stored one with the fields its producer set (an
    ``ended_at`` from a deletion callback, a new remark); relations the record does not mention
    are kept, so a full sync that sees only current relations does not erase ended ones.
    """
    if "follows" in values:
        merged = {f["staff_id"]: dict(f) for f in row["follows"] or []}
        for relation in fan.follows:
            update = relation.model_dump(mode="json", exclude_unset=True)
            merged[relation.staff_id] = {**merged.get(relation.staff_id, {}), **update}
        values["follows"] = [merged[k] for k in sorted(merged)]
    if "identity_keys" in values:
        values["identity_keys"] = {**(row["identity_keys"] or {}), **values["identity_keys"]}
    if fan.interactions_added:  # added to what is stored (or to the totals this record also sets)
        counts = dict(fan.interactions if "interactions" in fan.model_fields_set else row["interactions"] or {})
        for kind, added in fan.interactions_added.items():
            counts[kind] = counts.get(kind, 0) + added
        values["interactions"] = counts
    return values


def _plain_values(record: Record, fields: Iterable[str], _phones: PhoneVault) -> dict[str, Any]:
    return {name: getattr(record, name) for name in fields}


def _account_values(account: Account, fields: Iterable[str], _phones: PhoneVault) -> dict[str, Any]:
    values = {name: getattr(account, name) for name in fields}
    if "status" in values and values["status"] is None:
        values["status"] = "active"  # a new account is taken as authorised until told otherwise
    return values


def _record_columns(kind: _Kind, records: list[Record], phones: PhoneVault) -> dict[str, list[Any]]:
    """The column values of new records of any kind, from each record's values."""
    every_field = kind.model.model_fields  # once a page: pydantic's class accessor is not free
    rows = [kind.values(record, every_field, phones) for record in records]
    names = list(rows[0])
    if len(names) == 1:
        return {names[0]: [row[names[0]] for row in rows]}
    return dict(zip(names, map(list, zip(*map(itemgetter(*names), rows), strict=True)), strict=True))


def _flag_columns(
    flags: tuple[tuple[str, frozenset[str] | None], ...], count: int, columns: dict[str, list[Any]],
) -> dict[str, list[bool]]:
    """Each pending-work flag of ``count`` new rows, a column at a time: raised where the row
    writes a value to a field the flag watches (``None``: any field; a new row writes them all)."""
    out: dict[str, list[bool]] = {}
    for flag, watched in flags:
        if watched is None:
            out[flag] = [True] * count
            continue
        given = [columns[name] for name in sorted(watched & columns.keys())]
        if any(None not in column for column in given):  # one field has a value in every row
            out[flag] = [True] * count
            continue
        raised = [False] * count
        for column in given:
            raised = [up or value is not None for up, value in zip(raised, column, strict=True)]
        out[flag] = raised
    return out


def _replace(_record: Any, _row: Any, values: dict[str, Any]) -> dict[str, Any]:
    return values


@dataclass(frozen=True)
class _Kind:
    model: type[Record]
    table: sa.Table
    uid: str
    values: Callable[[Any, Iterable[str], PhoneVault], dict[str, Any]]
    merge: Callable[[Any, Any, dict[str, Any]], dict[str, Any]] = _replace
    columns: Callable[[list[Any], PhoneVault], dict[str, list[Any]]] | None = None
    """The column values of new records (default: :func:`_record_columns`)."""
    flags: tuple[tuple[str, frozenset[str] | None], ...] = ()
    """Pending-work columns, each raised when the fields it watches are written with a value
    (``None``: any field); :mod:`hub.sync.apply` clears them once the work is done."""

ANY = None
_OWNER = attrgetter("platform", "account_id")
KINDS: dict[type[Record], _Kind] = {
    Fan: _Kind(Fan, FanRow.__table__, "platform_uid", _fan_values, _merge_fan, _fan_columns, flags=(
        ("needs_stitch", frozenset({"union_id", "phone_hash", "identity_keys"})),
        ("needs_card", frozenset({"card_no", "card_status"})),
    )),
    Order: _Kind(Order, OrderRow.__table__, "order_id", _plain_values, flags=(("needs_apply", ANY),)),
    PointsEvent: _Kind(PointsEvent, PointsEventRow.__table__, "event_id", _plain_values, flags=(("needs_apply", ANY),)),
    Account: _Kind(Account, AccountRow.__table__, "account_id", _account_values),
    Message: _Kind(Message, MessageRow.__table__, "platform_msg_id", _plain_values),
}


@dataclass
class UpsertPlan:
    """What :func:`plan_upsert` decided: the outcome, and the statements that write it."""

    result: UpsertResult = field(default_factory=UpsertResult)
    statements: list[Callable[[sa.Connection], Any]] = field(default_factory=list)
    assumes_new: list[tuple[_Kind, str, str, list[str]]] = field(default_factory=list)
    """For a plan made without a look-up (:func:`plan_inserts`): the records it takes to be new,
    by kind and account, which :func:`write_plan` checks before it writes."""

    def write(self, conn: sa.Connection) -> UpsertResult:
        """Run the statements on ``conn`` (for :func:`plan_upsert`'s plans, in the transaction that
        read; :func:`write_plan` writes any plan safely in a transaction of its own)."""
        for statement in self.statements:
            statement(conn)
        return self.result


def upsert(conn: sa.Connection, records: Sequence[Record], phones: PhoneVault) -> UpsertResult:
    """Insert new and update changed records, by natural key, in ``conn``'s transaction.

    :param conn: a connection inside the caller's transaction (the caller commits).
    :param records: canonical records of any of the supported kinds, in any mix.
    :param phones: hashes (and maybe encrypts) phone numbers.
    :raises TypeError: for a record kind the hub does not store.
    """
    return plan_upsert(conn, records, phones).write(conn)


def _groups(records: Sequence[Record]) -> dict[tuple[type[Record], str, str], dict[str, Record]]:
    """The records by kind and account, each group by uid (a later duplicate in a batch wins)."""
    kinds = set(map(type, records))
    if len(kinds) == 1 and (kind := KINDS.get(kinds.pop())) is not None:
        owners = set(map(_OWNER, records))
        if len(owners) == 1:  # one kind from one account, as a sync page is: grouped by C-level loops
            return {(kind.model, *owners.pop()): dict(zip(map(attrgetter(kind.uid), records), records))}
    groups: dict[tuple[type[Record], str, str], dict[str, Record]] = defaultdict(dict)
    for record in records:
        kind = KINDS.get(type(record))
        if kind is None:
            raise TypeError(f"cannot store a {type(record).__name__}")
        fields = record.__dict__
        groups[(kind.model, fields["platform"], fields["account_id"])][fields[kind.uid]] = record
    return groups


def plan_inserts(dialect: sa.Dialect, records: Sequence[Record], phones: PhoneVault) -> UpsertPlan:
    """What :func:`plan_upsert` plans for ``records`` if none of them is stored: their inserts,
    made without touching the database.  :func:`write_plan` checks that assumption inside the
    transaction that writes the plan (one index-only look-up) and plans the records again there
    where it does not hold.  A first sync, whose records are all new, is planned this way
    without waiting for the database."""
    plan = UpsertPlan()
    now = utcnow()
    groups = _groups(records)
    for (record_type, platform, account_id), by_uid in groups.items():
        kind = KINDS[record_type]
        inserts = list(by_uid.values())
        plan.result.inserted += len(inserts)
        plan.result.changed += [(record, True) for record in inserts]
        plan.statements.append(_insert_statement(dialect, kind, inserts, phones, now))
        plan.assumes_new.append((kind, platform, account_id, list(by_uid)))
    plan.result.unchanged += len(records) - sum(len(g) for g in groups.values())
    return plan


def write_plan(
    engine: sa.Engine, planned: UpsertPlan, records: Sequence[Record], phones: PhoneVault,
    also: Callable[[sa.Connection], Any] | None = None,
) -> UpsertResult:
    """Write ``planned`` (what :func:`plan_inserts` or :func:`plan_upsert` made of ``records``,
    the latter on another connection) and then ``also`` (a sync's checkpoint) in one transaction
    of their own.

    A plan's view of what is stored may be out of date when it is written: if one of the records
    it takes to be new is stored (by an earlier page, a callback, another process), or another
    writer stores one before the insert (which then meets the natural key's constraint), the
    records are planned again inside the transaction that writes them.
    """
    try:
        with engine.begin() as conn:
            if any(_stored_uids(conn, *assumed) for assumed in planned.assumes_new):
                planned = plan_upsert(conn, records, phones)
            return _write(conn, planned, also)
    except sa.exc.IntegrityError:
        with engine.begin() as conn:
            return _write(conn, plan_upsert(conn, records, phones), also)


def _write(conn: sa.Connection, planned: UpsertPlan, also: Callable[[sa.Connection], Any] | None) -> UpsertResult:
    result = planned.write(conn)
    if also is not None:
        also(conn)
    return result


def plan_upsert(conn: sa.Connection, records: Sequence[Record], phones: PhoneVault) -> UpsertPlan:
    """Read what ``records`` would change and prepare the statements, writing nothing yet.

    :func:`upsert` is this followed by :meth:`UpsertPlan.write` in the same transaction; the sync
    engine instead writes a page's plan with :func:`write_plan`, in a worker thread (the database
    works without the GIL) while the next pages are fetched and planned.
    """
    groups = _groups(records)
    plan = UpsertPlan()
    for (record_type, platform, account_id), by_uid in groups.items():
        _plan_group(conn, KINDS[record_type], platform, account_id, by_uid, phones, plan)
    plan.result.unchanged += len(records) - sum(len(g) for g in groups.values())
    return plan


def _bound(process: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """``values`` through a column type's bind processor (``None`` stays ``None``).

    Values that repeat (a page's flags, an order status's time) are converted once each; a
    column of mostly distinct values (the times records carry) goes straight through.
    """
    sample = values[:16]
    try:
        if 2 * len(set(sample)) > len(sample):  # mostly distinct (the times records carry)
            if None in values:
                return [None if value is None else process(value) for value in values]
            return list(map(process, values))
        distinct = set(values)
    except TypeError:  # JSON documents are unhashable: the empty ones (most of them) converted once
        if all(values):  # none empty, none None
            return list(map(process, values))
        if not any(values) and len(set(map(type, values))) == 1:  # all empty, all lists (or dicts)
            return [process(values[0])] * len(values)
        empty_list, empty_dict = process([]), process({})
        return [None if value is None else process(value) if value or type(value) not in (list, dict)
                else empty_list if type(value) is list else empty_dict for value in values]
    converted = {value: process(value) for value in distinct if value is not None}
    converted[None] = None
    return [converted[value] for value in values]


def _plain(values: list[Any]) -> list[Any]:
    """Enum members (a fan's gender, an order's status) as their plain values: a driver takes a
    ``str`` subclass only through its adaptation protocol, at several times the cost of a ``str``."""
    if set(map(type, values)) <= _PLAIN:
        return values
    members = {value: value.value for value in set(values) if isinstance(value, Enum)}
    return list(map(members.get, values, values)) if members else values


_PLAIN = frozenset({str, int, float, bool, bytes, type(None)})  # exact types: an Enum subclass is not plain


def _insert_statement(
    dialect: sa.Dialect, kind: _Kind, records: list[Record], phones: PhoneVault, now: datetime,
) -> Callable[[sa.Connection], Any]:
    """The driver-level insert of new ``records`` (their column values, and the pending-work
    flags and time stamps of new rows), as a function of a connection.

    The conversions SQLAlchemy would apply (each column type's bind processor: UTC times, JSON,
    booleans) are applied here, column by column and once per distinct value, without
    SQLAlchemy's per-row parameter structures, which cost more than the insert itself on a page
    of fans.  A column that is ``None`` in every row and has no default is left out: it is NULL
    either way.  SQLite gets one multi-row ``INSERT … VALUES``, which it runs whole without the
    GIL; other backends one ``executemany``.
    """
    table = kind.table
    count = len(records)
    columns = (kind.columns or partial(_record_columns, kind))(records, phones)
    columns.update(_flag_columns(kind.flags, count, columns))
    sent: list[str] = []
    values: list[list[Any]] = []
    for name, column in columns.items():
        spec = table.c[name]
        if column.count(None) == count and spec.default is None and spec.server_default is None:
            continue
        process = spec.type._cached_bind_processor(dialect)  # noqa: SLF001
        sent.append(name)
        values.append(_plain(column) if process is None else _bound(process, column))
    for name in ("inserted_at", "updated_at"):
        sent.append(name)
        values.append([_bound(table.c[name].type._cached_bind_processor(dialect), [now])[0]] * count)  # noqa: SLF001
    quote = dialect.identifier_preparer.quote
    if dialect.name != "sqlite":
        head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in sent)}) VALUES "
        sql, params = head + f"({', '.join(['%s'] * len(sent))})", list(zip(*values, strict=True))
        return lambda conn: conn.exec_driver_sql(sql, params)
    # A value shared by every row (the account, the flags, the stamps, empty documents) is bound
    # once, as a numbered parameter; the rest go row by row through ``VALUES``.
    shared = [i for i, column in enumerate(values) if column.count(column[0]) == count]
    varying = [i for i in range(len(values)) if i not in shared]
    constants = tuple(values[i][0] for i in shared)
    names = [sent[i] for i in shared + varying]
    picks = [f"?{n}" for n in range(1, len(shared) + 1)] + [f"column{n}" for n in range(1, len(varying) + 1)]
    head = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in names)}) "
            f"SELECT {', '.join(picks)} FROM (VALUES ")
    group = f"({', '.join('?' * len(varying))})" if varying else "(NULL)"
    per = max(1, (bulk.SQLITE_MAX_PARAMS - len(shared)) // max(1, len(varying)))
    chunks = []  # (statement, the shared values then the varying ones row after row)
    for start in range(0, count, per):
        part = [values[i][start:start + per] for i in varying]
        rows = min(per, count - start)
        flat = constants + tuple(chain.from_iterable(zip(*part, strict=True))) if varying else constants
        chunks.append((head + ", ".join([group] * rows) + ")", flat))

    def run(conn: sa.Connection) -> None:
        for sql, flat in chunks:
            conn.exec_driver_sql(sql, flat)

    return run


def _stored_uids(conn: sa.Connection, kind: _Kind, platform: str, account_id: str, uids: list[str]) -> list[str]:
    """Which of ``uids`` are stored: one index-only look-up."""
    table = kind.table
    found: list[str] = []
    postgres = conn.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    head = f"SELECT {kind.uid} FROM {table.name} WHERE platform = {mark} AND account_id = {mark} AND {kind.uid} "
    for start in range(0, len(uids), 500):  # driver-level: SQLAlchemy's expanding IN costs more than the look-up
        chunk = uids[start:start + 500]
        sql = head + ("= ANY(%s)" if postgres else f"IN ({', '.join('?' * len(chunk))})")
        params = (platform, account_id, chunk) if postgres else (platform, account_id, *chunk)
        found += [uid for (uid,) in conn.exec_driver_sql(sql, params).all()]
    return found


def _existing(conn: sa.Connection, kind: _Kind, platform: str, account_id: str, uids: list[str]) -> dict[str, Any]:
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
    conn: sa.Connection, kind: _Kind, platform: str, account_id: str, by_uid: dict[str, Record], phones: PhoneVault,
    plan: UpsertPlan,
) -> None:
    table = kind.table
    result = plan.result
    existing = _existing(conn, kind, platform, account_id, list(by_uid))
    now = utcnow()
    inserts = [record for uid, record in by_uid.items() if uid not in existing]
    updates: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
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
        updates[frozenset(diff)].append({**{f"v_{k}": v for k, v in diff.items()}, "row_id": row["id"]})
        result.updated += 1
        changed.add(uid)
    result.inserted += len(inserts)
    if changed:  # in the records' order
        result.changed += [(record, uid not in changed) for uid, record in by_uid.items()
                           if uid in changed or uid not in existing]
    else:
        result.changed += [(record, True) for record in inserts]
    if inserts:
        plan.statements.append(_insert_statement(conn.dialect, kind, inserts, phones, now))
    for columns, params in updates.items():
        stmt = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("row_id"))
            .values({c: sa.bindparam(f"v_{c}") for c in columns})
            .execution_options(synchronize_session=False)
        )
        plan.statements.append(lambda conn, stmt=stmt, params=params: conn.execute(stmt, params))


def announce(host: PluginHost, result: UpsertResult) -> None:
    """Tell ``track_event`` observers what an :func:`upsert` changed (call after the commit)."""
    if not host.pm.hook.track_event.get_hookimpls():
        return
    for record, created in result.changed:
        if isinstance(record, Fan):
            host.emit(FanUpserted(fan=record, created=created))
        elif isinstance(record, Message) and record.direction is Direction.INBOUND:
            host.emit(MessageReceived(message=record))
