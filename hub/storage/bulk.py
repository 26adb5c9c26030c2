"""Driver-level SQL: every statement the hub sends below SQLAlchemy Core, on both databases.

SQLAlchemy Core builds, type-processes and (for ``RETURNING``) often executes insert parameters
one row at a time; for a page of hundreds of rows that costs several times the insert itself.
Where that matters (a sync page, a page of postings, a stitching pass, a checkpoint) the hub
sends driver-level statements instead, and this module is the only place that builds them.  One
strategy per database:

SQLite (``?`` placeholders)
    inserts: multi-row, a value that every row shares bound once, ``INSERT INTO t (a, b, c)
    SELECT ?1, column1, column2 FROM (VALUES (?, ?), (?, ?), …)`` (chunked under
    :data:`SQLITE_MAX_PARAMS`; SQLite runs it whole without the GIL); look-ups ``WHERE key IN
    (?, …)``; updates one ``executemany``.
PostgreSQL (``%s`` / ``%b`` placeholders, psycopg)
    one array parameter per column, unpacked by ``unnest``: ``INSERT … SELECT * FROM
    unnest(%b::integer[], …)``, ``WHERE key = ANY(%b::text[])``, ``UPDATE … FROM unnest(…)``
    (psycopg parses a statement's placeholders in Python, so thousands of them cost more than
    the insert).

Both: an insert that leaves out rows whose key is stored (``ON CONFLICT (…) DO NOTHING``, its
row count saying how many it wrote), a one-row upsert on a natural key (``INSERT … ON CONFLICT
(…) DO UPDATE``), ``BEGIN IMMEDIATE`` for a SQLite write transaction, and moving a PostgreSQL
serial sequence after rows were inserted with explicit ids.

Values reach the driver as SQLAlchemy would send them: each column type's own bind processor
(:func:`bind_processor`, the one place that asks SQLAlchemy's type system for it) converts them,
once per distinct value, so the stored values are exactly those Core would store (naive UTC text
on SQLite, aware UTC on PostgreSQL, JSON as the engine serialises it).  :func:`prepare_insert`
and :func:`prepare_upsert_row` take Python values and convert them when the statement is
prepared, so that running it (in a sync's writer thread) costs the driver only;
:func:`insert_rows`, :func:`select_in` and :func:`update_rows` take values already converted
(:func:`time_binder` for times).  Rows that come back are the driver's raw values: read ids,
keys, integers and hashes from them, never timestamps.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from itertools import chain
from typing import Any

import sqlalchemy as sa

__all__ = [
    "SQLITE_MAX_PARAMS",
    "PreparedInsert",
    "Statement",
    "begin_write",
    "bind_processor",
    "bound",
    "driver_values",
    "insert_rows",
    "plain",
    "prepare_insert",
    "prepare_upsert_row",
    "reset_sequence",
    "select_in",
    "time_binder",
    "update_rows",
]

SQLITE_MAX_PARAMS = 30_000  # SQLite allows 32,766 host parameters per statement (since 3.32)

Statement = Callable[[sa.Connection], Any]
"""A prepared statement: run it with a connection (inside the caller's transaction)."""

Processor = Callable[[Any], Any]


def _postgres(dialect: sa.Dialect) -> bool:
    return dialect.name == "postgresql"


# --- values: Python → driver --------------------------------------------------------------------

_PROCESSORS: weakref.WeakKeyDictionary[sa.Dialect, dict[Any, Processor | None]] = weakref.WeakKeyDictionary()


def bind_processor(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Processor | None:
    """The function that turns a Python value into what ``type_`` sends ``dialect``'s driver
    (``None``: values go as they are), as SQLAlchemy itself would convert a bound parameter.

    This is the one place the hub asks SQLAlchemy's type system for a conversion; it uses the
    public ``dialect_impl(dialect).bind_processor(dialect)`` (the same function Core caches
    privately), cached here per dialect and type.
    """
    cache = _PROCESSORS.setdefault(dialect, {})
    try:
        return cache[type_]
    except KeyError:
        cache[type_] = process = type_.dialect_impl(dialect).bind_processor(dialect)
        return process


def time_binder(bind: sa.Connection | sa.Engine | sa.Dialect, column: sa.Column[Any]) -> Callable[[datetime | None], Any]:
    """A function turning an aware datetime into what ``column``'s type sends the driver.

    The conversion is the type's own (so a naive datetime is refused as Core refuses it); each
    distinct value is converted once.
    """
    dialect = bind if isinstance(bind, sa.Dialect) else bind.dialect
    process = bind_processor(column.type, dialect) or (lambda value: value)
    seen: dict[datetime, Any] = {}

    def bind_time(value: datetime | None) -> Any:
        if value is None:
            return None
        try:
            return seen[value]
        except KeyError:
            seen[value] = converted = process(value)
            return converted

    return bind_time


def bound(process: Processor, values: list[Any]) -> list[Any]:
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


_PLAIN = frozenset({str, int, float, bool, bytes, type(None)})  # exact types: an Enum subclass is not plain


def plain(values: list[Any]) -> list[Any]:
    """Enum members (a fan's gender, an order's status) as their plain values: a driver takes a
    ``str`` subclass only through its adaptation protocol, at several times the cost of a ``str``."""
    if set(map(type, values)) <= _PLAIN:
        return values
    members = {value: value.value for value in set(values) if isinstance(value, Enum)}
    return list(map(members.get, values, values)) if members else values


def driver_values(dialect: sa.Dialect, column: sa.Column[Any], values: list[Any]) -> list[Any]:
    """A column of Python values as ``column``'s type sends them to ``dialect``'s driver."""
    process = bind_processor(column.type, dialect)
    return plain(values) if process is None else bound(process, values)


# --- inserts ------------------------------------------------------------------------------------


_ARRAY_TYPES: weakref.WeakKeyDictionary[sa.Dialect, dict[Any, str]] = weakref.WeakKeyDictionary()


def _array_type(dialect: sa.Dialect, column: sa.Column[Any]) -> str:
    """The PostgreSQL array type of ``column``'s values (compiled once per type)."""
    cache = _ARRAY_TYPES.setdefault(dialect, {})
    try:
        return cache[column.type]
    except KeyError:
        cache[column.type] = array = f"{column.type.compile(dialect=dialect)}[]"
        return array


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [list(values) for values in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _insert(
    dialect: sa.Dialect, table: sa.Table, names: Sequence[str], values: list[list[Any]], count: int,
    returning: Sequence[str] = (), skip_on: Sequence[str] = (),
) -> Callable[[sa.Connection], tuple[int, list[tuple[Any, ...]]]]:
    """The insert of ``count`` rows given as columns of driver values, as a function of a
    connection that returns how many rows it inserted and their ``returning`` columns.  With
    ``skip_on`` (the columns of a unique constraint), a row whose key is stored is left out
    instead of failing the statement."""
    quote = dialect.identifier_preparer.quote
    skip = f" ON CONFLICT ({', '.join(map(quote, skip_on))}) DO NOTHING" if skip_on else ""
    tail = skip + (f" RETURNING {', '.join(map(quote, returning))}" if returning else "")
    if _postgres(dialect):
        arrays = ", ".join(f"%b::{_array_type(dialect, table.c[name])}" for name in names)
        sql = f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, names))}) SELECT * FROM unnest({arrays}){tail}"
        params = tuple(values)

        def run_postgres(conn: sa.Connection) -> tuple[int, list[tuple[Any, ...]]]:
            result = conn.exec_driver_sql(sql, params)
            return result.rowcount, list(result.all()) if returning else []

        return run_postgres
    # A value shared by every row (the account, the flags, the stamps, empty documents) is bound
    # once, as a numbered parameter; the rest go row by row through ``VALUES``.
    shared = [i for i, column in enumerate(values) if column[-1] == column[0] and column.count(column[0]) == count]
    varying = [i for i in range(len(values)) if i not in shared]
    constants = tuple(values[i][0] for i in shared)
    order = [names[i] for i in shared + varying]
    picks = [f"?{n}" for n in range(1, len(shared) + 1)] + [f"column{n}" for n in range(1, len(varying) + 1)]
    head = (f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, order))}) "
            f"SELECT {', '.join(picks)} FROM (VALUES ")
    if skip:  # SQLite reads an upsert's ON after a bare FROM as a join's: a WHERE ends the SELECT
        tail = f" WHERE true{tail}"
    group = f"({', '.join('?' * len(varying))})" if varying else "(NULL)"
    per = max(1, (SQLITE_MAX_PARAMS - len(shared)) // max(1, len(varying)))
    chunks = []  # (statement, the shared values then the varying ones row after row)
    for start in range(0, count, per):
        part = [values[i][start:start + per] for i in varying]
        rows = min(per, count - start)
        flat = constants + tuple(chain.from_iterable(zip(*part, strict=True))) if varying else constants
        chunks.append((f"{head}{', '.join([group] * rows)}){tail}", flat))

    def run_sqlite(conn: sa.Connection) -> tuple[int, list[tuple[Any, ...]]]:
        inserted, out = 0, []
        for sql, flat in chunks:
            result = conn.exec_driver_sql(sql, flat)
            if returning:
                out.extend(result.all())
            inserted += result.rowcount
        return inserted, out

    return run_sqlite


class PreparedInsert:
    """The insert of new rows, converted for the driver when prepared (:func:`prepare_insert`):
    call it with a connection to run it; it returns how many rows it inserted.  With ``skip_on``
    (the columns of a unique constraint) a row whose key is already stored is left out, and the
    count says so, where without it the statement fails."""

    def __init__(self, dialect: sa.Dialect, table: sa.Table, names: list[str], values: list[list[Any]],
                 count: int, skip_on: Sequence[str] = ()) -> None:
        self.count = count
        self.skip_on = tuple(skip_on)
        self._run = _insert(dialect, table, names, values, count, skip_on=skip_on) if count else None

    def __call__(self, conn: sa.Connection) -> int:
        return self._run(conn)[0] if self._run is not None else 0


def prepare_insert(dialect: sa.Dialect, table: sa.Table, columns: Mapping[str, list[Any]], count: int,
                   skip_on: Sequence[str] = ()) -> PreparedInsert:
    """The insert of ``count`` new rows of ``table``, given a column at a time as Python values
    (``skip_on``: see :class:`PreparedInsert`).

    The values are converted now (:func:`driver_values`), without SQLAlchemy's per-row parameter
    structures, so that running the statement costs the driver only.  A column that is ``None``
    in every row and has no default is left out: it is NULL either way.
    """
    names: list[str] = []
    values: list[list[Any]] = []
    for name, column in columns.items():
        spec = table.c[name]
        if (not count or column[0] is None) and column.count(None) == count and spec.default is None \
                and spec.server_default is None:
            continue
        names.append(name)
        values.append(driver_values(dialect, spec, column))
    return PreparedInsert(dialect, table, names, values, count, skip_on)


def insert_rows(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]],
    *, returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (tuples of driver values in ``columns`` order); return the ``returning``
    columns of every inserted row (tuple-like rows), in no particular order (match them by a
    unique column).
    """
    if not rows:
        return []
    return _insert(conn.dialect, table, columns, _columns(rows, len(columns)), len(rows), returning)(conn)[1]


# --- one row on its natural key -----------------------------------------------------------------


def prepare_upsert_row(dialect: sa.Dialect, table: sa.Table, key: Sequence[str], values: Mapping[str, Any]) -> Statement:
    """Insert one row of ``table`` (Python ``values``, converted now), or update the row with the
    same ``key`` columns (a unique constraint) to them: ``INSERT … ON CONFLICT (key) DO UPDATE``."""
    quote = dialect.identifier_preparer.quote
    names = list(values)
    mark = "%s" if _postgres(dialect) else "?"
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, names))}) VALUES ({', '.join([mark] * len(names))}) "
           f"ON CONFLICT ({', '.join(map(quote, key))}) DO UPDATE SET "
           + ", ".join(f"{quote(name)} = excluded.{quote(name)}" for name in names if name not in key))
    params = tuple(driver_values(dialect, table.c[name], [value])[0] for name, value in values.items())
    return lambda conn: conn.exec_driver_sql(sql, params)


# --- look-ups and updates -----------------------------------------------------------------------


def select_in(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], key: str, values: Iterable[Any], *,
    where: Mapping[str, Any] | None = None, order_by: str | None = None, for_update: bool = False,
) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM table WHERE key IN (values)`` (and each column of ``where`` equal to
    its driver value), optionally ordered and (on PostgreSQL) locked ``FOR UPDATE``."""
    wanted = list(values)
    if not wanted:
        return []
    fixed = dict(where or {})
    postgres = _postgres(conn.dialect)
    mark = "%s" if postgres else "?"
    head = (f"SELECT {', '.join(columns)} FROM {table.name} WHERE "
            + "".join(f"{name} = {mark} AND " for name in fixed) + f"{key} ")
    tail = (f" ORDER BY {order_by}" if order_by else "")
    if postgres:
        tail += " FOR UPDATE" if for_update else ""
        sql = f"{head}= ANY(%b::{_array_type(conn.dialect, table.c[key])}){tail}"
        return [tuple(row) for row in conn.exec_driver_sql(sql, (*fixed.values(), wanted))]
    out: list[tuple[Any, ...]] = []
    per = SQLITE_MAX_PARAMS - len(fixed)
    for start in range(0, len(wanted), per):
        chunk = wanted[start:start + per]
        sql = f"{head}IN ({', '.join('?' * len(chunk))}){tail}"
        out.extend(tuple(row) for row in conn.exec_driver_sql(sql, (*fixed.values(), *chunk)))
    if order_by and len(wanted) > per:
        raise ValueError("select_in orders at most SQLITE_MAX_PARAMS values on SQLite")  # pragma: no cover
    return out


