"""The sync engine: every account's streams, page by page, each page and its checkpoint in one
transaction.

For each stream an adapter supports, the engine loads the checkpoint, fetches a page (under the
retry policy), and in ONE database transaction upserts the page's records and moves the
checkpoint to the page's ``next_cursor`` (pages that waited for the writer share that
transaction, and the checkpoint is the last one's).  Killing the process at any instant
therefore loses at most a page that was never committed, and the next run fetches it again: no
gap, no duplicate.
The next page is fetched while the current one is written, and no stream is ever held whole.
When a stream ends, its checkpoint is cleared, so the next run is a fresh pass (idempotent: the
unchanged records are counted, not rewritten), unless the last page names a ``resume_cursor``: a
stream read by update time resumes the next pass from its high-water mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from hub.adapter import Page
from hub.config import AccountSettings, Settings
from hub.errors import HubError, PermanentError
from hub.plugins import PluginHost
from hub.platform.account import AccountHandle, open_account
from hub.platform.retry import RetryCounter
from hub.storage.database import database_reason
from hub.sync.store import PageWrite, PageWriter, UpsertResult
from schemas import Capability, Record

__all__ = ["STREAMS", "ProgressCallback", "StreamSummary", "sync_accounts", "sync_stream"]

STREAMS: dict[str, tuple[Capability, str]] = {
    "fans": (Capability.FANS, "fetch_fans"),
    "orders": (Capability.ORDERS, "fetch_orders"),
    "points": (Capability.POINTS, "fetch_points"),
}
"""Stream name → the capability that provides it and the adapter method that reads it."""

_OWNER = attrgetter("platform", "account_id")
ProgressCallback = Callable[[str, str, str, int, int], None]


@dataclass
class StreamSummary:
    """What syncing one stream of one account did."""

    platform: str
    account_id: str
    stream: str
    pages: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    retries: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)
    api_calls: int = 0
    """Requests this stream put on the wire: token requests and retries included."""
    calls_per_1000: float | None = None
    """``api_calls`` per 1,000 records read (``None`` when none was read): what a platform's
    quota pays for the stream."""
    seconds: float = 0.0
    complete: bool = False
    resumed: bool = False
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_page(page: object, handle: AccountHandle, stream: str) -> Page[Record]:
    account = handle.account
    if not isinstance(page, Page):
        raise PermanentError(f"{stream}: adapter returned {type(page).__name__}, not a Page",
                             platform=account.platform, account_id=account.account_id)
    try:
        owners = set(map(_OWNER, page.items))  # every record's (platform, account_id), in one C loop
    except AttributeError:  # not a record
        owners = {None}
    if owners - {(account.platform, account.account_id)}:
        raise PermanentError(f"{stream}: a record does not belong to this account",
                             platform=account.platform, account_id=account.account_id)
    return page


async def _fetch(handle: AccountHandle, method: str, stream: str, cursor: str | None) -> Page[Record]:
    account = handle.account
    try:
        page = await handle.call(method, cursor)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors(include_input=False))
        raise PermanentError(f"{stream}: unexpected record shape ({exc.title}: {fields})",
                             platform=account.platform, account_id=account.account_id) from exc
    except (KeyError, TypeError) as exc:
        raise PermanentError(f"{stream}: unexpected response shape ({type(exc).__name__}: {exc})",
                             platform=account.platform, account_id=account.account_id) from exc
    return _check_page(page, handle, stream)


WRITES_IN_FLIGHT = 3
"""Pages planned and handed to the writer but not yet committed, at most (memory stays flat)."""

REQUEST_TURNS = 8
"""Turns of the event loop given to the next page's request before this page is planned, so that
the platform prepares it meanwhile: httpx, httpcore and anyio put a request on the wire in about
four.  Fewer only overlap less; nothing depends on it."""


@dataclass
class _Write:
    """One page on its way to the database: its write, then its outcome (a future)."""

    page: Page[Record]
    write: PageWrite
    task: asyncio.Future[UpsertResult]


class _WriteQueue:
    """A stream's pages on their way to its writer thread, in page order: the pages planned while
    the thread writes go together in its next transaction (:meth:`PageWriter.write`), and once a
    page failed none after it is written."""

    def __init__(self, writer: PageWriter, loop: asyncio.AbstractEventLoop) -> None:
        self.writer = writer
        self.loop = loop
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="siyu-writer")  # one thread: its caches stay warm
        self.waiting: list[_Write] = []
        self.writing = False
        self.failure: BaseException | None = None

    def add(self, page: Page[Record], write: PageWrite) -> _Write:
        """Queue a planned page; its ``task`` gets the page's outcome once its transaction ended."""
        queued = _Write(page, write, self.loop.create_future())
        if self.failure is not None:
            queued.task.set_exception(self.failure)
            return queued
        self.waiting.append(queued)
        if not self.writing:
            self._hand_over()
        return queued

    def close(self) -> None:
        self.thread.shutdown(wait=False)

    def _hand_over(self) -> None:
        batch, self.waiting = self.waiting, []
        self.writing = True
        job = self.loop.run_in_executor(self.thread, self.writer.write, [queued.write for queued in batch])
        job.add_done_callback(partial(self._written, batch))

    def _written(self, batch: list[_Write], job: asyncio.Future[list[UpsertResult | SQLAlchemyError]]) -> None:
        self.writing = False
        error = RuntimeError("the write was cancelled") if job.cancelled() else job.exception()
        for queued, outcome in zip(batch, [error] * len(batch) if error else job.result(), strict=True):
            if isinstance(outcome, BaseException):
                self.failure = self.failure or outcome
                queued.task.set_exception(outcome)
            else:
                queued.task.set_result(outcome)
        if self.failure is not None:
            for queued in self.waiting:
                queued.task.set_exception(self.failure)
            self.waiting = []
        elif self.waiting:
            self._hand_over()


