"""WeCom 企业微信: the built-in plugin for the ``wecom`` platform.

Registered through the ``siyu`` entry-point group like any third-party plugin.  The adapter
declares no capabilities yet: the platform's protocol is not implemented, and ``siyu plugins``
says so rather than pretending otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import hub


class WeComAdapter(hub.Adapter):
    """WeCom adapter (no capabilities implemented yet)."""

    platform = "wecom"
    default_base_url = "https://qyapi.weixin.qq.com"
    capabilities = frozenset()


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(WeComAdapter)