def update_rows(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], key: str, rows: Sequence[Sequence[Any]],
) -> None:
    """``UPDATE table SET columns = … WHERE key = …`` for each row (``(*values, key value)``)."""
    if not rows:
        return
    if _postgres(conn.dialect):
        names = [*columns, key]
        arrays = ", ".join(f"%b::{_array_type(conn.dialect, table.c[name])}" for name in names)
        sets = ", ".join(f"{name} = v.{name}" for name in columns)
        conn.exec_driver_sql(
            f"UPDATE {table.name} SET {sets} FROM unnest({arrays}) AS v({', '.join(names)}) "
            f"WHERE {table.name}.{key} = v.{key}", tuple(_columns(rows, len(names))))
        return
    sets = ", ".join(f"{name} = ?" for name in columns)
    conn.exec_driver_sql(f"UPDATE {table.name} SET {sets} WHERE {key} = ?", list(rows))


# --- transactions and sequences -----------------------------------------------------------------


def begin_write(conn: sa.Connection) -> None:
    """Start ``conn``'s write transaction.  On SQLite ``BEGIN IMMEDIATE``: the database's one
    write lock is taken before anything is read.  On PostgreSQL nothing: the transaction begins
    with the first statement."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def reset_sequence(conn: sa.Connection, table: sa.Table, column: str) -> None:
    """After rows were inserted with explicit ids: on PostgreSQL, move ``column``'s serial
    sequence to the column's largest value, so the next default id follows them.  SQLite takes
    the next id from the table itself."""
    if _postgres(conn.dialect):
        conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column}'), "
                             f"(SELECT MAX({column}) FROM {table.name}))")
