"""Writing canonical records: idempotent upserts on natural keys, through one of two doors.

:func:`upsert`
    takes a batch of canonical records (fans, orders, points events, messages, accounts) and,
    inside the caller's transaction, inserts the new ones and updates the changed ones in place
    (callbacks, ``siyu apply``, imports).
:class:`PageWriter`
    is the sync engine's one door for a page: it plans the page, writes it (with any pages
    queued behind the one before it) and the stream's checkpoint in one transaction (checking
    there that the plan still holds, planning the page again if not), and announces what
    changed once it is committed.  The engine never sees a statement.

Either way, a record updates only the fields its producer set (pydantic's ``model_fields_set``),
so a webhook that knows only a fan's follow state does not blank the fan's nickname, and writing
the same batch twice changes nothing the second time.  What a record becomes in its row is
:mod:`hub.sync.kinds`'s; how a batch is planned and written, :mod:`hub.sync.plans`'s; the
driver-level statements, :mod:`hub.storage.bulk`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from hub.events import FanUpserted, MessageReceived
from hub.people.phones import PhoneVault
from hub.storage import bulk
from hub.sync.plans import StoredMeanwhile, UpsertPlan, UpsertResult, plan_inserts, plan_upsert, write_plan
from schemas import Direction, Fan, Message, Record
from schemas.tables import SyncCheckpointRow, utcnow

if TYPE_CHECKING:
    from hub.plugins import PluginHost

__all__ = ["PageWrite", "PageWriter", "UpsertResult", "announce", "load_checkpoint", "upsert"]

CHECKPOINTS = SyncCheckpointRow.__table__
CHECKPOINT_KEY = ("platform", "account_id", "stream")


def upsert(conn: sa.Connection, records: Sequence[Record], phones: PhoneVault) -> UpsertResult:
    """Insert new and update changed records, by natural key, in ``conn``'s transaction.

    :param conn: a connection inside the caller's transaction (the caller commits).
    :param records: canonical records of any of the supported kinds, in any mix.
    :param phones: hashes (and maybe encrypts) phone numbers.
    :raises TypeError: for a record kind the hub does not store.
    """
    return plan_upsert(conn, records, phones).write(conn)


def load_checkpoint(conn: sa.Connection, platform: str, account_id: str, stream: str) -> str | None:
    """The stored cursor of a stream (``None``: none, the stream starts from the beginning)."""
    c = CHECKPOINTS.c
    return conn.execute(
        sa.select(c.cursor).where(c.platform == platform, c.account_id == account_id, c.stream == stream)
    ).scalar_one_or_none()


class PageWriter:
    """The one door through which a sync writes the pages of one stream of one account.

    ``plan`` is called for each page in the event loop's thread, as soon as the page is fetched,
    and returns its *write*: a function without arguments to run in a worker thread.  Running it
    opens one transaction, inserts the page's records, leaving out any that is stored (by an
    earlier page, a callback, a re-sync, another writer meanwhile), sets the stream's checkpoint
    to the page's next cursor and commits: the page and its checkpoint are stored together or not
    at all.  When the insert left a record out, that transaction is rolled back and the page is
    planned again in a new one (new records inserted, changed ones updated in place, the rest
    counted unchanged).  ``write`` runs several such writes, the pages that queued up while the
    writer was busy, in one transaction.  The caller runs the writes in page order, and calls
    ``announce`` with a write's result once it is committed.

    The plan is made without waiting for the database, as new records (a first sync's records
    all are), with every value already converted for the driver, so that the worker thread
    holds the GIL as little as it can.
    """

    def __init__(self, engine: sa.Engine, phones: PhoneVault, host: PluginHost, platform: str, account_id: str,
                 stream: str) -> None:
        self.engine = engine
        self.phones = phones
        self.host = host
        self.platform = platform
        self.account_id = account_id
        self.stream = stream

    def checkpoint(self) -> str | None:
        """The stream's stored cursor, where a sync resumes (``None``: from the beginning)."""
        with self.engine.connect() as conn:
            return load_checkpoint(conn, self.platform, self.account_id, self.stream)

    def plan(self, records: Sequence[Record], next_cursor: str | None) -> PageWrite:
        """Plan a page (its records, and the cursor of the page after it; ``None`` at the end,
        which clears the checkpoint) and return its write, to run in a worker thread.

        :raises TypeError: for a record kind the hub does not store.
        """
        dialect = self.engine.dialect
        planned = plan_inserts(dialect, records, self.phones)
        checkpoint = bulk.prepare_upsert_row(dialect, CHECKPOINTS, CHECKPOINT_KEY, {
            "platform": self.platform, "account_id": self.account_id, "stream": self.stream,
            "cursor": next_cursor, "updated_at": utcnow(),
        })
        return PageWrite(self, planned, records, checkpoint)

    def write(self, writes: Sequence[PageWrite]) -> list[UpsertResult | SQLAlchemyError]:
        """Write planned pages of this stream, in page order, in one transaction that ends with
        the last page's checkpoint (pages that queued up while the writer was busy: a commit
        writes each database page they share once); each page's outcome, in order.

        When that transaction fails (a record planned as new is stored, or the database refuses a
        page), it is rolled back and each page is written on its own (calling its
        :class:`PageWrite`), planned again if it must be.  A page that fails has the database
        error as its outcome, and so has every page after it, which is not written: the pages
        before it are stored with their checkpoint, and the checkpoint never passes a page that
        is not stored.
        """
        outcomes: list[UpsertResult | SQLAlchemyError] = []
        if len(writes) > 1:
            try:
                with self.engine.begin() as conn:
                    outcomes = [write.planned.write(conn) for write in writes]
                    writes[-1].checkpoint(conn)
                return outcomes
            except (StoredMeanwhile, SQLAlchemyError):  # rolled back: the pages one by one say which
                outcomes = []
        for write in writes:
            try:
                outcomes.append(write())
            except SQLAlchemyError as exc:
                return outcomes + [exc] * (len(writes) - len(outcomes))
        return outcomes

    def announce(self, result: UpsertResult) -> None:
        """After a page's write committed: tell ``track_event`` observers what it changed."""
        announce(self.host, result)


@dataclass(frozen=True, eq=False)
class PageWrite:
    """A page planned by :meth:`PageWriter.plan`: calling it writes the page and its checkpoint
    in a transaction of their own (planned again inside a new one if the plan no longer holds)."""

    writer: PageWriter
    planned: UpsertPlan
    records: Sequence[Record]
    checkpoint: bulk.Statement

    def __call__(self) -> UpsertResult:
        writer = self.writer
        return write_plan(writer.engine, self.planned, self.records, writer.phones, also=self.checkpoint)


def announce(host: PluginHost, result: UpsertResult) -> None:
    """Tell ``track_event`` observers what an :func:`upsert` changed (call after the commit)."""
    if not host.pm.hook.track_event.get_hookimpls():
        return
    for record, created in result.changed:
        if isinstance(record, Fan):
            host.emit(FanUpserted(fan=record, created=created))
        elif isinstance(record, Message) and record.direction is Direction.INBOUND:
            host.emit(MessageReceived(message=record))
