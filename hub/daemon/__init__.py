"""``siyu daemon``: every job on schedule, unattended.

* :mod:`.schedule` — the jobs (each account's streams, applying, the outbox) and when each is due;
* :mod:`.state` — each job's last run in ``daemon_jobs``, and the status that ``siyu status``,
  ``GET /healthz`` and ``GET /metrics`` read;
* :mod:`.work` — what one run of a job does (calls the sync engine, ``apply_pending``, the
  outbox drainer);
* :mod:`.metrics` — the Prometheus registry of one daemon;
* :mod:`.server` — the webhook receiver plus ``/healthz`` and ``/metrics``;
* :mod:`.local` — the embedded scheduler (one asyncio loop, one run per job at a time) and the
  file lock that keeps a second daemon off a SQLite database;
* :mod:`.engine_pg` — several daemons on one PostgreSQL, through procrastinate;
* :mod:`.service` — the daemon itself: start, serve, stop on a signal.

Importing any of these has no side effect on the process: signal handlers, logging and locks
are set up by :func:`hub.daemon.service.run_daemon` only.
"""
