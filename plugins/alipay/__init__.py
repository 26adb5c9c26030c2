"""Alipay 支付宝: the built-in plugin for the ``alipay`` platform.

Registered through the ``siyu`` entry-point group like any third-party plugin.  The adapter opens
商家会员卡 from the activation form, pushes the unified balance to them, reads card holders back
and verifies Alipay's notifies.  Wire facts and their sources: ``docs/platforms/alipay.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import hub
from plugins.alipay.adapter import AlipayAdapter

__all__ = ["AlipayAdapter", "register_platforms"]


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(AlipayAdapter)
