"""Kuaishou 快手: the built-in plugin for the ``kuaishou`` platform.

Registered through the ``siyu`` entry-point group like any third-party plugin.  The adapter
declares no capabilities yet: the platform's protocol is not implemented, and ``siyu plugins``
says so rather than pretending otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import hub


class KuaishouAdapter(hub.Adapter):
    """Kuaishou adapter (no capabilities implemented yet)."""

    platform = "kuaishou"
    default_base_url = "https://openapi.kwaixiaodian.com"
    capabilities = frozenset()


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(KuaishouAdapter)