async def sync_stream(
    handle: AccountHandle,
    engine: sa.Engine,
    host: PluginHost,
    settings: Settings,
    stream: str,
    *,
    full: bool = False,
    max_pages: int | None = None,
    progress: ProgressCallback | None = None,
) -> StreamSummary:
    """Sync one stream of one open account to its end, to ``max_pages`` pages, or to the first
    error that is not retried.

    Three things overlap: the next page is fetched (and validated) while this one is planned,
    and pages are committed by the stream's own writer thread, in order, while the event loop
    goes on; pages planned while the writer is busy are committed together, in one transaction,
    when it is free.  What a page's write is belongs to the store
    (:class:`hub.sync.store.PageWriter`: the plan, the check in the transaction, the checkpoint,
    the announcement); this loop only orders the writes.
    Each commit holds whole pages and the checkpoint of the last, and a page is committed only
    after every page before it was: whatever instant the process dies at, the database holds
    pages 1..k and checkpoint k.
    """
    capability, method = STREAMS[stream]
    account = handle.account
    summary = StreamSummary(account.platform, account.account_id, stream)
    started = time.monotonic()
    handle.retries = RetryCounter()
    calls_before = handle.calls
    in_flight: deque[_Write] = deque()
    writer = PageWriter(engine, settings.phones, host, account.platform, account.account_id, stream)
    writes = _WriteQueue(writer, asyncio.get_running_loop())

    def committed(done: _Write) -> None:
        result = done.task.result()
        writer.announce(result)
        summary.pages += 1
        summary.inserted += result.inserted
        summary.updated += result.updated
        summary.unchanged += result.unchanged
        summary.notes.extend(n for n in done.page.notes if n not in summary.notes)
        if progress:
            progress(account.platform, account.account_id, stream, summary.pages, len(done.page.items))

    async def settle(keep: int) -> None:
        """Wait until at most ``keep`` pages are uncommitted, counting the committed ones."""
        while in_flight and (len(in_flight) > keep or in_flight[0].task.done()):
            await asyncio.wait([in_flight[0].task])
            committed(in_flight.popleft())

    pending: asyncio.Future[Page[Record]] | None = None
    try:
        cursor = None if full else writer.checkpoint()
        summary.resumed = cursor is not None
        pending = asyncio.ensure_future(_fetch(handle, method, stream, cursor))
        fetched = 0
        while True:
            page = await pending
            pending = None
            fetched += 1
            following = page.next_cursor
            if following is not None and following == cursor:
                raise PermanentError(f"{stream}: the cursor did not advance", platform=account.platform,
                                     account_id=account.account_id)
            more = max_pages is None or fetched < max_pages
            if following is not None and more:
                pending = asyncio.ensure_future(_fetch(handle, method, stream, following))
                for _ in range(REQUEST_TURNS):
                    await asyncio.sleep(0)
            checkpoint = page.next_cursor if page.next_cursor is not None else page.resume_cursor
            # the page and its checkpoint, together
            in_flight.append(writes.add(page, writer.plan(page.items, checkpoint)))
            await settle(WRITES_IN_FLIGHT - 1)
            if following is None:
                await settle(0)
                summary.complete = True
                break
            if not more:
                break
            cursor = following
        await settle(0)
    except HubError as exc:
        summary.error = str(exc)
    except SQLAlchemyError as exc:  # this account's stream stops; the others go on
        summary.error = _database_error(exc)
    finally:
        if pending is not None:
            pending.cancel()
        try:
            await _drain(in_flight, committed, summary)
        finally:
            writes.close()  # its last write is done, or the process is ending
    summary.retries = handle.retries.total
    summary.retry_reasons = dict(handle.retries.by_reason)
    summary.api_calls = handle.calls - calls_before
    records = summary.inserted + summary.updated + summary.unchanged
    summary.calls_per_1000 = round(summary.api_calls * 1000 / records, 1) if records else None
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


