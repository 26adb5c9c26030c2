"""One HTTP client per account, with the hub's rate limits, retries, error mapping and logging.

:func:`build_client` gives an adapter an ``httpx.AsyncClient`` whose base URL is the account's
``base_url`` or the platform's production URL.  Every response passes through the adapter's error
table (:mod:`hub.platform.errormap`), so an adapter sees only successful responses; timeouts and
connection failures arrive as :class:`hub.TransientError`.

**Retries are per request.**  Each request an adapter sends is retried on its own under the
account's :class:`~hub.platform.retry.RetryPolicy`: a fault costs that one request again, never the
page (a WeCom page can be a hundred requests).  The account's limits are shared by all its
concurrent requests (a call holds a slot of "N calls per P seconds" until P after its answer:
:class:`Budget`), and a frequency-limit answer (:class:`hub.RateLimited`) blocks the whole
account for the platform's block time, so the requests in flight do not each find the limit again.

Logs carry method, path (never the query string, where tokens travel), status and duration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx

from hub.errors import PlatformError, TransientError
from hub.platform.errormap import check_response
from hub.platform.retry import RetryCounter, RetryPolicy, retrying

if TYPE_CHECKING:
    from hub.adapter import Adapter

__all__ = ["DEFAULT_TIMEOUT", "Budget", "HubClient", "Limiters", "build_client", "user_agent"]

log = logging.getLogger("siyu.http")

DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=10)
NO_RETRY = RetryPolicy(attempts=1)


def quiet_http_loggers() -> None:
    """httpx logs every request's full URL at INFO, and platforms put secrets and tokens in query
    strings (WeCom's corpsecret and access_token): :func:`build_client` quiets them below WARNING,
    and the hub logs each call itself, without the query."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def user_agent() -> str:
    from hub import __version__

    return f"siyu-hub/{__version__}"


class Budget:
    """A documented limit of N calls per P seconds, kept wherever the platform counts a call.

    A platform counts a call at some moment between our sending it and our reading its answer,
    and counts per sliding or per fixed window of P.  So a call holds one of N slots from the
    moment it goes until P seconds after its answer came (or its failure): two calls that share a
    slot are then always more than P apart as the platform sees them, however late it counted
    the first and however early the second, and no window of P, sliding or fixed, holds more than
    N.  Turns are also spaced P/N apart, so a free budget is not spent in one burst; a turn that
    woke late does not move the next one (the calls catch up), so the spacing costs no rate.
    Under a steady load this gives N calls every P plus one answer's latency.
    """

    def __init__(self, calls: float, period: float) -> None:
        if calls <= 0 or period <= 0:
            raise ValueError(f"a rate limit needs calls > 0 and a period > 0, not ({calls}, {period})")
        if calls < 1:  # 0.5 calls per second: one call per two seconds
            calls, period = 1, period / calls
        self.slots = int(calls)
        self.period = period
        self.spacing = period / self.slots
        self._slots = asyncio.Semaphore(self.slots)
        self._turn = asyncio.Lock()
        self._due = 0.0

    async def take(self) -> None:
        """Wait for a slot and for the call's turn; the caller must :meth:`give_back` it."""
        await self._slots.acquire()
        try:
            async with self._turn:
                start = max(self._due, time.monotonic())
                if (wait := start - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                self._due = start + self.spacing  # from the turn, not the late wake-up: no time lost
        except BaseException:
            self._slots.release()  # cancelled while waiting: the call never went
            raise

    def give_back(self, *, sent: bool = True) -> None:
        """The call's answer (or failure) came: its slot is free again in one period; a call that
        never went gives its slot back at once."""
        if sent:
            asyncio.get_running_loop().call_later(self.period, self._slots.release)
        else:
            self._slots.release()


class Limiters:
    """The rate limits of one account: ``"*"`` for every call, or one path's calls (each a
    :class:`Budget`), plus an account-wide block that a frequency-limit answer sets."""

    def __init__(self, limits: Mapping[str, tuple[float, float]]) -> None:
        self._budgets = {path: Budget(rate, period) for path, (rate, period) in limits.items()}
        self._blocked_until = 0.0
        self.waited = 0.0
        """Seconds spent waiting for the limits and blocks, summed over requests."""

    def block(self, seconds: float) -> None:
        """Hold every request of the account for ``seconds`` (extends, never shortens, a block)."""
        self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)

    async def _unblocked(self) -> None:
        while (left := self._blocked_until - time.monotonic()) > 0:
            await asyncio.sleep(left)

    @asynccontextmanager
    async def hold(self, path: str) -> AsyncIterator[None]:
        """Wait until a call to ``path`` may go: no block, and a slot of ``"*"`` and of ``path``
        (when limited).  The body sends the call; the slots are given back when it ends."""
        started = time.monotonic()
        await self._unblocked()
        taken: list[Budget] = []
        sent = False
        try:
            for key in ("*", path):
                budget = self._budgets.get(key)
                if budget is not None:
                    await budget.take()
                    taken.append(budget)
            await self._unblocked()  # a limit answered while this call waited for its turn
            self.waited += time.monotonic() - started
            sent = True
            yield
        finally:
            for budget in taken:
                budget.give_back(sent=sent)


class HubClient(httpx.AsyncClient):
    """An ``AsyncClient`` that rate-limits, retries each request, maps platform errors and logs
    without secrets.

    :ivar calls: requests put on the wire (token requests and retries included).
    :ivar retries: retries by reason (the error class name).
    """

    def __init__(self, *, adapter_class: type[Adapter], account_id: str, limiters: Limiters,
                 retry: RetryPolicy = NO_RETRY, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.event_hooks["request"].append(self._count)  # every request, a token flow's included
        self.adapter: Adapter | None = None
        self.adapter_class = adapter_class
        self.account_id = account_id
        self.limiters = limiters
        self.retry = retry
        self.retries = RetryCounter()
        self.calls = 0

    async def _count(self, request: httpx.Request) -> None:
        self.calls += 1

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        """Send ``request`` (through its auth flow) under the retry policy; raise the hub error of
        the last attempt when every attempt failed.

        The first attempt goes out on its own: most requests need no other, and the retry
        machinery (tenacity's objects, which refer to each other and so wait for the cycle
        collector) is built only for a request that failed.  That failure is then the policy's
        first attempt, counted, logged and waited for as any other.
        """
        try:
            return await self._send_once(request, **kwargs)
        except PlatformError as exc:
            if not exc.retryable:
                raise
            failed = [exc]
        async for attempt in retrying(self.retry, self.retries, on_rate_limited=self.limiters.block):
            with attempt:
                if failed:
                    raise failed.pop()
                return await self._send_once(request, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        path = request.url.path
        context = dict(platform=self.adapter_class.platform, account_id=self.account_id, endpoint=path)
        started = time.monotonic()
        try:
            async with self.limiters.hold(path):
                started = time.monotonic()
                response = await super().send(request, **kwargs)
                await response.aread()
                # httpx binds a response and its network stream to each other, a reference cycle
                # that only the cycle collector frees, holding the body (and its parsed JSON) until
                # then; once read, the body is the whole stream
                response.stream = httpx.ByteStream(response.content)
        except httpx.TimeoutException as exc:
            log.info("%s %s timed out after %.3fs", request.method, path, time.monotonic() - started)
            raise TransientError(f"timed out ({type(exc).__name__})", **context) from exc
        except httpx.TransportError as exc:
            raise TransientError(f"connection failed ({type(exc).__name__})", **context) from exc
        log.info("%s %s %d %.3fs", request.method, path, response.status_code, time.monotonic() - started)
        if self.adapter is not None:
            flow = response.request.extensions.get("siyu.auth")  # set by a hub.TokenAuth
            source = flow.errors if flow is not None else self.adapter
            check_response(source, response, account_id=self.account_id)
        return response


def build_client(
    adapter_class: type[Adapter],
    account_id: str,
    *,
    base_url: str | None = None,
    rate_limits: Mapping[str, tuple[float, float]] | None = None,
    retry: RetryPolicy = NO_RETRY,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.AsyncBaseTransport | None = None,
) -> HubClient:
    """The client for one account.  ``transport`` is the test seam (``httpx.MockTransport``);
    ``retry`` defaults to a single attempt."""
    quiet_http_loggers()  # a secret in a query string must not reach a log, whoever configured logging
    limits = dict(adapter_class.rate_limits)
    limits.update(rate_limits or {})
    return HubClient(
        adapter_class=adapter_class,
        account_id=account_id,
        limiters=Limiters(limits),
        retry=retry,
        base_url=base_url or adapter_class.default_base_url,
        timeout=timeout,
        limits=DEFAULT_LIMITS,
        headers={"User-Agent": user_agent()},
        transport=transport,
    )
