"""A minimal third-party plugin: it registers a ``weibo`` platform and contributes an identity key.

It exists so that siyu-hub's tests can prove an outside distribution is found through the ``siyu``
entry-point group exactly as the built-in plugins are.  It imports only ``hub`` and ``schemas``.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr

import hub
from schemas import Fan


class WeiboAdapter(hub.Adapter):
    """Declares no capabilities: it only shows how a plugin's options are validated."""

    platform = "weibo"
    default_base_url = "https://api.weibo.example"

    class Config(hub.AdapterConfig):
        app_key: str
        app_secret: SecretStr


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(WeiboAdapter)


@hub.hookimpl
def identity_keys(fan: Fan) -> list[tuple[str, str]] | None:
    if fan.platform == "weibo":
        return [("weibo_uid", fan.platform_uid)]
    return None
