"""Douyin 抖音: the built-in plugin for the ``douyin`` platform.

Registered through the ``siyu`` entry-point group like any third-party plugin.  The adapter
declares no capabilities yet: the platform's protocol is not implemented, and ``siyu plugins``
says so rather than pretending otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import hub


class DouyinAdapter(hub.Adapter):
    """Douyin adapter (no capabilities implemented yet)."""

    platform = "douyin"
    default_base_url = "https://open.douyin.com"
    capabilities = frozenset()


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(DouyinAdapter)
