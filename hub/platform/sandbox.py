"""Sandboxes: a plugin's stand-in for its platform, an ASGI app served over loopback.

An adapter names its sandbox factory in ``sandbox = "module:function"``.  The factory is called
as ``factory(seed, fans, base_url)`` and returns a :class:`SandboxSpec`: the ASGI app, and the
``[[accounts]]`` table (platform, id, base_url and the platform's credentials) that points the
hub at that app once it listens on ``base_url``.  The same ``seed`` and ``fans`` give the same
data, so a demo, a test and a benchmark can be repeated.

People shared by all sandboxes: a factory may also take a keyword ``people`` (a
:class:`hub.Population`, see :mod:`hub.platform.population`).  :func:`build_sandbox` passes it
when it is given one and the factory accepts it (a parameter named ``people`` or ``**kwargs``);
the sandbox then draws its fans, customers, buyers and card holders from those of the people on
its platform (``fans`` is then the size of the population, not of the sandbox), so that sandboxes
built with the same people show the same person on several platforms.  Without ``people`` a
sandbox makes its own; a factory without the keyword keeps working, alone.

``siyu sandbox PLATFORM`` runs any installed plugin's sandbox standalone
(:mod:`hub.cli.sandbox`); :func:`account_toml` prints its account as a ``siyu.toml`` snippet.
"""

from __future__ import annotations

import importlib
import inspect
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hub.adapter import Adapter, WebhookRequest
from hub.errors import NotFound, PluginError
from hub.platform.population import Population
from hub.plugins import PluginHost

__all__ = [
    "SandboxFactory",
    "SandboxSpec",
    "account_toml",
    "build_sandbox",
    "free_port",
    "load_factory",
    "takes_people",
    "serve_asgi",
]


@dataclass(frozen=True)
class SandboxSpec:
    """A sandbox ready to serve.

    :param app: the ASGI application speaking the platform's wire protocol.
    :param account: the ``[[accounts]]`` table pointing at the app: ``platform``, ``id``,
        ``base_url`` and the platform's own keys (the sandbox's test credentials).
    """

    app: Any
    account: Mapping[str, Any]
    sample_webhook: Callable[[], WebhookRequest] | None = None
    """Optional: a fresh, correctly signed callback for ``account`` (a new message id each call),
    used by the conformance kit to check that callbacks are accepted, forgeries rejected and
    replays stored once."""


SandboxFactory = Callable[..., SandboxSpec]
"""``factory(seed, fans, base_url) -> SandboxSpec``, optionally with a keyword ``people``."""


def takes_people(factory: SandboxFactory) -> bool:
    """Whether ``factory`` accepts the keyword ``people`` (a shared :class:`hub.Population`)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD or (
        p.name == "people" and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))
        for p in parameters)


def load_factory(adapter: type[Adapter]) -> SandboxFactory:
    """Import the factory ``adapter.sandbox`` names.

    :raises NotFound: the adapter declares no sandbox.
    :raises PluginError: the declaration is malformed or does not import.
    """
    spec = adapter.sandbox
    if not spec:
        raise NotFound(f"platform {adapter.platform!r} ships no sandbox")
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise PluginError(f"{adapter.__name__}.sandbox must read 'module:function', not {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"cannot load sandbox {spec!r} of platform {adapter.platform!r}: {exc}") from exc
    if not callable(target):
        raise PluginError(f"sandbox {spec!r} of platform {adapter.platform!r} is not callable")
    return target  # type: ignore[no-any-return]


def build_sandbox(host: PluginHost, platform: str, *, seed: int, fans: int, base_url: str,
                  people: Population | None = None) -> SandboxSpec:
    """The sandbox of ``platform``, built for an app that will listen on ``base_url``.

    :param host: the installed plugins.
    :param platform: the platform's name.
    :param seed: the seed of the sandbox's generated data.
    :param fans: how many fans it holds (with ``people``: the size of the population).
    :param base_url: where it will listen (``http://127.0.0.1:8101``).
    :param people: the people every sandbox shares (``hub.population(seed, fans)``); passed to a
        factory that accepts it, else the sandbox makes its own people.
    :raises UnknownPlatform: no plugin registers ``platform``.
    :raises NotFound: the platform ships no sandbox.
    :raises PluginError: the factory failed or returned something else than a :class:`SandboxSpec`.
    """
    factory = load_factory(host.adapter_class(platform))
    try:
        if people is not None and takes_people(factory):
            spec = factory(seed, fans, base_url, people=people)
        else:
            spec = factory(seed, fans, base_url)
    except Exception as exc:
        raise PluginError(f"the sandbox of platform {platform!r} failed to start: {exc}") from exc
    if not isinstance(spec, SandboxSpec):
        raise PluginError(f"the sandbox factory of platform {platform!r} returned {type(spec).__name__}, "
                          "not a hub.platform.sandbox.SandboxSpec")
    for key in ("platform", "id", "base_url"):
        if key not in spec.account:
            raise PluginError(f"the sandbox account of platform {platform!r} has no {key!r}")
    return spec


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write a {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def account_toml(account: Mapping[str, Any]) -> str:
    """``account`` as one ``[[accounts]]`` table of ``siyu.toml``."""
    lines = ["[[accounts]]"]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in account.items()]
    return "\n".join(lines) + "\n"


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
