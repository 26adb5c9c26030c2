"""The retry policy: what is retried, how long it waits, and that every retry is counted."""

import pytest

import hub
from hub.platform.retry import RetryCounter, RetryPolicy, retrying


async def run(policy, outcomes, counter=None):
    waits, calls = [], []

    async def sleep(seconds):
        waits.append(seconds)

    async for attempt in retrying(policy, counter, sleep=sleep):
        with attempt:
            calls.append(1)
            outcome = outcomes[len(calls) - 1]
            if isinstance(outcome, Exception):
                raise outcome
            return outcome, waits, len(calls)


async def test_transient_and_rate_limited_are_retried_and_counted():
    counter = RetryCounter()
    policy = RetryPolicy(attempts=5, initial_wait=1, max_wait=4, jitter=0)
    result, waits, calls = await run(policy, [hub.TransientError("a"), hub.RateLimited("b", retry_after=9),
                                              hub.TransientError("c"), hub.TransientError("d"), "ok"], counter)
    assert result == "ok" and calls == 5
    assert waits == [1, 9, 4, 4]  # exponential, Retry-After honoured, capped
    assert counter.by_reason == {"TransientError": 3, "RateLimited": 1} and counter.total == 4


@pytest.mark.parametrize("error", [hub.PermanentError("bad"), hub.PlatformConfigError("secret wrong"), ValueError("bug")])
async def test_permanent_errors_are_never_retried(error):
    counter = RetryCounter()
    with pytest.raises(type(error)):
        await run(RetryPolicy(), [error, "ok"], counter)
    assert counter.total == 0


async def test_gives_up_after_the_configured_attempts_with_the_last_error():
    with pytest.raises(hub.TransientError, match="third"):
        await run(RetryPolicy(attempts=3, initial_wait=0, jitter=0),
                  [hub.TransientError("first"), hub.TransientError("second"), hub.TransientError("third"), "ok"])


async def test_a_huge_block_is_capped():
    _, waits, _ = await run(RetryPolicy(max_retry_after=30, jitter=0), [hub.RateLimited("x", retry_after=3600), "ok"])
    assert waits == [30]
