"""Write transactions and member locks, the same way on SQLite and PostgreSQL.

SQLite
    A write transaction starts with ``BEGIN IMMEDIATE``: it takes the database's one write lock
    before reading anything, so two writers never both read a balance and both act on it.  The
    busy timeout set by :func:`hub.storage.database.create_engine` makes a second writer wait its turn.

PostgreSQL
    A write transaction runs in READ COMMITTED and takes ``SELECT … FOR UPDATE`` locks on the
    member rows it changes, always in ascending ``member_id`` order so that two transactions never
    wait on each other in a cycle.  Every statement after the lock sees the rows its predecessor
    committed.  A unique-key race (two writers inserting one idempotency key for two different
    members) or a deadlock the server broke is retried from the start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from hub.errors import MergeRefused, NotFound, StorageError
from hub.storage.bulk import begin_write
from hub.storage.database import database_reason
from schemas.tables import MemberRow

__all__ = ["RETRIES", "lock_members", "resolve_member", "run_write"]

T = TypeVar("T")
RETRIES = 8
members = MemberRow.__table__


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(exc.orig, "sqlstate", None) or getattr(getattr(exc.orig, "diag", None), "sqlstate", None)
    if code in {"40001", "40P01"}:  # serialization failure, deadlock detected
        return True
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower()


def run_write(engine: sa.Engine, work: Callable[[sa.Connection], T]) -> T:
    """Run ``work(conn)`` in one write transaction and commit it; retry a race it lost.

    ``work`` must be safe to run again from the start: everything it did is rolled back first.
    An exception from ``work`` (a :class:`hub.HubError`, say) rolls back and propagates.

    :param engine: the database.
    :param work: the transaction's body; its return value is returned.
    :raises StorageError: the race was lost :data:`RETRIES` times.
    """
    for attempt in range(RETRIES):
        with engine.connect() as conn:
            try:
                begin_write(conn)
                result = work(conn)
                conn.commit()
                return result
            except DBAPIError as exc:
                conn.rollback()
                if not _retryable(exc) or attempt == RETRIES - 1:
                    if isinstance(exc, IntegrityError):
                        raise
                    raise StorageError(f"write failed: {exc.__class__.__name__}: {database_reason(exc)}") from exc
            except BaseException:
                conn.rollback()
                raise
        time.sleep(0.005 * (attempt + 1))
    raise StorageError("write transaction kept losing races")  # pragma: no cover


def lock_members(conn: sa.Connection, member_ids: Iterable[int]) -> dict[int, sa.Row]:
    """Lock member rows in ascending id order and return them by id.

    :raises NotFound: one of them does not exist.
    """
    wanted = sorted(set(member_ids))
    query = sa.select(members).where(members.c.member_id.in_(wanted)).order_by(members.c.member_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    rows = {row.member_id: row for row in conn.execute(query)}
    for member_id in wanted:
        if member_id not in rows:
            raise NotFound(f"no member {member_id}")
    return rows


def resolve_member(conn: sa.Connection, member_id: int) -> sa.Row:
    """Follow ``merged_into`` pointers to the live member and return its locked row.

    :raises NotFound: the member does not exist.
    """
    if not isinstance(member_id, int) or isinstance(member_id, bool) or member_id <= 0:
        raise NotFound(f"no member {member_id!r}")
    current = member_id
    for _ in range(64):
        row = lock_members(conn, [current])[current]
        if row.merged_into is None:
            return row
        current = row.merged_into
    raise MergeRefused(f"member {member_id} has a merge chain that does not end", member_id=member_id)
