"""``testplat``: a platform that exists only to exercise the hub.

Its wire protocol is small and its own (see :mod:`siyu_testplatform.sandbox`): a client-credentials
token endpoint, a cursor-paged fans list and an orders list, body error codes beside HTTP statuses.
Its sandbox injects faults on demand: 429 with Retry-After, 5xx bursts, timeouts, tokens that
expire mid-pagination, malformed JSON, duplicate and empty pages.

It is also the example of the one plugin shape (``docs/plugins.md``): ``adapter.py``, ``auth.py``,
``wire.py``, ``mapping.py``, ``webhooks.py``, ``sandbox.py`` and ``sandbox_data.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import hub
from siyu_testplatform.adapter import TestplatAdapter


@hub.hookimpl
def register_platforms(register: Callable[[type[hub.Adapter]], None]) -> None:
    register(TestplatAdapter)
