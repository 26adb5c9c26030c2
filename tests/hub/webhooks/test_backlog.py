"""Acceptance first: processing after the acknowledgement holds back while callbacks are being received."""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from hub.webhooks.backlog import Backlog
from hub.webhooks.receiver import create_app
from schemas.tables import WebhookEventRow
from tests.hub.webhook_helpers import ACK, Tracker, make_host, make_settings, serving, signed

URL = "/webhooks/hooktest/shop"
events_table = WebhookEventRow.__table__


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_while_receiving_only_the_busy_share_is_granted_then_all_in_order():
    backlog = Backlog(slots=8, quiet=0, busy_every=3600, busy_share=2)
    started: list[int] = []
    release = asyncio.Event()

    async def work(i: int) -> None:
        async with backlog.turn():
            started.append(i)
            await release.wait()

    with backlog.receiving():
        tasks = [asyncio.create_task(work(i)) for i in range(5)]
        await settle()
        assert started == [0, 1]  # the share of this window, in the order asked
        assert backlog.granted_busy == 2
    await settle()
    assert started == [0, 1, 2, 3, 4]  # idle: every waiting turn goes on
    release.set()
    await asyncio.gather(*tasks)


async def test_turns_out_at_once_are_bounded_and_a_cancelled_waiter_gives_its_turn_on():
    backlog = Backlog(slots=2, quiet=0)
    started: list[int] = []
    release = asyncio.Event()

    async def work(i: int) -> None:
        async with backlog.turn():
            started.append(i)
            await release.wait()

    tasks = [asyncio.create_task(work(i)) for i in range(4)]
    await settle()
    assert started == [0, 1]
    tasks[2].cancel()
    release.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert started == [0, 1, 3]


def test_a_backlog_refuses_settings_that_would_never_grant():
    with pytest.raises(ValueError, match="busy_share"):
        Backlog(busy_share=0)


def statuses(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(events_table.c.status)).scalars())


def wait_for(check, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_callbacks_are_acknowledged_while_one_is_received_but_processed_at_the_busy_pace(engine, database_url):
    tracker = Tracker()
    host = make_host(tracker)
    app = create_app(host, make_settings(host, database_url), engine, retry_pending_every=None)
    backlog = Backlog(quiet=0, busy_every=3600, busy_share=1)
    app.state.receiver.backlog = backlog
    with serving(app) as base:
        where = urlsplit(base)
        slow = socket.create_connection((where.hostname, where.port))
        try:
            # a request still being received: its body is not all sent
            slow.sendall(f"POST {URL} HTTP/1.1\r\nHost: hub\r\nContent-Length: 1000\r\n\r\n<xml>".encode())
            assert wait_for(backlog.busy)
            with httpx.Client(base_url=base) as client:
                answers = [client.post(URL, content=body, headers=headers)
                           for body, headers in (signed({"msg_id": f"m-{i}", "uid": f"u-{i}"}) for i in range(4))]
            assert [(a.status_code, a.content) for a in answers] == [(200, ACK)] * 4
            assert wait_for(lambda: statuses(engine).count("processed") == 1)
            time.sleep(0.5)
            # acknowledged and stored, the rest wait for the receiving to end
            assert sorted(statuses(engine)) == ["processed", "received", "received", "received"]
        finally:
            slow.close()
        assert wait_for(lambda: statuses(engine) == ["processed"] * 4)


def test_a_backlog_serves_one_event_loop_after_another():
    backlog = Backlog(slots=1, quiet=0)

    async def turns() -> int:
        done = []

        async def one(i: int) -> None:
            async with backlog.turn():
                await asyncio.sleep(0.01)
                done.append(i)

        await asyncio.gather(*(one(i) for i in range(3)))  # the second waits: the grants wait on the loop
        return len(done)

    assert asyncio.run(turns()) == 3
    assert asyncio.run(turns()) == 3  # a second loop, as when an app is served again
