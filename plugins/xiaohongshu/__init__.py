"""Xiaohongshu 小红书: the built-in plugin for the ``xiaohongshu`` platform.

Registered through the ``siyu`` entry-point group like any third-party plugin.  The adapter
declares no capabilities yet: the platform's protocol is not implemented, and ``siyu plugins``
says so rather than pretending otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import hub


class XiaohongshuAdapter(hub.Adapter):
    """Xiaohongshu adapter (no capabilities implemented yet)."""

    platform = "xiaohongshu"
    default_base_url = "https://ark.xiaohongshu.com/ark/open_api/v3/common_controller"
    capabilities = frozenset()


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(XiaohongshuAdapter)
