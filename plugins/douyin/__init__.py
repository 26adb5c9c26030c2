"""Douyin 抖音: the built-in plugin for the ``douyin`` platform.

Registered through the ``siyu`` entry-point group like any third-party plugin.  The adapter reads
an enterprise account's fans, sends private-message replies, verifies and parses the app's
callbacks, and pushes unified points and levels to 抖音来客 member cards.  Wire facts and their
sources: ``docs/platforms/douyin.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import hub
from plugins.douyin.adapter import DouyinAdapter

__all__ = ["DouyinAdapter", "register_platforms"]


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(DouyinAdapter)
