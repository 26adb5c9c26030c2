"""A minimal third-party plugin: it registers a ``weibo`` platform and contributes an identity key.

It exists so that siyu-hub's tests can prove an outside distribution is found through the ``siyu``
entry-point group exactly as the built-in plugins are.  It imports only ``hub`` and ``schemas``,
and has the plugin shape of ``docs/plugins.md`` as far as it goes: hook implementations here, the
adapter in ``adapter.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import hub
from schemas import Fan
from siyu_weibo.adapter import WeiboAdapter

__all__ = ["WeiboAdapter", "identity_keys", "register_platforms"]


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(WeiboAdapter)


@hub.hookimpl
def identity_keys(fan: Fan) -> list[tuple[str, str]] | None:
    if fan.platform == "weibo":
        return [("weibo_uid", fan.platform_uid)]
    return None
