"""The Prometheus metrics of one daemon: one registry, served at ``GET /metrics``.

Counters and histograms count what this daemon did since it started; the gauges (``siyu_job_*``,
``siyu_outbox_*``, ``siyu_database_up``) are read from the database at each scrape, from the same
:func:`hub.daemon.state.snapshot` that ``siyu status --json`` prints, so the two always agree.

============================================  ==========================================================
metric                                        meaning
============================================  ==========================================================
siyu_sync_records_total{platform,stream,kind}  records a sync stored: kind inserted, updated, unchanged
siyu_sync_errors_total{platform,stream,kind}   sync runs that ended with an error: kind platform, database
siyu_retries_total{platform,reason}            HTTP requests retried, by reason (the error class)
siyu_api_calls_total{platform}                 HTTP requests put on the wire (token flows and retries too)
siyu_job_runs_total{kind,outcome}              runs of jobs that finished, by outcome ok / error
siyu_job_run_seconds{kind}                     how long runs took (histogram)
siyu_job_duration_seconds{job}                 the last finished run's duration (from the database)
siyu_job_lag_seconds{job}                      seconds since the job last succeeded (from the database)
siyu_job_overdue_seconds{job}                  seconds past its due time, not started (from the database)
siyu_job_failures{job}                         failed runs in a row (from the database)
siyu_outbox_depth                              outbox items pending or being sent
siyu_outbox_oldest_age_seconds                 age of the oldest of them
siyu_outbox_dead                               outbox items that were given up
siyu_outbox_items_total{outcome}               items this daemon sent (done), gave up (dead) or deferred
siyu_webhooks_received_total{platform}         callbacks acknowledged with a 2xx
siyu_webhooks_rejected_total{platform,reason}  callbacks refused, reason the HTTP status (401, 404, 413 …)
siyu_webhook_latency_seconds{platform}         from request to acknowledgement (histogram)
siyu_ledger_postings_total{source}             ledger postings by applying: source orders, points_events
siyu_database_up                               1 when the database answered the scrape, else 0
============================================  ==========================================================
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.daemon.state import snapshot

__all__ = ["CONTENT_TYPE", "DaemonMetrics"]

log = logging.getLogger("siyu.daemon")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_JOB_GAUGES = (("duration_seconds", "siyu_job_duration_seconds", "the last finished run's duration"),
               ("lag_seconds", "siyu_job_lag_seconds", "seconds since the job last succeeded"),
               ("overdue_seconds", "siyu_job_overdue_seconds", "seconds past its due time, not started"),
               ("failures", "siyu_job_failures", "failed runs in a row"))


class _StatusCollector(Collector):
    """Gauges read from the database at each scrape."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def describe(self) -> list[Metric]:
        return []  # no database read when the collector is registered

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("siyu_database_up", "1 when the database answered this scrape")
        try:
            state = snapshot(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics: the database did not answer (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for key, name, doc in _JOB_GAUGES:
            family = GaugeMetricFamily(name, doc, labels=["job"])
            for job in state["jobs"]:
                if job[key] is not None:
                    family.add_metric([job["name"]], float(job[key]))
            yield family
        outbox = state["outbox"]
        yield GaugeMetricFamily("siyu_outbox_depth", "outbox items pending or being sent", value=outbox["depth"])
        yield GaugeMetricFamily("siyu_outbox_oldest_age_seconds", "age of the oldest item pending or being sent",
                                value=outbox["oldest_age_seconds"])
        yield GaugeMetricFamily("siyu_outbox_dead", "outbox items that were given up", value=outbox["dead"])


class DaemonMetrics:
    """The counters and histograms of one daemon, and its registry.

    :param engine: where the gauges are read from at each scrape (``None``: counters only).
    """

    def __init__(self, engine: sa.Engine | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sync_records = Counter("siyu_sync_records", "records a sync stored", ["platform", "stream", "kind"],
                                    registry=r)
        self.sync_errors = Counter("siyu_sync_errors", "sync runs that ended with an error",
                                   ["platform", "stream", "kind"], registry=r)
        self.retries = Counter("siyu_retries", "HTTP requests retried", ["platform", "reason"], registry=r)
        self.api_calls = Counter("siyu_api_calls", "HTTP requests put on the wire", ["platform"], registry=r)
        self.job_runs = Counter("siyu_job_runs", "finished runs of jobs", ["kind", "outcome"], registry=r)
        self.job_seconds = Histogram("siyu_job_run_seconds", "how long runs took", ["kind"], registry=r,
                                     buckets=(0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))
        self.outbox_items = Counter("siyu_outbox_items", "outbox items handled", ["outcome"], registry=r)
        self.webhooks_received = Counter("siyu_webhooks_received", "callbacks acknowledged", ["platform"], registry=r)
        self.webhooks_rejected = Counter("siyu_webhooks_rejected", "callbacks refused", ["platform", "reason"],
                                         registry=r)
        self.webhook_latency = Histogram("siyu_webhook_latency_seconds", "from request to acknowledgement",
                                         ["platform"], registry=r,
                                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3, 10))
        self.ledger_postings = Counter("siyu_ledger_postings", "ledger postings by applying", ["source"], registry=r)
        if engine is not None:
            r.register(_StatusCollector(engine))

    def render(self) -> bytes:
        """The text exposition of every metric (reads the database for the gauges: call it off the loop)."""
        return generate_latest(self.registry)

    def count_sync(self, summary: Any) -> None:
        """Count one :class:`hub.sync.engine.StreamSummary`."""
        labels = (summary.platform, summary.stream)
        for kind in ("inserted", "updated", "unchanged"):
            self.sync_records.labels(*labels, kind).inc(getattr(summary, kind))
        for reason, count in summary.retry_reasons.items():
            self.retries.labels(summary.platform, reason).inc(count)
        if summary.error:
            kind = "database" if summary.error.startswith("database:") else "platform"
            self.sync_errors.labels(*labels, kind).inc()

    def count_apply(self, summary: Any) -> None:
        """Count one :class:`hub.sync.apply.ApplySummary`."""
        self.ledger_postings.labels("orders").inc(summary.orders_applied)
        self.ledger_postings.labels("points_events").inc(summary.points_events_applied)
