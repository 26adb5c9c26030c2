"""The embedded scheduler: every job in one asyncio loop, and the lock that allows one daemon per
SQLite database.

Each job has its own task that sleeps until the job is due, runs it and records the run, so a job
never runs twice at once.  Sync jobs run at most :data:`SYNC_CONCURRENCY` at a time, and the
streams of one account one after another (they share its rate limits).  The apply job is also
woken as soon as a callback was stored or a sync finished.  Stopping cancels the tasks: a sync
commits the pages it handed to the database (a page and its checkpoint are one transaction),
the outbox drainer gives its item back, and the runs cut short are marked ``interrupted`` and
due at once, for the next start.

The lock is an OS file lock (``flock``) on ``<database file>.daemon.lock``: the kernel releases it
when the process ends, however it ends, so a crashed daemon never blocks the next one.  The file
names the daemon holding it, for the message that refuses a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import time
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from hub.daemon.metrics import DaemonMetrics
from hub.daemon.schedule import APPLY, SYNC, Job, next_due
from hub.daemon.state import interrupt_running, mark_finished, mark_started, register_jobs
from hub.daemon.work import Work
from hub.errors import HubError
from schemas.tables import utcnow

__all__ = ["SYNC_CONCURRENCY", "DaemonLock", "DaemonRefused", "LocalScheduler", "lock_path"]

log = logging.getLogger("siyu.daemon")
SYNC_CONCURRENCY = 4
"""Sync jobs (accounts' streams) running at once in one daemon."""
DATABASE_RETRY_SECONDS = 2.0


class DaemonRefused(HubError):
    """Another daemon holds the database, or the daemon cannot start here."""


def lock_path(database_url: str | sa.URL) -> Path | None:
    """The lock file of a SQLite database (``None`` for other databases and in-memory ones)."""
    url = sa.make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(f"{url.database}.daemon.lock")


class DaemonLock:
    """An exclusive ``flock`` on a file, naming its holder.

    :param path: the lock file (created if missing, never deleted: deleting would race).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`DaemonRefused` naming the daemon that has it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            raise DaemonRefused(f"another siyu daemon is running on this database ({holder}); "
                                f"lock file {self.path}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {utcnow():%Y-%m-%dT%H:%M:%SZ}\n"
                  .encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


class LocalScheduler:
    """Runs every job in this process's event loop until :meth:`stop`.

    :param jobs: the jobs (:func:`hub.daemon.schedule.plan_jobs`).
    :param work: runs one job.
    :param engine: where each run is recorded.
    :param metrics: counts runs.
    :param owner: this daemon's name in ``daemon_jobs.owner``.
    :param backoff: seconds before a failed job is tried again; doubles per failure in a row.
    """

    def __init__(self, jobs: list[Job], work: Work, engine: sa.Engine, metrics: DaemonMetrics, *, owner: str,
                 backoff: float) -> None:
        self.jobs = jobs
        self.work = work
        self.engine = engine
        self.metrics = metrics
        self.owner = owner
        self.backoff = backoff
        self.running = False
        self._stopping = asyncio.Event()
        self._wake = {job.name: asyncio.Event() for job in jobs if job.kind == APPLY}
        self._accounts = {job.account_key: asyncio.Lock() for job in jobs if job.account_key}
        self._gate = asyncio.Semaphore(SYNC_CONCURRENCY)
        self._failures = {job.name: 0 for job in jobs}

    def wake_apply(self) -> None:
        """Run the apply job now (a callback was stored, a sync finished)."""
        for event in self._wake.values():
            event.set()

    def stop(self) -> None:
        """Take no more work; :meth:`run` cancels the runs under way and returns."""
        self._stopping.set()

    async def run(self) -> None:
        """Register the jobs, then run them until :meth:`stop`."""
        due = await self._startup()
        if due is None:
            return
        self.running = True
        tasks = [asyncio.create_task(self._loop(job, due[job.name]), name=job.name) for job in self.jobs]
        try:
            await self._stopping.wait()
        finally:
            self.running = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(SQLAlchemyError):
                await asyncio.to_thread(interrupt_running, self.engine, owner=self.owner)

    async def _startup(self) -> dict[str, datetime] | None:
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(interrupt_running, self.engine)  # we hold the lock: left by a dead daemon
                return await asyncio.to_thread(register_jobs, self.engine, self.jobs)
            except SQLAlchemyError as exc:
                log.warning("the database does not answer (%s); waiting", type(exc).__name__)
                await self._pause(DATABASE_RETRY_SECONDS)
        return None

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _sleep_until(self, job: Job, due: datetime) -> bool:
        """Sleep until ``due``; returns ``True`` when woken early."""
        wake = self._wake.get(job.name)
        delay = (due - utcnow()).total_seconds()
        if delay <= 0:
            return bool(wake and wake.is_set())
        if wake is None:
            await asyncio.sleep(delay)
            return False
        try:
            await asyncio.wait_for(wake.wait(), delay)
            return True
        except TimeoutError:
            return False

    async def _loop(self, job: Job, due: datetime) -> None:
        while True:
            woken = await self._sleep_until(job, due)
            if job.name in self._wake:
                self._wake[job.name].clear()
            due = await self._run_once(job, woken)

    async def _record(self, fn, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        try:
            await asyncio.to_thread(fn, self.engine, *args, **kwargs)
        except SQLAlchemyError as exc:  # the database is away: the run goes on, unrecorded
            log.warning("cannot record a run (%s)", type(exc).__name__)

    async def _run_once(self, job: Job, woken: bool) -> datetime:
        if job.kind == SYNC:
            async with self._gate, self._accounts[job.account_key]:  # type: ignore[index]
                started, clock = utcnow(), time.monotonic()
                await self._record(mark_started, job.name, self.owner, started)
                error = await self.work.run(job)
        else:
            started, clock = utcnow(), time.monotonic()
            await self._record(mark_started, job.name, self.owner, started)
            error = await self.work.run(job, woken=woken)
        self._failures[job.name] = self._failures[job.name] + 1 if error else 0
        due = next_due(job, started, failures=self._failures[job.name], backoff=self.backoff)
        await self._record(mark_finished, job.name, error=error, started=started, finished=utcnow(), next_due=due)
        self.metrics.job_runs.labels(job.kind, "error" if error else "ok").inc()
        self.metrics.job_seconds.labels(job.kind).observe(time.monotonic() - clock)
        if job.kind == SYNC and error is None:
            self.wake_apply()
        return due
