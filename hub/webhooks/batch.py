"""Group commits: the receiver's database writes, batched by one writer thread.

A callback is acknowledged only after the transaction holding it committed.  Committing each
callback on its own costs a transaction (and, on SQLite, a turn at the one write lock, fought
over by every worker thread) per callback.  A :class:`GroupWriter` owns one thread and one
connection at a time: callbacks that arrive while it commits wait for the next transaction, which
stores all of them at once (:func:`hub.webhooks.stored.store_events`); each waiting request learns
its own outcome (stored, or a re-delivery of a stored key) once that transaction committed, never
before.  Applying stored callbacks goes through the same thread when the writer is shared
(SQLite: one writer, no lock contention), in batches of at most ``apply_batch`` callbacks
(:func:`hub.webhooks.stored.apply_events`), and stores always go first, so a batch being applied
delays an acknowledgement by at most one such batch.

Nothing here logs request content: the outcome of each request goes back to the receiver, which
logs it as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hub.people.phones import PhoneVault
from hub.plugins import PluginHost
from hub.webhooks.stored import StoredEvent, apply_events, store_events
from schemas import Record

__all__ = ["GroupWriter", "PendingApply", "PendingStore"]

log = logging.getLogger("siyu.webhooks")

MAX_STORE_BATCH = 500
"""The most callbacks one store transaction holds."""
APPLY_BATCH = 32
"""The most stored callbacks one apply transaction holds (bounds the wait of a store behind it)."""


@dataclass
class PendingStore:
    """One verified callback waiting for the next store transaction."""

    platform: str
    account_id: str
    dedupe_key: str
    payload: dict[str, Any]
    future: asyncio.Future[StoredEvent]


@dataclass
class PendingApply:
    """One stored callback (its follow-up done, if it had one) waiting to be applied."""

    event_id: int
    records: Sequence[Record]
    extra: Sequence[Record]
    future: asyncio.Future[None]


class GroupWriter:
    """One thread writing the receiver's callbacks, many at a time; started on first use.

    :param engine: the hub's database.
    :param host: announces what an apply changed.
    :param phones: hashes the phones of applied records.
    :param apply_batch: the most callbacks one apply transaction holds.
    """

    def __init__(self, engine: sa.Engine, host: PluginHost, phones: PhoneVault, *,
                 apply_batch: int = APPLY_BATCH) -> None:
        self.engine = engine
        self.host = host
        self.phones = phones
        self.apply_batch = apply_batch
        self.transactions = 0
        """Store transactions committed so far (a test sees the grouping)."""
        self._stores: deque[PendingStore] = deque()
        self._applies: deque[PendingApply] = deque()
        self._wake = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        if self._closing:
            raise RuntimeError("the webhook writer is closed")
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="siyu-webhook-writer", daemon=True)
            self._thread.start()

    async def store(self, platform: str, account_id: str, dedupe_key: str, payload: dict[str, Any]) -> StoredEvent:
        """Store one callback in the next group commit; returns once that transaction committed.

        :raises TypeError, ValueError: the payload cannot be stored (as :func:`store_events`).
        """
        self._start()
        future: asyncio.Future[StoredEvent] = asyncio.get_running_loop().create_future()
        with self._wake:
            self._stores.append(PendingStore(platform, account_id, dedupe_key, payload, future))
            self._wake.notify()
        return await future

    async def apply(self, event_id: int, records: Sequence[Record], extra: Sequence[Record] = ()) -> None:
        """Apply one stored callback (its follow-up done) in the next apply batch; never raises
        for a bad record (the row is marked ``failed``, as :func:`hub.webhooks.stored.apply_event`)."""
        self._start()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._wake:
            self._applies.append(PendingApply(event_id, records, extra, future))
            self._wake.notify()
        await future

    async def aclose(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join)

    # -- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stores and not self._applies and not self._closing:
                    self._wake.wait()
                if not self._stores and not self._applies:
                    return  # closing, nothing left
                stores = [self._stores.popleft() for _ in range(min(len(self._stores), MAX_STORE_BATCH))]
                applies = [] if stores else [self._applies.popleft()
                                             for _ in range(min(len(self._applies), self.apply_batch))]
            if stores:
                self._write_stores(stores)
            else:
                self._write_applies(applies)

    def _write_stores(self, batch: list[PendingStore]) -> None:
        try:
            outcomes: list[StoredEvent | BaseException] = list(store_events(
                self.engine, [(p.platform, p.account_id, p.dedupe_key, p.payload) for p in batch]))
            self.transactions += 1
        except Exception as exc:  # noqa: BLE001 - each request gets the failure
            outcomes = [exc] * len(batch)
        self._settle([p.future for p in batch], outcomes)

    def _write_applies(self, batch: list[PendingApply]) -> None:
        try:
            apply_events(self.engine, self.host, self.phones, [(p.event_id, p.records, p.extra) for p in batch])
            outcomes: list[Any] = [None] * len(batch)
        except Exception as exc:  # noqa: BLE001 - apply_events records failures itself; this is the database gone
            log.warning("applying %d webhook event(s) failed (%s); left pending", len(batch), type(exc).__name__)
            outcomes = [None] * len(batch)
        self._settle([p.future for p in batch], outcomes)

    @staticmethod
    def _settle(futures: list[asyncio.Future[Any]], outcomes: Sequence[Any]) -> None:
        """Hand each waiting request its outcome, in its own event loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for future, outcome in zip(futures, outcomes, strict=True):
            by_loop.setdefault(future.get_loop(), []).append((future, outcome))

        def settle(pairs: list[tuple[asyncio.Future[Any], Any]]) -> None:
            for future, outcome in pairs:
                if future.done():  # its request went away (a cancelled task)
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

        for loop, pairs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(settle, pairs)
