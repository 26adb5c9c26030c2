"""Finding plugins and the platforms they register.

Built-in and third-party plugins load the same way: through the ``siyu`` entry-point group.
``SIYU_LOAD_PLUGINS=wecom,alipay`` pins which entry points (or distributions) load; an empty value
loads none.  ``SIYU_TRACE_PLUGINS=1`` prints every hook call and its result to stderr.
"""

from __future__ import annotations

import inspect
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from hub import defaults, hookspecs
from hub.adapter import Adapter
from hub.errors import PluginError, UnknownPlatform
from hub.events import Event

__all__ = ["ENTRY_POINT_GROUP", "PlatformInfo", "PluginHost", "await_me_maybe", "load_plugins"]

ENTRY_POINT_GROUP = "siyu"


@dataclass(frozen=True)
class PlatformInfo:
    """A registered platform: its adapter class and the plugin that registered it."""

    adapter: type[Adapter]
    plugin: str
    distribution: str | None
    version: str | None


class PluginHost:
    """A plugin manager plus the platforms its plugins registered."""

    def __init__(self, pm: pluggy.PluginManager, distributions: dict[str, metadata.Distribution]) -> None:
        self.pm = pm
        self.distributions = distributions
        self.platforms: dict[str, PlatformInfo] = {}
        self.rules = defaults.DefaultRules()
        """The hub's default rules; their parameters come from ``[ledger]`` in siyu.toml."""

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def adapter_class(self, platform: str) -> type[Adapter]:
        """The adapter class of ``platform``; :class:`UnknownPlatform` if none is installed."""
        try:
            return self.platforms[platform].adapter
        except KeyError:
            raise UnknownPlatform(platform, known=list(self.platforms)) from None

    def collect_platforms(self) -> None:
        """Call every ``register_platforms`` implementation, attributing each class to its plugin."""
        self.platforms.clear()
        impls = self.pm.hook.register_platforms.get_hookimpls()
        for impl in impls:
            dist = self.distributions.get(impl.plugin_name)
            info = dict(
                plugin=impl.plugin_name,
                distribution=dist.metadata["name"] if dist else None,
                version=dist.version if dist else None,
            )
            others = [other.plugin for other in impls if other is not impl]
            only_this = self.pm.subset_hook_caller("register_platforms", remove_plugins=others)
            only_this(register=_registrar(self, info))

    def emit(self, event: Event) -> None:
        """Announce a canonical event to every ``track_event`` implementation."""
        self.pm.hook.track_event(event=event)

    def plugin_hooks(self, plugin_name: str) -> list[str]:
        plugin = self.pm.get_plugin(plugin_name)
        return sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])


def _registrar(host: PluginHost, info: dict[str, Any]) -> Any:
    def register(adapter: type[Adapter]) -> None:
        plugin = info["plugin"]
        if not (inspect.isclass(adapter) and issubclass(adapter, Adapter)):
            raise PluginError(f"register() takes an Adapter subclass, got {adapter!r}", plugin=plugin)
        name = getattr(adapter, "platform", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{adapter.__name__} does not declare a platform name", plugin=plugin)
        if name in host.platforms:
            other = host.platforms[name].plugin
            raise PluginError(f"platform {name!r} is already registered by plugin {other!r}", plugin=plugin)
        missing = adapter.missing_methods()
        if missing:
            raise PluginError(
                f"{adapter.__name__} declares capabilities without implementing {', '.join(missing)}",
                plugin=plugin,
            )
        host.platforms[name] = PlatformInfo(adapter=adapter, **info)

    return register


def _wanted_entry_points(pins: str | None) -> list[metadata.EntryPoint]:
    eps = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    if pins is None:
        return eps
    wanted = {p.strip() for p in pins.split(",") if p.strip()}
    chosen = [ep for ep in eps if ep.name in wanted or (ep.dist and ep.dist.name in wanted)]
    found = {ep.name for ep in chosen} | {ep.dist.name for ep in chosen if ep.dist}
    unknown = sorted(wanted - found)
    if unknown:
        raise PluginError(f"SIYU_LOAD_PLUGINS names plugins that are not installed: {', '.join(unknown)}")
    return chosen


def _trace(pm: pluggy.PluginManager) -> None:
    def before(hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
        print(f"siyu: calling {hook_name} on {[i.plugin_name for i in hook_impls]}", file=sys.stderr)

    def after(outcome: Any, hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
        result = "raised" if outcome.exception else f"returned {outcome.get_result()!r}"
        print(f"siyu: {hook_name} {result}", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


def load_plugins(extra: list[tuple[object, str]] | None = None) -> PluginHost:
    """Build a plugin manager, load plugins from entry points and collect their platforms.

    :param extra: ``(plugin, name)`` pairs to register besides the entry points (tests use it).
    :raises PluginError: a plugin failed to import, implements an unknown hook, or broke the
        ``register_platforms`` contract.
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    distributions: dict[str, metadata.Distribution] = {}
    pm.add_hookspecs(hookspecs)
    if os.environ.get("SIYU_TRACE_PLUGINS"):
        _trace(pm)
    for ep in _wanted_entry_points(os.environ.get("SIYU_LOAD_PLUGINS")):
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(f"failed to import {ep.value}: {exc}", plugin=ep.name) from exc
        pm.register(plugin, name=ep.name)
        if ep.dist is not None:
            distributions[ep.name] = ep.dist
    for plugin, name in extra or []:
        pm.register(plugin, name=name)
    rules = defaults.DefaultRules()
    pm.register(rules, name="siyu.defaults")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc), plugin=pm.get_name(exc.plugin)) from exc
    host = PluginHost(pm, distributions)
    host.rules = rules
    host.collect_platforms()
    return host


async def await_me_maybe(value: Any) -> Any:
    """Resolve a hook's result: call it if callable, await it if awaitable, else return it."""
    if callable(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value
