"""What one run of each job does, through the hub's public functions.

* a sync job: :func:`hub.sync.engine.sync_accounts` for its account and stream (each page and its
  checkpoint commit together, so a run stopped at any point resumes without a gap);
* the apply job: :func:`hub.sync.apply.apply_pending` (buyers, stitching, orders' and points
  events' points, cards), then the tiers of the fans that changed
  (:func:`hub.people.members.refresh_tiers`).  Callbacks themselves are processed by the receiver
  (:mod:`hub.webhooks.receiver`: at once, leftovers at start-up and every minute), which wakes
  this job after each one;
* the outbox job: a :class:`hub.outbox.drain.Drainer` with the ``[outbox]`` retry horizon.

Each returns the run's error in one line, or ``None``; none raises for a platform or database
fault, so one failing account never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa

from hub.config import Settings
from hub.daemon.metrics import DaemonMetrics
from hub.daemon.schedule import Job
from hub.outbox.drain import Drainer
from hub.people.members import refresh_tiers
from hub.plugins import PluginHost
from hub.sync.apply import apply_pending
from hub.sync.engine import sync_accounts
from schemas.tables import FanRow, utcnow

__all__ = ["CountingTransport", "Work"]

log = logging.getLogger("siyu.daemon")
fans_t = FanRow.__table__
TIER_MEMBERS_AT_ONCE = 1000
"""More members with changed fans than this: the tiers of every fan are recomputed in one pass."""
OUTBOX_BATCH = 200


class CountingTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, counting each request put on the wire into ``siyu_api_calls_total``."""

    def __init__(self, metrics: DaemonMetrics, platform: str) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._counter = metrics.api_calls.labels(platform)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._counter.inc()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


class Work:
    """Runs jobs for one daemon.

    :param host: the plugins.
    :param settings: the configuration.
    :param engine: the hub's database.
    :param metrics: where runs are counted.
    """

    def __init__(self, host: PluginHost, settings: Settings, engine: sa.Engine, metrics: DaemonMetrics) -> None:
        self.host = host
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self._tiers_since: datetime | None = None

    async def run(self, job: Job, *, woken: bool = False) -> str | None:
        """One run of ``job``; returns its error or ``None``."""
        try:
            if job.kind == "sync":
                return await self.sync(job)
            if job.kind == "apply":
                return await asyncio.to_thread(self.apply, woken)
            return await self.drain()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a run's failure is recorded; the daemon goes on
            log.warning("%s failed: %s", job.name, _one_line(exc))
            return _one_line(exc)

    async def sync(self, job: Job) -> str | None:
        assert job.platform and job.account_id and job.stream
        summaries = await sync_accounts(self.host, self.settings, self.engine, platform=job.platform,
                                        account_id=job.account_id, stream=job.stream,
                                        transport=CountingTransport(self.metrics, job.platform))
        errors = []
        for summary in summaries:
            self.metrics.count_sync(summary)
            if summary.error:
                errors.append(summary.error)
            log.info("%s: %d page(s), %d inserted, %d updated%s", job.name, summary.pages, summary.inserted,
                     summary.updated, f", error: {summary.error}" if summary.error else "")
        return "; ".join(errors)[:500] or None

    def apply(self, woken: bool = False) -> str | None:
        """Blocking: the pending work, then tiers."""
        started = utcnow()
        summary = apply_pending(self.engine, self.host, self.settings)
        self.metrics.count_apply(summary)
        worked = bool(summary.fans_stitched or summary.buyers_added or summary.orders_applied
                      or summary.points_events_applied or summary.cards_updated)
        if worked or woken or self._tiers_since is None:
            self._refresh_tiers(self._tiers_since)
            self._tiers_since = started - timedelta(seconds=1)
        return "; ".join(summary.errors)[:500] or None

    def _refresh_tiers(self, since: datetime | None) -> None:
        changed = fans_t.c.tier.is_(None)
        if since is not None:
            changed = sa.or_(changed, fans_t.c.updated_at >= since)
        with self.engine.connect() as conn:
            members = list(conn.execute(
                sa.select(fans_t.c.member_id).where(changed, fans_t.c.member_id.is_not(None)).distinct()
                .limit(TIER_MEMBERS_AT_ONCE + 1)).scalars())
        if len(members) > TIER_MEMBERS_AT_ONCE:
            refresh_tiers(self.engine, host=self.host)
            return
        for member_id in members:
            refresh_tiers(self.engine, host=self.host, member_id=member_id)

    async def drain(self) -> str | None:
        outbox = self.settings.outbox
        drainer = Drainer(self.engine, self.host, self.settings,
                          give_up_after=timedelta(hours=outbox.give_up_after_hours),
                          backoff=(outbox.retry_initial_seconds, outbox.retry_max_seconds))
        while True:
            summary = await drainer.drain(limit=OUTBOX_BATCH)
            for outcome, count in (("done", summary.sent), ("dead", summary.dead),
                                   ("deferred", summary.deferred), ("superseded", summary.superseded)):
                if count:
                    self.metrics.outbox_items.labels(outcome).inc(count)
            if summary.sent + summary.dead < OUTBOX_BATCH:
                return None
