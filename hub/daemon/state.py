"""Each job's last run, kept in ``daemon_jobs``, and the status read from it.

The daemon writes a row when a run starts (``outcome = running``) and when it ends (``ok`` or
``error``, its duration, the next due time).  ``siyu status``, ``GET /healthz`` and the gauges
of ``GET /metrics`` all read :func:`snapshot`, so they agree with one another and with every
other daemon on the same database.

Figures, per job:

* ``duration_seconds`` — how long its last finished run took;
* ``lag_seconds`` — seconds since it last finished successfully (``None`` before its first
  success): how stale what it keeps current is;
* ``overdue_seconds`` — how long past its due time it is without having started (0 when on time);
* ``failures`` — failed runs in a row (0 after a success).

And for the outbox: ``depth`` (items pending or being sent), ``oldest_age_seconds`` (the age of
the oldest of them) and ``dead``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from hub.daemon.schedule import SYNC, Job
from schemas.tables import DaemonJobRow, OutboxRow, utcnow

__all__ = ["interrupt_running", "mark_finished", "mark_started", "register_jobs", "snapshot"]

jobs_t = DaemonJobRow.__table__
outbox_t = OutboxRow.__table__
MAX_ERROR_LENGTH = 500
INTERRUPTED = "interrupted"


def register_jobs(engine: sa.Engine, jobs: Iterable[Job], now: datetime | None = None) -> dict[str, datetime]:
    """Make sure each job has its row (a new one is due at once) and drop the rows of sync jobs
    no longer configured; returns each job's next due time.
    """
    now = now or utcnow()
    jobs = list(jobs)
    names = {job.name for job in jobs}
    due: dict[str, datetime] = {}
    with engine.begin() as conn:
        existing = {row.name: row.next_due_at for row in conn.execute(sa.select(jobs_t.c.name, jobs_t.c.next_due_at))}
        for job in jobs:
            if job.name not in existing:  # another daemon starting at the same moment may insert it first
                insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(jobs_t)
                conn.execute(insert.values(
                    name=job.name, kind=job.kind, platform=job.platform, account_id=job.account_id,
                    stream=job.stream, runs=0, failures=0, next_due_at=now, updated_at=now,
                ).on_conflict_do_nothing(index_elements=["name"]))
            due[job.name] = existing.get(job.name) or now
        stale = [name for name in existing if name not in names and name.startswith(f"{SYNC}:")]
        if stale:
            conn.execute(jobs_t.delete().where(jobs_t.c.name.in_(stale)))
    return due


def interrupt_running(engine: sa.Engine, *, owner: str | None = None) -> int:
    """Mark runs left ``running`` (by a daemon that died, or by ``owner``) as interrupted, due now."""
    now = utcnow()
    where = [jobs_t.c.outcome == "running"]
    if owner is not None:
        where.append(jobs_t.c.owner == owner)
    with engine.begin() as conn:
        return conn.execute(jobs_t.update().where(*where).values(
            outcome=INTERRUPTED, error="the daemon running it stopped", next_due_at=now, updated_at=now)).rowcount


def mark_started(engine: sa.Engine, name: str, owner: str, started: datetime) -> None:
    """Record that a run of ``name`` started in daemon ``owner``."""
    with engine.begin() as conn:
        conn.execute(jobs_t.update().where(jobs_t.c.name == name).values(
            outcome="running", owner=owner, started_at=started, updated_at=started))


def mark_finished(engine: sa.Engine, name: str, *, error: str | None, started: datetime, finished: datetime,
                  next_due: datetime) -> None:
    """Record the end of a run: ``ok`` (``error`` is ``None``) or ``error``, and the next due time."""
    values: dict[str, Any] = dict(
        outcome="ok" if error is None else "error", error=None if error is None else error[:MAX_ERROR_LENGTH],
        finished_at=finished, duration_seconds=round((finished - started).total_seconds(), 3),
        next_due_at=next_due, runs=jobs_t.c.runs + 1, updated_at=finished,
        failures=0 if error is None else jobs_t.c.failures + 1)
    if error is None:
        values["last_ok_at"] = finished
    with engine.begin() as conn:
        conn.execute(jobs_t.update().where(jobs_t.c.name == name).values(**values))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _seconds(later: datetime, earlier: datetime | None) -> float | None:
    return None if earlier is None else round((later - earlier).total_seconds(), 3)


def snapshot(engine: sa.Engine, now: datetime | None = None) -> dict[str, Any]:
    """Every job's state and the outbox's depth, as ``siyu status --json`` prints them.

    :raises sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    now = now or utcnow()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(jobs_t).order_by(jobs_t.c.kind != SYNC, jobs_t.c.name)).mappings().all()
        waiting = conn.execute(
            sa.select(sa.func.count(), sa.func.min(outbox_t.c.inserted_at))
            .where(outbox_t.c.status.in_(("pending", "sending")))).one()
        dead = conn.execute(sa.select(sa.func.count()).where(outbox_t.c.status == "dead")).scalar_one()
    jobs = []
    for row in rows:
        due = row["next_due_at"]
        overdue = 0.0
        if due is not None and row["outcome"] != "running" and due < now:
            overdue = round((now - due).total_seconds(), 3)
        jobs.append({
            "name": row["name"], "kind": row["kind"], "platform": row["platform"], "account_id": row["account_id"],
            "stream": row["stream"], "outcome": row["outcome"], "error": row["error"], "owner": row["owner"],
            "runs": row["runs"], "failures": row["failures"], "duration_seconds": row["duration_seconds"],
            "started_at": _iso(row["started_at"]), "finished_at": _iso(row["finished_at"]),
            "last_ok_at": _iso(row["last_ok_at"]), "next_due_at": _iso(due),
            "lag_seconds": _seconds(now, row["last_ok_at"]), "overdue_seconds": overdue,
        })
    oldest = waiting[1]
    return {
        "at": now.isoformat(),
        "jobs": jobs,
        "outbox": {"depth": int(waiting[0]), "oldest_age_seconds": _seconds(now, oldest) if oldest else 0.0,
                   "dead": int(dead)},
    }
