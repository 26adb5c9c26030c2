"""The daemon itself: check, lock, start the jobs and the HTTP side, stop on a signal.

Start-up does everything that can fail for a reason the operator must fix (the configuration,
the database schema, the lock, the listening address) before serving anything, and raises a
:class:`hub.errors.HubError` with a one-line message.  Then the jobs and the receiver run in one
event loop until SIGTERM or SIGINT: the daemon takes no more work, the runs under way end at a
safe point (a sync's pages handed to the database commit, the outbox gives its item back), the
receiver finishes the callbacks in flight, and :func:`run_daemon` returns, within
``[daemon] stop_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
import uvicorn

from hub.config import Settings
from hub.daemon.local import DaemonLock, DaemonRefused, LocalScheduler, lock_path
from hub.daemon.metrics import DaemonMetrics
from hub.daemon.schedule import plan_jobs
from hub.daemon.server import build_app
from hub.daemon.work import Work
from hub.plugins import PluginHost

__all__ = ["JsonFormatter", "configure_logging", "listen", "run_daemon"]

log = logging.getLogger("siyu.daemon")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``at``, ``level``, ``logger``, ``message``."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
               "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc, ensure_ascii=False)


def configure_logging(json_logs: bool) -> None:
    """Log to stderr, as text or (``json_logs``) JSON lines; called by ``siyu daemon`` only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def listen(host: str, port: int) -> socket.socket:
    """A bound listening socket, or :class:`DaemonRefused` naming the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise DaemonRefused(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (everywhere but Windows), else the standard one."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return None
    return uvloop.new_event_loop


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_daemon(host: PluginHost, settings: Settings, engine: sa.Engine, *, listen_host: str = "127.0.0.1",
               port: int = 8000, ready: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Run the daemon until SIGTERM or SIGINT; returns the exit code (0 after a clean stop).

    :param host: the plugins.
    :param settings: the checked configuration.
    :param engine: the database, migrated.
    :param listen_host: the interface of the HTTP side; :param port: its port (0: any free one).
    :param ready: called once everything is started, with the URLs served.
    :raises DaemonRefused: another daemon holds a SQLite database, or the address is taken.
    """
    lock: DaemonLock | None = None
    path = lock_path(engine.url)
    if engine.dialect.name == "sqlite":
        if path is None:
            raise DaemonRefused("the daemon needs a database file or PostgreSQL, not an in-memory database")
        lock = DaemonLock(path)
        lock.acquire()
    try:
        sock = listen(listen_host, port)
        try:
            # uvloop where installed: the loop `siyu serve` gets from uvicorn, for the same receiver
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                return runner.run(_main(host, settings, engine, sock, ready))
        finally:
            sock.close()
    finally:
        if lock is not None:
            lock.release()


async def _main(host: PluginHost, settings: Settings, engine: sa.Engine, sock: socket.socket,
                ready: Callable[[dict[str, Any]], None] | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    metrics = DaemonMetrics(engine)
    work = Work(host, settings, engine, metrics)
    jobs = plan_jobs(host, settings)
    if engine.dialect.name == "postgresql":
        from hub.daemon.engine_pg import PgScheduler

        scheduler: Any = PgScheduler(jobs, work, engine, metrics, owner=owner_name(), settings=settings)
        engine_name = "procrastinate"
    else:
        scheduler = LocalScheduler(jobs, work, engine, metrics, owner=owner_name(),
                                   backoff=settings.daemon.failure_backoff_seconds)
        engine_name = "local"
    app = build_app(host, settings, engine, metrics, running=lambda: scheduler.running,
                    on_stored=scheduler.wake_apply, engine_name=engine_name)
    timeout = settings.daemon.stop_timeout_seconds
    server = _Server(uvicorn.Config(app, access_log=False, log_config=None, lifespan="on",
                                    timeout_graceful_shutdown=max(1, int(timeout / 2))))
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="http")
    scheduling = asyncio.create_task(scheduler.run(), name="scheduler")
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    address = sock.getsockname()
    url = f"http://{address[0]}:{address[1]}"
    log.info("siyu daemon %s: %d job(s), %s jobs, serving %s", owner_name(), len(jobs), engine_name, url)
    if ready is not None:
        ready({"ok": True, "pid": os.getpid(), "url": url, "engine": engine_name, "jobs": len(jobs),
               "healthz": f"{url}/healthz", "metrics": f"{url}/metrics", "webhooks": f"{url}/webhooks/PLATFORM/ACCOUNT"})
    waiting = asyncio.create_task(stop.wait())
    await asyncio.wait({waiting, serving, scheduling}, return_when=asyncio.FIRST_COMPLETED)
    log.info("siyu daemon: stopping")
    scheduler.stop()
    server.should_exit = True
    done, pending = await asyncio.wait({serving, scheduling}, timeout=timeout)
    waiting.cancel()
    for task in pending:
        log.warning("siyu daemon: %s did not stop within %ss; cancelled", task.get_name(), timeout)
        task.cancel()
    failed = [t for t in done if not t.cancelled() and t.exception() is not None]
    for task in failed:
        exc = task.exception()
        log.error("siyu daemon: %s failed: %s", task.get_name(), type(exc).__name__)
    return 1 if failed or pending else 0
