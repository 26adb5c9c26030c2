"""Xiaohongshu 小红书: the built-in plugin for the ``xiaohongshu`` platform.

Registered through the ``siyu`` entry-point group like any third-party plugin.  The adapter reads
a shop's orders and, from them, its buyers through the e-commerce open platform (ark), and
verifies its message pushes.  The 会员通 membership API group is not implemented: its methods are
not public.  Wire facts and their sources: ``docs/platforms/xiaohongshu.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import hub
from plugins.xiaohongshu.adapter import XiaohongshuAdapter

__all__ = ["XiaohongshuAdapter", "register_platforms"]


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(XiaohongshuAdapter)
