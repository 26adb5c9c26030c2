"""Set-based SQL for a page of rows (postings, lots, fans), below SQLAlchemy's per-row parameter
handling.

SQLAlchemy Core builds, type-processes and (for ``RETURNING``) often executes insert parameters
one row at a time; for a page of hundreds of rows that costs several times the insert itself.
The helpers here send driver-level statements instead, one per page and table:

SQLite
    multi-row ``INSERT … VALUES (?, …), (?, …)``, ``SELECT … WHERE key IN (?, …)`` and an
    ``executemany`` for updates.
PostgreSQL
    one array parameter per column, unpacked by ``unnest``: ``INSERT … SELECT * FROM
    unnest(%s::integer[], …)``, ``WHERE key = ANY(%s)``, ``UPDATE … FROM unnest(…)``.  (psycopg
    parses a statement's placeholders in Python, so thousands of them cost more than the insert.)

Timestamps are converted once per distinct value by the column type's own bind processor
(:func:`time_binder`), so the stored values are exactly those Core would store (naive UTC text
on SQLite, aware UTC on PostgreSQL).  Rows that come back are the driver's raw values: read ids,
keys, integers and hashes from them, never timestamps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from itertools import chain
from typing import Any

import sqlalchemy as sa

__all__ = ["SQLITE_MAX_PARAMS", "insert_rows", "select_in", "time_binder", "update_rows"]

SQLITE_MAX_PARAMS = 30_000  # SQLite allows 32,766 host parameters per statement (since 3.32)


def _postgres(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _array_type(conn: sa.Connection, column: sa.Column[Any]) -> str:
    return f"{column.type.compile(dialect=conn.dialect)}[]"


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [list(values) for values in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def time_binder(conn: sa.Connection | sa.Engine, column: sa.Column[Any]) -> Callable[[datetime | None], Any]:
    """A function turning an aware datetime into what ``column``'s type sends the driver.

    The conversion is the type's own (so a naive datetime is refused as Core refuses it); each
    distinct value is converted once.
    """
    process = column.type._cached_bind_processor(conn.dialect) or (lambda value: value)  # noqa: SLF001
    seen: dict[datetime, Any] = {}

    def bind(value: datetime | None) -> Any:
        if value is None:
            return None
        try:
            return seen[value]
        except KeyError:
            seen[value] = converted = process(value)
            return converted

    return bind


def insert_rows(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]],
    *, returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (tuples in ``columns`` order); return the ``returning`` columns of every
    inserted row (tuple-like rows), in no particular order (match them by a unique column).
    """
    if not rows:
        return []
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) "
    tail = f" RETURNING {', '.join(returning)}" if returning else ""
    if _postgres(conn):
        arrays = ", ".join(f"%b::{_array_type(conn, table.c[name])}" for name in columns)
        result = conn.exec_driver_sql(f"{head}SELECT * FROM unnest({arrays}){tail}", tuple(_columns(rows, len(columns))))
        return list(result.all()) if returning else []
    group = "(" + ", ".join("?" * len(columns)) + ")"
    per = max(1, SQLITE_MAX_PARAMS // len(columns))
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        params = tuple(chain.from_iterable(chunk))
        result = conn.exec_driver_sql(f"{head}VALUES {', '.join([group] * len(chunk))}{tail}", params)
        if returning:
            out.extend(result.all())
    return out


def select_in(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], key: str, values: Iterable[Any], *,
    order_by: str | None = None, for_update: bool = False,
) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM table WHERE key IN (values)``, optionally ordered and (on
    PostgreSQL) locked ``FOR UPDATE``."""
    wanted = list(values)
    if not wanted:
        return []
    head = f"SELECT {', '.join(columns)} FROM {table.name} WHERE {key} "
    tail = (f" ORDER BY {order_by}" if order_by else "")
    if _postgres(conn):
        tail += " FOR UPDATE" if for_update else ""
        sql = f"{head}= ANY(%b::{_array_type(conn, table.c[key])}){tail}"
        return [tuple(row) for row in conn.exec_driver_sql(sql, (wanted,))]
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(wanted), SQLITE_MAX_PARAMS):
        chunk = wanted[start:start + SQLITE_MAX_PARAMS]
        sql = f"{head}IN ({', '.join('?' * len(chunk))}){tail}"
        out.extend(tuple(row) for row in conn.exec_driver_sql(sql, tuple(chunk)))
    if order_by and len(wanted) > SQLITE_MAX_PARAMS:
        raise ValueError("select_in orders at most SQLITE_MAX_PARAMS values on SQLite")  # pragma: no cover
    return out


def update_rows(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], key: str, rows: Sequence[Sequence[Any]],
) -> None:
    """``UPDATE table SET columns = … WHERE key = …`` for each row (``(*values, key value)``)."""
    if not rows:
        return
    if _postgres(conn):
        names = [*columns, key]
        arrays = ", ".join(f"%b::{_array_type(conn, table.c[name])}" for name in names)
        sets = ", ".join(f"{name} = v.{name}" for name in columns)
        conn.exec_driver_sql(
            f"UPDATE {table.name} SET {sets} FROM unnest({arrays}) AS v({', '.join(names)}) "
            f"WHERE {table.name}.{key} = v.{key}", tuple(_columns(rows, len(names))))
        return
    sets = ", ".join(f"{name} = ?" for name in columns)
    conn.exec_driver_sql(f"UPDATE {table.name} SET {sets} WHERE {key} = ?", list(rows))
