"""Test helpers and a conformance kit for plugin authors (a ``pytest11`` plugin).

Cheap to import: pytest imports this module in every run wherever siyu-hub is installed, so it
defines fixtures only, all opt-in (none is autouse), and imports servers lazily.

``serve_asgi(app)`` runs an ASGI app (a sandbox) on a free loopback port in a thread::

    with serve_asgi(make_app()) as base_url:
        ...
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

__all__ = ["free_port", "serve_asgi", "siyu_sandbox"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextmanager
def serve_asgi(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve ``app`` over real loopback HTTP in a background thread; yields its base URL."""
    import uvicorn

    port = port or free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"asgi-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the ASGI app did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def siyu_sandbox(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A platform's sandbox on loopback: parametrise indirectly with the platform name.

    Yields ``(base_url, spec)`` where ``spec`` is the plugin's :class:`hub.sandbox.SandboxSpec`.
    """
    from hub.plugins import load_plugins
    from hub.sandbox import load_sandbox

    platform = request.param
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    spec = load_sandbox(load_plugins(), platform, seed=0, fans=200, base_url=base_url)
    with serve_asgi(spec.app, port=port):
        yield base_url, spec
