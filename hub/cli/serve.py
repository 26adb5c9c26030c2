"""``siyu serve``: run the webhook receiver (:mod:`hub.webhooks.receiver`) with uvicorn."""

from __future__ import annotations

import gc
import logging

import typer
import uvicorn

from hub.cli.context import get_context
from hub.cli.output import JsonOption, emit, err_console
from hub.webhooks.receiver import DEFAULT_MAX_BODY, create_app

__all__ = ["serve", "settle_heap"]


def settle_heap() -> None:
    """For a server process, once started: what is loaded so far (plugins, SQLAlchemy, the app)
    lives as long as the process, so it is kept out of the garbage collector's full passes, and
    those are made 10x rarer (the third threshold; 10 by default). Each full pass walked the whole
    heap and stopped every request of a burst for 50-250 ms (benchmarks/bench_webhooks.py).
    Process-wide: called only by the commands that own the process (``siyu serve``, ``siyu daemon``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 100)


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
    max_body: int = typer.Option(DEFAULT_MAX_BODY, "--max-body", min=1, max=2**30, help="Largest callback body, in bytes."),
    as_json: bool = JsonOption,
) -> None:
    """Receive platform callbacks at /webhooks/PLATFORM/ACCOUNT (and answer /healthz)."""
    state = get_context(ctx)
    settings = state.settings
    engine = state.engine()
    app = create_app(state.host, settings, engine, max_body=max_body)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url = f"http://{host}:{port}"
    emit({"ok": True, "url": url, "webhooks": f"{url}/webhooks/PLATFORM/ACCOUNT", "healthz": f"{url}/healthz"},
         as_json, lambda d: err_console.print(f"siyu serve: receiving callbacks on {d['webhooks']}"))
    settle_heap()
    try:
        # uvicorn's access log prints query strings (signatures, nonces, echo strings): the
        # receiver logs each callback itself, without them.
        uvicorn.run(app, host=host, port=port, access_log=False, log_level="info", lifespan="on")
    finally:
        engine.dispose()
