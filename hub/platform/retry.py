"""Retries, built once from configuration (tenacity).

Retried: :class:`TransientError` (timeouts, connection errors and 5xx arrive as this) and
:class:`RateLimited`, whose ``retry_after`` is honoured.  Never retried: :class:`PermanentError`,
:class:`PlatformConfigError` and anything that is not a platform error.  Every retry is counted
and logged with its reason.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from hub.errors import PlatformError, RateLimited

__all__ = ["RetryCounter", "RetryPolicy", "retrying"]

log = logging.getLogger("siyu.retry")


class RetryPolicy(BaseModel):
    """How hard to retry a platform call (``[retry]`` in siyu.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(default=6, ge=1, le=100)
    initial_wait: float = Field(default=0.5, ge=0)
    max_wait: float = Field(default=30.0, ge=0)
    jitter: float = Field(default=0.5, ge=0)
    max_retry_after: float = Field(default=300.0, ge=0, description="the longest block honoured")


@dataclass
class RetryCounter:
    """Retries seen, by reason (the error class name)."""

    by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def add(self, reason: str) -> None:
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, PlatformError) and exc.retryable


def retrying(
    policy: RetryPolicy,
    counter: RetryCounter | None = None,
    *,
    sleep: Callable[[float], object] | None = None,
    on_rate_limited: Callable[[float], None] | None = None,
) -> AsyncRetrying:
    """An ``AsyncRetrying`` that follows ``policy``; use ``async for attempt in retrying(...)``.

    :param counter: counts each retry by reason.
    :param sleep: tenacity's sleep (a test seam).
    :param on_rate_limited: given the wait a :class:`RateLimited` calls for, instead of sleeping
        it here: the HTTP client blocks the whole account for that long (its limiter then holds
        this request and every other one of the account).
    """

    def delay(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, policy.max_retry_after)
        backoff = policy.initial_wait * 2 ** (state.attempt_number - 1)
        return min(policy.max_wait, backoff) + random.uniform(0, policy.jitter)

    def wait(state: RetryCallState) -> float:
        seconds = delay(state)
        exc = state.outcome.exception() if state.outcome else None
        if on_rate_limited is not None and isinstance(exc, RateLimited):
            on_rate_limited(seconds)
            return 0.0
        return seconds

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = type(exc).__name__
        if counter is not None:
            counter.add(reason)
        log.info("retrying after %s (attempt %d): %s", reason, state.attempt_number, exc)

    kwargs = {"sleep": sleep} if sleep is not None else {}
    return AsyncRetrying(
        retry=retry_if_exception(_retryable),
        wait=wait,
        stop=stop_after_attempt(policy.attempts),
        before_sleep=before_sleep,
        reraise=True,
        **kwargs,
    )
