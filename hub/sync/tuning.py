"""The interpreter tuned for a long sync, for as long as a ``with`` block lasts.

A sync allocates records by the million.  :func:`tuned_for_sync` takes what is alive when it is
entered (modules, plugins, settings) out of the garbage collector's sight, collects the youngest
generation less often and lets a thread hold the GIL for a shorter time while another waits; on
exit it puts back exactly what it changed.  It is process-wide state, so only the outermost
layer enters it: the ``siyu sync`` and ``siyu demo`` commands and the benchmarks, never the
library functions they call.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SWITCH_INTERVAL", "YOUNG_COLLECTION_THRESHOLD", "tuned_for_sync"]

SWITCH_INTERVAL = 0.0002
"""Seconds a thread may hold the GIL while another waits for it, in a syncing process (Python's
default is 0.005).  The writer thread needs the GIL for a moment after each statement and holds
it about 1 % of the time; waiting 5 ms each time while the event loop parses and plans, it fell
pages behind, and at 1 ms a 100,000-fan sync was still ~6 % slower than at 0.2 ms (interleaved
runs, 7 rounds of 8)."""

YOUNG_COLLECTION_THRESHOLD = 100_000
"""Net allocations (of objects the collector tracks) between two collections of the youngest
generation during a sync; Python's default is 700.  A collection walks every young object still
alive, and in a sync those are the pages of records on their way to the database: at 10,000 a
100,000-fan sync ran about 35 collections that freed next to nothing, 7 % of its time.  A sync's
requests leave no reference cycles behind (:class:`hub.platform.client.HubClient`), so holding
the collector back frees nothing later: peak RSS of a 1,000,000-fan sync is the same (about
100 MB) as at 10,000."""


@contextmanager
def tuned_for_sync() -> Iterator[None]:
    """Within the block: the start-up heap frozen, young objects collected less often
    (:data:`YOUNG_COLLECTION_THRESHOLD`), the GIL handed over sooner (:data:`SWITCH_INTERVAL`).

    Each full collection would otherwise walk every object of every imported library again
    (about a third of a 100,000-fan sync's time), and with the default threshold a page's records,
    alive until the page is written, are walked by several collections and promoted to older
    generations that are walked again.  Collections still run (reference cycles are still
    freed), just less often.

    On exit, however the block ends, the collector's thresholds and the switch interval are
    restored and the frozen objects are handed back to the collector (``gc.unfreeze``).  A heap
    someone already froze before the block is left as it was found: then nothing is frozen or
    unfrozen here, so nested blocks are harmless.
    """
    thresholds = gc.get_threshold()
    interval = sys.getswitchinterval()
    freezing = gc.get_freeze_count() == 0
    if freezing:
        gc.collect()
        gc.freeze()
    young, middle, oldest = thresholds
    gc.set_threshold(max(YOUNG_COLLECTION_THRESHOLD, young), middle, oldest)
    sys.setswitchinterval(min(SWITCH_INTERVAL, interval))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
        if freezing:
            gc.unfreeze()
