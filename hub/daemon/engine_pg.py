"""Several daemons on one PostgreSQL: the jobs run on procrastinate, an existing job engine.

* **One tick.**  A periodic procrastinate task, ``siyu.tick``, every :data:`TICK_CRON` (one
  second).  procrastinate defers a periodic task once per due time for the whole cluster
  (``procrastinate_periodic_defers``), so one tick runs per second, in whichever daemon is free.
  The tick defers ``siyu.run_job`` for each ``daemon_jobs`` row that is due and not running.
* **Once, one at a time.**  Each deferral carries ``lock`` and ``queueing_lock`` equal to the job's
  name: procrastinate never runs two jobs with one lock at once, and never queues a second one
  while one waits.  Beyond that, a run first *claims* its due time in ``daemon_jobs`` with one
  conditional ``UPDATE`` (``next_due_at`` equal to the due time it was deferred for, not
  running), so a due time is served at most once even when a tick deferred it again while the
  previous run was finishing.
* **A dead daemon.**  Workers send heartbeats (:data:`HEARTBEAT_SECONDS`).  The tick asks
  procrastinate for the jobs ``doing`` on workers silent for :data:`STALLED_SECONDS`; for each, it
  marks the ``daemon_jobs`` row ``interrupted`` and due now, then marks the procrastinate job
  ``failed``.  The next tick defers a fresh job, which a live daemon runs.  (Re-queueing the
  stalled job itself with procrastinate's ``retry_job`` collides with its ``queueing_lock`` when
  a tick already queued one — procrastinate issues #1446 and #1543 — and a cleanup task that
  takes a ``lock`` itself can hang, #1408; the tick takes no lock.)  A sync killed mid-run lost at
  most an uncommitted page; the fresh run resumes at the checkpoint.
* **Tables.**  procrastinate's tables live in the PostgreSQL schema ``procrastinate``, created by
  ``siyu db upgrade`` (:func:`hub.storage.database.apply_job_engine_schema`); its connections
  use that schema first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from hub.config import Settings
from hub.daemon.metrics import DaemonMetrics
from hub.daemon.schedule import APPLY, SYNC, Job, next_due
from hub.daemon.state import INTERRUPTED, interrupt_running, jobs_t, mark_finished, register_jobs
from hub.daemon.work import Work
from hub.storage.database import JOB_ENGINE_SCHEMA
from schemas.tables import utcnow

__all__ = ["HEARTBEAT_SECONDS", "STALLED_SECONDS", "TICK_CRON", "PgScheduler", "conninfo"]

log = logging.getLogger("siyu.daemon")
TICK_CRON = "* * * * * *"
"""Every second (croniter's sixth field is the second)."""
HEARTBEAT_SECONDS = 2.0
STALLED_SECONDS = 10.0
"""A worker silent this long is dead: its jobs are failed and deferred afresh."""
RETRY_SECONDS = 2.0
SHUTDOWN_GRACE_SECONDS = 0.5
"""On SIGTERM, runs under way are cancelled after this: a sync stops at a page boundary (the pages
handed to the database commit), the outbox gives its item back, and the run is due at once."""
RUN_JOB, TICK = "siyu.run_job", "siyu.tick"


def conninfo(url: sa.URL) -> str:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


FINISH_ATTEMPTS = 60
"""Tries to record a finished run while the database is away (a run left ``running`` is reset
when the worker starts again)."""


class PgScheduler:
    """Runs the jobs through procrastinate, sharing them with every daemon on the database.

    Same interface as :class:`hub.daemon.local.LocalScheduler`.

    :param jobs: the jobs of the configuration (every daemon should have the same).
    :param work: runs one job.
    :param engine: the database (PostgreSQL).
    :param metrics: counts runs.
    :param owner: this daemon's name (``host:pid``).
    :param settings: ``[daemon]`` sets the back-off and the stop timeout.
    """

    def __init__(self, jobs: list[Job], work: Work, engine: sa.Engine, metrics: DaemonMetrics, *, owner: str,
                 settings: Settings) -> None:
        import procrastinate

        self.jobs = {job.name: job for job in jobs}
        self.work = work
        self.engine = engine
        self.metrics = metrics
        self.owner = owner
        self.backoff = settings.daemon.failure_backoff_seconds
        self.running = False
        self._stopping = asyncio.Event()
        self._failures: dict[str, int] = {}
        connector = procrastinate.PsycopgConnector(
            conninfo=conninfo(engine.url), kwargs={"options": f"-c search_path={JOB_ENGINE_SCHEMA}"},
            min_size=1, max_size=4)
        self.app = procrastinate.App(connector=connector)
        self.run_job = self.app.task(name=RUN_JOB)(self._run_job)
        self.tick = self.app.periodic(cron=TICK_CRON, periodic_id="siyu")(self.app.task(name=TICK)(self._tick))

    def wake_apply(self) -> None:
        """Make the apply job due now and defer it (a callback was stored)."""
        if self.running:
            asyncio.get_running_loop().create_task(self._wake(APPLY))

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Register the jobs, then work as one procrastinate worker until :meth:`stop`."""
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(register_jobs, self.engine, self.jobs.values())
                break
            except SQLAlchemyError as exc:
                log.warning("the database does not answer (%s); waiting", type(exc).__name__)
                await self._pause(RETRY_SECONDS)
        while not self._stopping.is_set():
            try:
                # runs this daemon left "running" (its worker stopped under them, the database
                # away) are over: due again, or their job would never be deferred again
                await asyncio.to_thread(interrupt_running, self.engine, owner=self.owner)
                await self._work()
            except Exception as exc:  # noqa: BLE001 - the database went away: wait, then work again
                self.running = False
                log.warning("the job engine stopped (%s); starting it again", type(exc).__name__)
                await self._pause(RETRY_SECONDS)
        with contextlib.suppress(SQLAlchemyError):
            await asyncio.to_thread(interrupt_running, self.engine, owner=self.owner)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _work(self) -> None:
        async with self.app.open_async():
            worker = asyncio.create_task(self.app.run_worker_async(
                name=self.owner, concurrency=min(len(self.jobs) + 1, 8), install_signal_handlers=False,
                update_heartbeat_interval=HEARTBEAT_SECONDS, stalled_worker_timeout=STALLED_SECONDS,
                shutdown_graceful_timeout=SHUTDOWN_GRACE_SECONDS, delete_jobs="successful"))
            self.running = True
            stopping = asyncio.create_task(self._stopping.wait())
            try:
                await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self.running = False
                stopping.cancel()
                if not worker.done():
                    worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker  # a worker that failed raises here, and is started again

    async def _defer(self, name: str, due: datetime) -> None:
        from procrastinate.exceptions import AlreadyEnqueued

        with contextlib.suppress(AlreadyEnqueued):
            await self.run_job.configure(lock=name, queueing_lock=name).defer_async(name=name, due=due.isoformat())

    async def _wake(self, name: str) -> None:
        with contextlib.suppress(Exception):
            due = await asyncio.to_thread(self._make_due, name)
            if due is not None:
                await self._defer(name, due)

    def _make_due(self, name: str) -> datetime | None:
        now = utcnow()
        with self.engine.begin() as conn:
            done = conn.execute(jobs_t.update().where(jobs_t.c.name == name, jobs_t.c.next_due_at > now,
                                                      sa.func.coalesce(jobs_t.c.outcome, "") != "running")
                                .values(next_due_at=now)).rowcount
        return now if done else None

    async def _tick(self, timestamp: int) -> None:
        """Fail the jobs of dead daemons, then defer every job that is due."""
        from procrastinate.jobs import Status

        for job in await self.app.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_SECONDS):
            name = job.task_kwargs.get("name") if job.task_name == RUN_JOB else None
            if isinstance(name, str):
                await asyncio.to_thread(self._interrupt, name)
            assert job.id is not None
            await self.app.job_manager.finish_job_by_id_async(job_id=job.id, status=Status.FAILED, delete_job=False)
            log.warning("%s: its daemon stopped answering; failed, to be deferred afresh", name or job.task_name)
        now = utcnow()
        with self.engine.connect() as conn:
            due = conn.execute(sa.select(jobs_t.c.name, jobs_t.c.next_due_at).where(
                jobs_t.c.next_due_at <= now, sa.func.coalesce(jobs_t.c.outcome, "") != "running")).all()
        for row in due:
            if row.name in self.jobs:
                await self._defer(row.name, row.next_due_at)

    def _interrupt(self, name: str) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(jobs_t.update().where(jobs_t.c.name == name, jobs_t.c.outcome == "running").values(
                outcome=INTERRUPTED, error="the daemon running it stopped", next_due_at=now, updated_at=now))

    def _claim(self, name: str, due: datetime, started: datetime) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(jobs_t.update().where(
                jobs_t.c.name == name, jobs_t.c.next_due_at == due,
                sa.func.coalesce(jobs_t.c.outcome, "") != "running",
            ).values(outcome="running", owner=self.owner, started_at=started, updated_at=started)).rowcount == 1

    async def _run_job(self, name: str, due: str) -> None:
        """One run of job ``name`` for its due time ``due``, unless that due time was served."""
        job = self.jobs.get(name)
        started = utcnow()
        if job is None or not await asyncio.to_thread(self._claim, name, datetime.fromisoformat(due), started):
            return
        clock = time.monotonic()
        try:
            error = await self.work.run(job, woken=job.kind == APPLY)
        except asyncio.CancelledError:
            with contextlib.suppress(SQLAlchemyError):  # else the worker's restart does it
                await asyncio.to_thread(interrupt_running, self.engine, owner=self.owner)
            raise
        except Exception as exc:  # noqa: BLE001 - the database went away mid-run: an error, due again
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        self._failures[name] = self._failures.get(name, 0) + 1 if error else 0
        following = next_due(job, started, failures=self._failures[name], backoff=self.backoff)
        finished = utcnow()
        for _ in range(FINISH_ATTEMPTS):  # the run is over: record it once the database answers again
            try:
                await asyncio.to_thread(mark_finished, self.engine, name, error=error, started=started,
                                        finished=finished, next_due=following)
                break
            except SQLAlchemyError:
                await self._pause(RETRY_SECONDS)
        self.metrics.job_runs.labels(job.kind, "error" if error else "ok").inc()
        self.metrics.job_seconds.labels(job.kind).observe(time.monotonic() - clock)
        log.info("ran %s due %s: %s", name, due, "error" if error else "ok")
        if job.kind == SYNC and error is None:
            await self._wake(APPLY)