async def _drain(in_flight: deque[_Write], committed: Callable[[_Write], None], summary: StreamSummary) -> None:
    """After an error: pages already handed to the writer still commit (they are whole and in
    order) and are counted; the first that fails stops the rest and is the stream's error."""
    while in_flight:
        done = in_flight.popleft()
        try:
            await asyncio.shield(done.task)
        except SQLAlchemyError as exc:
            summary.error = summary.error or _database_error(exc)
            for rest in in_flight:  # each fails too, without writing: the page before it failed
                with contextlib.suppress(Exception):
                    await asyncio.shield(rest.task)
            in_flight.clear()
            return
        committed(done)


def _database_error(exc: SQLAlchemyError) -> str:
    reason = database_reason(exc)
    return f"database: {type(exc).__name__}{': ' + reason if reason else ''} (the page was not stored)"


def _streams_for(host: PluginHost, account: AccountSettings, wanted: str | None) -> list[str]:
    capabilities = host.adapter_class(account.platform).capabilities
    return [s for s, (cap, _) in STREAMS.items() if cap in capabilities and (wanted is None or s == wanted)]


async def sync_accounts(
    host: PluginHost,
    settings: Settings,
    engine: sa.Engine,
    *,
    platform: str | None = None,
    account_id: str | None = None,
    stream: str | None = None,
    full: bool = False,
    max_pages: int | None = None,
    concurrency: int = 4,
    progress: ProgressCallback | None = None,
    **open_kwargs: Any,
) -> list[StreamSummary]:
    """Sync every matching account's streams; accounts run concurrently, at most ``concurrency`` at once."""
    accounts = [a for a in settings.accounts
                if (platform is None or a.platform == platform) and (account_id is None or a.id == account_id)]
    gate = asyncio.Semaphore(concurrency)

    async def one(account: AccountSettings) -> list[StreamSummary]:
        async with gate:
            out = []
            try:
                async with open_account(host, settings, account, engine=engine, **open_kwargs) as handle:
                    for name in _streams_for(host, account, stream):
                        out.append(await sync_stream(handle, engine, host, settings, name, full=full,
                                                     max_pages=max_pages, progress=progress))
            except HubError as exc:
                out.append(StreamSummary(account.platform, account.id, stream or "*", error=str(exc)))
            return out

    results = await asyncio.gather(*(one(a) for a in accounts))
    return [s for group in results for s in group]
