"""The account's limiter keeps a documented "N calls per P seconds" wherever the platform counts a
call: a call holds one of the N slots from the moment it goes until P seconds after its answer."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

import hub
from hub.platform.client import HubClient, build_client
from hub.testing import serve_asgi
from siyu_testplatform.adapter import TestplatAdapter


def counting_platform(calls: int, period: float):
    """A platform that counts a call when it has handled it (``?delay=`` seconds after it came)
    and refuses the call that would be the ``calls + 1``-th in any ``period`` (testplat's 429)."""
    counted: list[float] = []
    refused: list[float] = []

    async def app(scope, receive, send):
        query = dict(item.split("=", 1) for item in scope["query_string"].decode().split("&") if item)
        await asyncio.sleep(float(query.get("delay", 0)))
        now = time.monotonic()
        if sum(1 for t in counted if now - t < period) >= calls:
            refused.append(now)
            status, body = 429, {"code": 1002, "message": "over the limit"}
        else:
            counted.append(now)
            status, body = 200, {"code": 0}
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return app, counted, refused


def limited_client(base_url: str, calls: float, period: float) -> HubClient:
    client = build_client(TestplatAdapter, "hq", base_url=base_url, rate_limits={"*": (calls, period)})
    client.adapter = TestplatAdapter(config=TestplatAdapter.Config(client_id="i", client_secret="s"), client=client)
    return client


async def test_a_slow_answer_keeps_its_slot_so_the_platform_never_counts_more_than_the_limit():
    # the first call is counted 0.25 s after it went: a limiter that spaces the sends P/N apart
    # (one every 0.1 s) puts the slow one and three quick ones in one window of 0.4 s, and the
    # fifth call is refused
    app, counted, refused = counting_platform(4, 0.4)
    with serve_asgi(app) as url:
        async with limited_client(url, 4, 0.4) as client:
            slow = asyncio.ensure_future(client.get("/v1/fans", params={"delay": "0.25"}))
            await asyncio.sleep(0.01)
            answers = await asyncio.gather(slow, *(client.get("/v1/fans") for _ in range(8)))
    assert [a.status_code for a in answers] == [200] * 9
    assert refused == [] and len(counted) == 9


async def test_a_call_that_failed_gives_its_slot_back_after_the_period():
    app, counted, _ = counting_platform(2, 0.2)
    with serve_asgi(app) as url:
        async with limited_client(url, 2, 0.2) as client:
            for _ in range(2):
                with pytest.raises(hub.TransientError):
                    await client.get("http://127.0.0.1:9/v1/fans")  # nothing listens there
            answer = await asyncio.wait_for(client.get("/v1/fans"), timeout=10)
    assert answer.status_code == 200 and len(counted) == 1


async def test_a_call_cancelled_while_it_waits_gives_its_slot_back():
    app, counted, refused = counting_platform(1, 0.2)
    with serve_asgi(app) as url:
        async with limited_client(url, 1, 0.2) as client:
            first = asyncio.ensure_future(client.get("/v1/fans", params={"delay": "0.1"}))
            await asyncio.sleep(0.02)
            waiting = asyncio.ensure_future(client.get("/v1/fans"))
            await asyncio.sleep(0.02)
            waiting.cancel()
            await first
            answers = await asyncio.wait_for(asyncio.gather(*(client.get("/v1/fans") for _ in range(2))), timeout=10)
    assert [a.status_code for a in answers] == [200, 200]
    assert refused == [] and len(counted) == 3
