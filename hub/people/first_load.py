"""Writing a bulk stitching pass on PostgreSQL: COPY, one set-based UPDATE, and for a first load
the table's secondary indexes built once instead of maintained row by row.

A pass that stitches most of ``fans`` (a platform's first load) would otherwise write a new row
version of each fan into every index of the table (seven), each insert landing on a random leaf
page; building those indexes afresh from the updated table sorts each once.  The same holds for
``fan_identity_keys`` when the pass files most of its keys, whose foreign key to ``fans`` is
likewise added again (one join checks every key) rather than checked key by key.

The indexes are dropped and built again inside the pass's own transaction, under an ``ACCESS
EXCLUSIVE`` lock on the table: no other transaction sees the table without them, a failed pass
rolls them back with everything else, and unique indexes are checked again when built.  While
the pass writes, readers of those tables wait (for the few tens of seconds a million fans take).
The lock is taken only if it is granted within :data:`LOCK_WAIT`; otherwise (a long reader, a
sync writing fans) the pass keeps the indexes and writes through them.  The primary key and any
index a foreign key depends on are always kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

__all__ = ["LOCK_WAIT", "REBUILD_AT_LEAST", "write_pass"]

LOCK_WAIT = "2s"
"""How long a pass waits for the exclusive lock that rebuilding a table's indexes needs."""

REBUILD_AT_LEAST = 50_000
"""A table's indexes are rebuilt only when the pass writes at least this many of its rows and at
least a quarter of the rows it will then hold."""

_SECONDARY = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS index_def,
       c.conname AS constraint_name, pg_get_constraintdef(c.oid) AS constraint_def
FROM pg_index i
LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('u', 'x')
WHERE i.indrelid = %(table)s::regclass AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)
ORDER BY i.indexrelid
"""

_FOREIGN_KEYS = """
SELECT conname, pg_get_constraintdef(oid), confrelid::regclass::text
FROM pg_constraint WHERE conrelid = %(table)s::regclass AND contype = 'f' AND convalidated
ORDER BY oid
"""


def _quote(cursor: Any, name: str) -> str:
    from psycopg import sql

    return sql.Identifier(name).as_string(cursor)


class _Rebuild:
    """A table's secondary indexes and foreign keys, dropped under an exclusive lock and made
    again: each index built by one sort, each foreign key checked by one join."""

    def __init__(self, cursor: Any, table: str, *, foreign_keys: bool) -> None:
        self.cursor, self.table, self.with_foreign_keys = cursor, table, foreign_keys
        self.indexes: list[tuple[str, str, str | None, str]] = []
        self.foreign_keys: list[tuple[str, str, str]] = []

    def drop(self) -> bool:
        """Lock the table (and, when its foreign keys go too, the tables they name: dropping one
        drops triggers there), then drop its secondary indexes and foreign keys; false, nothing
        done, if a lock was not granted within :data:`LOCK_WAIT`."""
        from psycopg import errors

        cur, table = self.cursor, _quote(self.cursor, self.table)
        foreign_keys = []
        if self.with_foreign_keys:
            cur.execute(_FOREIGN_KEYS, {"table": self.table})
            foreign_keys = cur.fetchall()
        cur.execute("SAVEPOINT stitch_lock")
        try:
            cur.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
            cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            for referenced in sorted({fk[2] for fk in foreign_keys} - {self.table}):
                cur.execute(f"LOCK TABLE {referenced} IN ACCESS EXCLUSIVE MODE")  # regclass text
        except errors.LockNotAvailable:
            cur.execute("ROLLBACK TO SAVEPOINT stitch_lock")
            return False
        cur.execute("RELEASE SAVEPOINT stitch_lock")
        cur.execute("SET LOCAL lock_timeout = DEFAULT")
        self.foreign_keys = foreign_keys
        cur.execute(_SECONDARY, {"table": self.table})
        self.indexes = cur.fetchall()
        for name, _definition, _referenced in self.foreign_keys:
            cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {_quote(cur, name)}")
        for name, _index_def, constraint, _constraint_def in self.indexes:
            if constraint is not None:
                cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {_quote(cur, constraint)}")
            else:
                cur.execute(f"DROP INDEX {name}")  # regclass text: quoted and qualified as needed
        return True

    def build(self) -> None:
        cur, table = self.cursor, _quote(self.cursor, self.table)
        for _name, index_def, constraint, constraint_def in self.indexes:
            if constraint is not None:
                cur.execute(f"ALTER TABLE {table} ADD CONSTRAINT {_quote(cur, constraint)} {constraint_def}")
            else:
                cur.execute(index_def)
        for name, definition, _referenced in self.foreign_keys:
            cur.execute(f"ALTER TABLE {table} ADD CONSTRAINT {_quote(cur, name)} {definition}")


def _rebuild(cursor: Any, table: str, writing: int, after: int, *, foreign_keys: bool) -> _Rebuild | None:
    if writing < REBUILD_AT_LEAST or writing * 4 < after:
        return None
    rebuild = _Rebuild(cursor, table, foreign_keys=foreign_keys)
    return rebuild if rebuild.drop() else None


def _copy(cursor: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    names = ", ".join(_quote(cursor, c) for c in columns)
    with cursor.copy(f"COPY {_quote(cursor, table)} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


_ASSIGN = """
UPDATE fans SET member_id = COALESCE(a.member_id, fans.member_id),
                updated_at = CASE WHEN a.member_id IS NULL THEN fans.updated_at ELSE %(now)s END,
                needs_stitch = fans.needs_stitch AND fans.xmin::text::bigint <> a.version
