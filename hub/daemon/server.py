"""The daemon's HTTP side: the webhook receiver, ``GET /healthz`` and ``GET /metrics``.

The receiver is :func:`hub.webhooks.receiver.create_app` unchanged; this module adds two routes
in front of it and wraps it to count callbacks (received, rejected by reason, latency) and to
wake the apply job once callbacks were stored and acknowledged (at most twice a second during a
burst, and always after its last callback).

``GET /healthz`` answers 200 with each job's last run when the database answers and the scheduler
runs, else 503 with the reason.  A platform that is down does not make the daemon unhealthy (a
restart would not help); it shows in the job's ``failures`` and ``error``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.config import Settings
from hub.daemon.metrics import CONTENT_TYPE, DaemonMetrics
from hub.daemon.state import snapshot
from hub.plugins import PluginHost
from hub.storage.database import database_reason
from hub.webhooks.receiver import create_app

__all__ = ["WebhookMeter", "build_app"]


WAKE_EVERY = 0.5
"""Seconds: ``on_stored`` is called at most once in each, and once more after the last callback."""


class WebhookMeter:
    """ASGI middleware: counts each ``/webhooks/{platform}/…`` request and calls ``on_stored``
    after callbacks were acknowledged (and the receiver processed them).

    A burst of callbacks wakes the apply job once per ``wake_every`` seconds, not once per
    callback (on PostgreSQL each wake is a transaction and a deferred job), and always once more
    after the last one, so none is left waiting for the job's schedule.

    :param app: the receiver.
    :param metrics: the daemon's metrics.
    :param on_stored: called after 2xx callbacks (wakes the apply job).
    :param wake_every: the least time between two calls of ``on_stored``, in seconds.
    """

    def __init__(self, app: ASGIApp, metrics: DaemonMetrics, on_stored: Callable[[], None], *,
                 wake_every: float = WAKE_EVERY) -> None:
        self.app = app
        self.metrics = metrics
        self.on_stored = on_stored
        self.wake_every = wake_every
        self._last_wake = -float("inf")
        self._wake_later: asyncio.TimerHandle | None = None

    def _stored(self) -> None:
        now = time.monotonic()
        if now - self._last_wake >= self.wake_every:
            self._wake()
        elif self._wake_later is None:  # one more, after the rest of this interval
            self._wake_later = asyncio.get_running_loop().call_later(
                self._last_wake + self.wake_every - now, self._wake)

    def _wake(self) -> None:
        if self._wake_later is not None:
            self._wake_later.cancel()
            self._wake_later = None
        self._last_wake = time.monotonic()
        self.on_stored()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = scope.get("path", "").split("/") if scope["type"] == "http" else []
        if len(parts) < 4 or parts[1] != "webhooks":
            await self.app(scope, receive, send)
            return
        platform = parts[2][:64]
        started = time.monotonic()
        status: list[int] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                self.metrics.webhook_latency.labels(platform).observe(time.monotonic() - started)
            await send(message)

        try:
            await self.app(scope, receive, sending)  # returns after the receiver's background apply
        finally:
            code = status[0] if status else 500
            if 200 <= code < 300:
                self.metrics.webhooks_received.labels(platform).inc()
                self._stored()
            else:
                self.metrics.webhooks_rejected.labels(platform, str(code)).inc()


def build_app(host: PluginHost, settings: Settings, engine: sa.Engine, metrics: DaemonMetrics, *,
              running: Callable[[], bool], on_stored: Callable[[], None], engine_name: str,
              max_body: int | None = None) -> ASGIApp:
    """The daemon's ASGI app.

    :param running: whether the scheduler is running (for ``/healthz``).
    :param on_stored: called after acknowledged callbacks (at most twice a second, and after the last).
    :param engine_name: how jobs are run (``local`` or ``procrastinate``), shown by ``/healthz``.
    """
    kwargs: dict[str, Any] = {"max_body": max_body} if max_body else {}
    # callbacks left pending (a crash, a follow-up that met a platform outage) are processed by the
    # receiver itself: at start-up and every minute
    receiver: Starlette = create_app(host, settings, engine, **kwargs)

    async def healthz(request: Request) -> Response:
        doc: dict[str, Any] = {"ok": True, "engine": engine_name, "scheduler": running()}
        try:
            state = await run_in_threadpool(snapshot, engine)
            doc["database"] = "ok"
            doc["jobs"] = [{k: job[k] for k in ("name", "outcome", "finished_at", "duration_seconds",
                                                  "next_due_at", "failures", "error")} for job in state["jobs"]]
            doc["outbox"] = state["outbox"]
        except sa.exc.SQLAlchemyError as exc:
            doc["ok"] = False
            doc["database"] = f"unreachable: {database_reason(exc) or type(exc).__name__}"[:300]
        if not doc["scheduler"]:
            doc["ok"] = False
        return JSONResponse(doc, status_code=200 if doc["ok"] else 503)

    async def metrics_page(request: Request) -> Response:
        return Response(await run_in_threadpool(metrics.render), media_type=CONTENT_TYPE)

    receiver.router.routes[0:0] = [Route("/healthz", healthz, methods=["GET"]),
                                   Route("/metrics", metrics_page, methods=["GET"])]
    return WebhookMeter(receiver, metrics, on_stored)
