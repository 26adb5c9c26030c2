"""Kuaishou 快手小店: the built-in plugin for the ``kuaishou`` platform.

Registered through the ``siyu`` entry-point group like any third-party plugin.  The adapter is in
:mod:`plugins.kuaishou.adapter`; the platform's facts and set-up in docs/platforms/kuaishou.md.
"""

from __future__ import annotations

from collections.abc import Callable

import hub
from plugins.kuaishou.adapter import KuaishouAdapter


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(KuaishouAdapter)
