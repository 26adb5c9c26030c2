"""The daemon's jobs and when each is due.

One sync job per configured account and stream (``sync:<platform>:<account>:<stream>``), one
``apply`` job (callbacks stored by the receiver, stitching, tiers, points) and one ``outbox`` job.
A sync job is due ``sync_interval_seconds`` after its last start (the account's own value, else
``[daemon]``'s), plus a random jitter so that accounts do not all call at once; a failed run is
tried again sooner, after a back-off that doubles with each failure in a row and never exceeds
the interval.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.config import Settings
from hub.plugins import PluginHost
from hub.sync.engine import STREAMS

__all__ = ["APPLY", "OUTBOX", "SYNC", "Job", "next_due", "plan_jobs"]

SYNC, APPLY, OUTBOX = "sync", "apply", "outbox"


@dataclass(frozen=True)
class Job:
    """One scheduled job.

    :param name: its unique name, the key of its ``daemon_jobs`` row.
    :param kind: ``sync``, ``apply`` or ``outbox``.
    :param interval: seconds between runs.
    :param jitter: random seconds (at most) added to each due time.
    """

    name: str
    kind: str
    interval: float
    jitter: float = 0.0
    platform: str | None = None
    account_id: str | None = None
    stream: str | None = None

    @property
    def account_key(self) -> tuple[str, str] | None:
        """``(platform, account_id)`` of a sync job, else ``None``."""
        return (self.platform, self.account_id) if self.platform and self.account_id else None


def sync_job_name(platform: str, account_id: str, stream: str) -> str:
    return f"{SYNC}:{platform}:{account_id}:{stream}"


def plan_jobs(host: PluginHost, settings: Settings) -> list[Job]:
    """Every job the configuration asks for, sync jobs first (in configuration order)."""
    daemon = settings.daemon
    jobs: list[Job] = []
    for account in settings.accounts:
        capabilities = host.adapter_class(account.platform).capabilities
        interval = account.sync_interval_seconds or daemon.sync_interval_seconds
        for stream, (capability, _method) in STREAMS.items():
            if capability in capabilities:
                jobs.append(Job(sync_job_name(account.platform, account.id, stream), SYNC, interval,
                                daemon.jitter_seconds, account.platform, account.id, stream))
    jobs.append(Job(APPLY, APPLY, daemon.apply_interval_seconds))
    jobs.append(Job(OUTBOX, OUTBOX, daemon.outbox_interval_seconds))
    return jobs


def next_due(job: Job, started: datetime, *, failures: int, backoff: float,
             rng: random.Random | None = None) -> datetime:
    """When ``job`` is due again, after a run that started at ``started``.

    :param failures: failed runs in a row, this one included (0: it succeeded).
    :param backoff: seconds to wait after the first failure; doubled for each further one,
        capped at the job's interval.
    """
    if failures:
        wait = min(job.interval, backoff * 2 ** min(failures - 1, 30))
    else:
        wait = job.interval
    jitter = (rng or random).uniform(0, job.jitter) if job.jitter else 0.0
    return started + timedelta(seconds=wait + jitter)
