"""The daemon's own table: one row per scheduled job, its last run and when it is due next.

``siyu daemon`` writes it; ``siyu status``, ``GET /healthz`` and ``GET /metrics`` read it, so
that every daemon sharing a database (and any command run beside them) sees the same state.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from schemas.tables.columns import _code, _time, utcnow

__all__ = ["DaemonJobRow"]


class DaemonJobRow(SQLModel, table=True):
    """One job: ``sync:<platform>:<account>:<stream>``, ``apply`` or ``outbox``.

    ``outcome`` is ``ok``, ``error`` or ``running`` (a run started and has not finished, or its
    daemon died); ``failures`` counts the failed runs in a row, which set the back-off.
    """

    __tablename__ = "daemon_jobs"

    name: str = Field(primary_key=True, max_length=255)
    kind: str = _code(16)
    platform: str | None = Field(default=None, max_length=64)
    account_id: str | None = Field(default=None, max_length=191)
    stream: str | None = Field(default=None, max_length=32)
    outcome: str | None = Field(default=None, max_length=16)
    error: str | None = None
    owner: str | None = Field(default=None, max_length=255)
    runs: int = Field(default=0, nullable=False)
    failures: int = Field(default=0, nullable=False)
    duration_seconds: float | None = None
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    last_ok_at: datetime | None = _time()
    next_due_at: datetime | None = _time()
    updated_at: datetime = _time(nullable=False, default_factory=utcnow)
