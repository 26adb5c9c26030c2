"""``siyu daemon``: every job on schedule, the webhook receiver, ``/healthz`` and ``/metrics``
(:mod:`hub.daemon.service`)."""

from __future__ import annotations

import json
import sys

import typer

from hub.cli.context import get_context
from hub.cli.output import err_console

__all__ = ["daemon"]


def daemon(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface of the receiver, /healthz and /metrics."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    json_logs: bool = typer.Option(False, "--json-logs", help="Log JSON lines on stderr."),
) -> None:
    """Sync every account on schedule, apply callbacks within seconds, drain the outbox; until SIGTERM."""
    from hub.cli.serve import settle_heap
    from hub.daemon.service import configure_logging, run_daemon  # the server and the job engine: only here

    state = get_context(ctx)
    settings = state.settings  # a configuration error ends here: exit 1, nothing served
    engine = state.engine()
    configure_logging(json_logs)
    settle_heap()  # as siyu serve: the start-up heap out of the collector's full passes

    def ready(info: dict) -> None:
        if json_logs:
            print(json.dumps(info), flush=True)
        else:
            err_console.print(f"siyu daemon: pid {info['pid']}, {info['jobs']} jobs ({info['engine']}), "
                              f"serving {info['url']} (/webhooks, /healthz, /metrics)")
        sys.stderr.flush()

    try:
        code = run_daemon(state.host, settings, engine, listen_host=host, port=port, ready=ready)
    finally:
        engine.dispose()
    raise typer.Exit(code)
