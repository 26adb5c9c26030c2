"""WeCom 企业微信: the built-in plugin for the ``wecom`` platform.

Registered through the ``siyu`` entry-point group like any third-party plugin.  It reads a
corp's customers (external contacts) with their staff relations and tags, sends mass-send
tasks and welcome messages, takes the corp's encrypted callbacks and pushes points balances to a
公众号 member card.  See ``docs/platforms/wecom.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import hub
from plugins.wecom.adapter import WeComAdapter

__all__ = ["WeComAdapter", "register_platforms"]


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(WeComAdapter)