FROM stitch_assign a WHERE fans.id = a.fan_id
"""
"""Each fan read gets its member (unless handed over: ``NULL``) and, where its row is still the
version the pass read, its ``needs_stitch`` cleared; a fan written since keeps its flag."""


def write_pass(
    conn: sa.Connection, *, members: Iterable[Sequence[Any]], member_columns: Sequence[str],
    fans: Iterable[tuple[int | None, int, int]], fan_count: int, keys: Iterable[tuple[int, str, str]],
    key_count: int, keys_before: int, now: Any,
) -> None:
    """Insert the pass's members, set ``fans.member_id`` (and ``updated_at = now``) of each
    ``(member_id, fan_id, version)`` in ``fans`` (``member_id`` ``None``: left as it is), clear
    ``needs_stitch`` of those whose row version (``xmin``) is still ``version``, and file ``keys``
    (``(fan_id, kind, value)``), inside ``conn``'s open transaction.

    :param fan_count: how many ``fans`` there are; :param key_count: how many ``keys``.
    :param keys_before: how many identity keys the table held when the pass began.
    """
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        _copy(cursor, "members", member_columns, members)
        if fan_count:
            cursor.execute("SELECT count(*) FROM fans")
            # fans keeps its foreign key (to members: dropping it would lock members out too)
            rebuild = _rebuild(cursor, "fans", fan_count, cursor.fetchone()[0], foreign_keys=False)
            cursor.execute("CREATE TEMPORARY TABLE stitch_assign (member_id bigint, fan_id bigint NOT NULL, "
                           "version bigint NOT NULL) ON COMMIT DROP")
            _copy(cursor, "stitch_assign", ("member_id", "fan_id", "version"), fans)
            cursor.execute("ANALYZE stitch_assign")
            cursor.execute(_ASSIGN, {"now": now})
            cursor.execute("DROP TABLE stitch_assign")
            if rebuild is not None:
                rebuild.build()
        if key_count:
            # its foreign key goes too: checked row by row, each check locks a row of fans
            rebuild = _rebuild(cursor, "fan_identity_keys", key_count, keys_before + key_count, foreign_keys=True)
            _copy(cursor, "fan_identity_keys", ("fan_id", "kind", "value"), keys)
            if rebuild is not None:
                rebuild.build()
    finally:
        cursor.close()
