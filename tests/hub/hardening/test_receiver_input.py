"""The receiver against hostile input: nested JSON, log injection, over-long message ids."""

from __future__ import annotations

import logging

import httpx
import pytest
import sqlalchemy as sa

from hub.webhooks.receiver import create_app
from schemas.tables import WebhookEventRow
from tests.hub.webhook_helpers import Tracker, make_host, make_settings, signed

events_table = WebhookEventRow.__table__


@pytest.fixture
async def client(engine, database_url):
    host = make_host(Tracker())
    app = create_app(host, make_settings(host, database_url), engine, max_body=2 * 1024 * 1024)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
        yield c
    await app.state.receiver.aclose()


def stored(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(events_table)).mappings()]


async def test_a_signed_deeply_nested_body_is_a_4xx_not_a_500(client, engine):
    body = b'{"msg_id": "deep", "uid": "u-1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    body, headers = signed_raw(body)
    response = await client.post("/webhooks/hooktest/shop", content=body, headers=headers)
    assert response.status_code == 400 and stored(engine) == []


def signed_raw(body: bytes):
    import time

    from tests.hub.webhook_helpers import sign

    ts = int(time.time())
    return body, {"X-Hook-Timestamp": str(ts), "X-Hook-Signature": sign(body, ts), "Content-Type": "application/json"}


@pytest.mark.parametrize("account", ["shop%0a2026-12-03 INFO forged line", "shop%1b[31mred", "s" * 10_000])
async def test_request_values_reach_the_logs_escaped_and_cut(client, caplog, account):
    caplog.set_level(logging.INFO, logger="siyu.webhooks")
    body, headers = signed({"msg_id": "m-1", "uid": "u-1"})
    response = await client.post(f"/webhooks/hooktest/{account}", content=body, headers=headers)
    assert response.status_code == 404
    messages = [r.getMessage() for r in caplog.records if r.name == "siyu.webhooks"]
    assert messages
    for message in messages:
        assert "\n" not in message and "\x1b" not in message and len(message) < 400


async def test_a_thousand_character_message_id_is_stored_once_not_a_500(client, engine):
    body, headers = signed({"msg_id": "m" * 1000, "uid": "u-1"})
    first = await client.post("/webhooks/hooktest/shop", content=body, headers=headers)
    again = await client.post("/webhooks/hooktest/shop", content=body, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    [event] = stored(engine)
    assert len(event["dedupe_key"]) <= 191


@pytest.mark.parametrize("raised, status", [
    (RecursionError("maximum recursion depth exceeded"), 400),
    (KeyError("msg_id"), 400),
    (OverflowError("int too large"), 400),
])
async def test_whatever_an_adapter_raises_is_never_a_500(client, engine, monkeypatch, raised, status):
    from tests.hub.webhook_helpers import HookAdapter

    async def broken(self, account, request):
        raise raised

    monkeypatch.setattr(HookAdapter, "parse_webhook", broken)
    body, headers = signed({"msg_id": "m-1", "uid": "u-1"})
    response = await client.post("/webhooks/hooktest/shop", content=body, headers=headers)
    assert response.status_code == status and stored(engine) == []


async def test_a_platform_outage_while_an_adapter_calls_out_is_a_503(client, engine, monkeypatch):
    import hub
    from tests.hub.webhook_helpers import HookAdapter

    async def outage(self, account, request):
        raise hub.TransientError("upstream 502", platform="hooktest")

    monkeypatch.setattr(HookAdapter, "parse_webhook", outage)
    body, headers = signed({"msg_id": "m-1", "uid": "u-1"})
    response = await client.post("/webhooks/hooktest/shop", content=body, headers=headers)
    assert response.status_code == 503 and stored(engine) == []
