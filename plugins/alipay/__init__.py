"""Alipay 支付宝: the built-in plugin for the ``alipay`` platform.

Registered through the ``siyu`` entry-point group like any third-party plugin.  The adapter
declares no capabilities yet: the platform's protocol is not implemented, and ``siyu plugins``
says so rather than pretending otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import hub


class AlipayAdapter(hub.Adapter):
    """Alipay adapter (no capabilities implemented yet)."""

    platform = "alipay"
    default_base_url = "https://openapi.alipay.com/gateway.do"
    capabilities = frozenset()


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(AlipayAdapter)
