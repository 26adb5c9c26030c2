"""The daemon's webhook meter wakes the apply job once per interval during a burst, and after its last callback."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from hub.daemon.metrics import DaemonMetrics
from hub.daemon.server import WebhookMeter


async def acknowledging(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"success"})


async def test_a_burst_wakes_the_apply_job_once_then_once_after_its_last_callback():
    wakes: list[int] = []
    meter = WebhookMeter(acknowledging, DaemonMetrics(), lambda: wakes.append(len(wakes)), wake_every=0.3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=meter), base_url="http://hub") as client:
        answers = await asyncio.gather(*(client.post("/webhooks/hooktest/shop", content=b"x") for _ in range(50)))
        assert {a.status_code for a in answers} == {200}
        assert len(wakes) == 1  # the first callback; the other 49 wait for the interval's end
        for _ in range(100):
            if len(wakes) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(wakes) == 2  # the trailing wake: no callback is left to the job's schedule
        await asyncio.sleep(0.5)
        assert len(wakes) == 2
        await client.post("/webhooks/hooktest/shop", content=b"x")  # a later callback wakes it at once
        assert len(wakes) == 3
        await client.get("/healthz")  # not a callback
        assert len(wakes) == 3
