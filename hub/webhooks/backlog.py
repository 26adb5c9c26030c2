"""Acceptance first: the work after an acknowledgement waits while callbacks are being accepted.

Every callback the receiver stored is processed after its response (the follow-up's calls out
to the platform, then the apply of its records).  That work runs in the same process as the
acceptance of the next callbacks and competes with it for the one interpreter: during a burst it
would set the latency of the acknowledgements.  A :class:`Backlog` hands out *turns* to process:

- while no callback is being received and none was for ``quiet`` seconds, up to ``slots`` turns
  are out at once, granted as soon as one ends;
- while callbacks are arriving, at most ``busy_share`` turns start in each ``busy_every``
  seconds, so processing still moves on under a sustained load, at a bounded pace;
- turns are granted in the order they were asked for.

Processing holds back, never drops: a callback waiting for its turn is stored already (and
processed by the next start if the process dies first), and the whole backlog goes on at full
pace as soon as the burst is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator

__all__ = ["Backlog"]

SLOTS = 8
"""Turns out at once when nothing is being accepted (calls out to the platform under way)."""
QUIET = 0.02
"""Seconds without a callback being received after which processing goes at full pace."""
BUSY_EVERY = 0.25
BUSY_SHARE = 8
"""While callbacks arrive: at most ``BUSY_SHARE`` turns start in each ``BUSY_EVERY`` seconds."""


class Backlog:
    """Turns to process stored callbacks, given to acceptance's idle time first.

    :param slots: the most turns out at once.
    :param quiet: seconds without a request being received that count as idle.
    :param busy_every: while busy, the length of one window, in seconds.
    :param busy_share: while busy, the most turns started in one window.
    """

    def __init__(self, *, slots: int = SLOTS, quiet: float = QUIET, busy_every: float = BUSY_EVERY,
                 busy_share: int = BUSY_SHARE) -> None:
        if slots < 1 or busy_share < 1 or quiet < 0 or busy_every <= 0:
            raise ValueError("a backlog needs slots >= 1, busy_share >= 1, quiet >= 0 and busy_every > 0")
        self.slots = slots
        self.quiet = quiet
        self.busy_every = busy_every
        self.busy_share = busy_share
        self.granted_busy = 0
        """Turns granted while callbacks were arriving (a test sees the pacing)."""
        self._receiving = 0
        self._last_received = -float("inf")
        self._out = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._window_start = -float("inf")
        self._window_left = 0
        self._kick: asyncio.Event | None = None
        self._pump: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def receiving(self) -> Iterator[None]:
        """Around the acceptance of one request: processing holds back meanwhile."""
        self._receiving += 1
        try:
            yield
        finally:
            self._receiving -= 1
            self._last_received = time.monotonic()

    def busy(self, now: float | None = None) -> bool:
        """Whether a callback is being received, or was within ``quiet`` seconds."""
        now = time.monotonic() if now is None else now
        return self._receiving > 0 or now - self._last_received < self.quiet

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a turn to process (see the module's rules), hold it for the block."""
        granted = asyncio.get_running_loop().create_future()
        self._waiting.append(granted)
        self._wake()
        try:
            await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self._release()  # granted just as the waiter was cancelled: give it back
            raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        self._out -= 1
        self._wake()

    def _wake(self) -> None:
        if self._pump is None or self._pump.done():
            self._kick = asyncio.Event()  # of the running loop (an app may be served by another loop later)
            self._pump = asyncio.get_running_loop().create_task(self._grant(), name="siyu-webhook-backlog")
        assert self._kick is not None
        self._kick.set()

    async def _grant(self) -> None:
        assert self._kick is not None
        while True:
            self._kick.clear()
            now = time.monotonic()
            busy = self.busy(now)
            if busy and now - self._window_start >= self.busy_every:
                self._window_start, self._window_left = now, self.busy_share
            while self._waiting and self._out < self.slots and (not busy or self._window_left > 0):
                waiter = self._waiting.popleft()
                if waiter.done():  # its task was cancelled while waiting
                    continue
                waiter.set_result(None)
                self._out += 1
                if busy:
                    self._window_left -= 1
                    self.granted_busy += 1
            if not self._waiting:
                return
            # wait for a turn to end, or for the quiet or the next window to begin
            if self._out >= self.slots:
                delay = None
            elif busy:
                delay = max(0.001, min(self.quiet, self._window_start + self.busy_every - now))
            else:
                delay = self.quiet
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), delay)
