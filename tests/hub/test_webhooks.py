"""The webhook receiver: verify, store once, acknowledge exactly, then apply."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from hub.events import FanUpserted
from hub.webhooks.stored import encode_records, store_event
from hub.webhooks.receiver import create_app
from schemas import Fan
from schemas.tables import FanRow, WebhookEventRow
from tests.hub.sandboxes import ServeProcess
from tests.hub.webhook_helpers import (
    ACK,
    SECRET,
    Tracker,
    free_socket,
    make_host,
    make_settings,
    serving,
    sign,
    signed,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]
events_table = WebhookEventRow.__table__
fans_table = FanRow.__table__
PHONE = "13800138000"
URL = "/webhooks/hooktest/shop"


@pytest.fixture
def tracker():
    return Tracker()


@pytest.fixture
def app(engine, database_url, tracker):
    host = make_host(tracker)
    return create_app(host, make_settings(host, database_url), engine, max_body=4096)


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
        yield c
    await app.state.receiver.aclose()


def rows(engine, table):
    with engine.connect() as conn:
        return conn.execute(sa.select(table).order_by(table.c.id)).mappings().all()


def callback(msg_id="m-1", uid="u-1", **extra):
    return {"msg_id": msg_id, "uid": uid, "nickname": "小红", "phone": PHONE, **extra}


async def test_valid_callback_is_stored_acknowledged_and_applied(client, engine, tracker):
    body, headers = signed(callback())
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 200
    assert response.content == ACK and response.headers["content-type"] == "application/json"
    [event] = rows(engine, events_table)
    assert (event["platform"], event["account_id"], event["dedupe_key"]) == ("hooktest", "shop", "m-1")
    assert event["status"] == "processed" and event["processed_at"] is not None
    [fan] = rows(engine, fans_table)
    assert fan["platform_uid"] == "u-1" and fan["nickname"] == "小红"
    assert fan["phone_hash"] and len(fan["phone_hash"]) == 64
    [tracked] = [e for e in tracker.events if isinstance(e, FanUpserted)]
    assert tracked.created and tracked.fan.platform_uid == "u-1"


async def test_stored_payload_keeps_no_clear_phone(client, engine):
    body, headers = signed(callback())
    assert (await client.post(URL, content=body, headers=headers)).status_code == 200
    [event] = rows(engine, events_table)
    text = str(event["payload"])
    assert PHONE not in text and "小红" in text


async def test_an_event_without_records_is_stored_raw_and_acknowledged(client, engine):
    body, headers = signed({"msg_id": "m-raw", "event": "shop_decorated"})
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 200 and response.content == ACK
    [event] = rows(engine, events_table)
    assert event["dedupe_key"] == "m-raw" and event["payload"]["raw"] == {"event": "shop_decorated"}
    assert event["payload"]["records"] == []


async def test_replay_gets_the_same_ack_and_stores_nothing_new(client, engine, tracker):
    body, headers = signed(callback())
    first = await client.post(URL, content=body, headers=headers)
    again = await client.post(URL, content=body, headers=headers)
    assert (first.status_code, first.content) == (again.status_code, again.content) == (200, ACK)
    # the same message id re-signed later (a platform's re-delivery) is still one event
    later_body, later_headers = signed(callback(nickname="改名"))
    third = await client.post(URL, content=later_body, headers=later_headers)
    assert third.content == ACK
    assert len(rows(engine, events_table)) == 1
    [fan] = rows(engine, fans_table)
    assert fan["nickname"] == "小红"
    assert len([e for e in tracker.events if isinstance(e, FanUpserted)]) == 1


async def test_a_new_message_updates_the_fan(client, engine, tracker):
    for msg_id, name in (("m-1", "小红"), ("m-2", "小蓝")):
        body, headers = signed(callback(msg_id=msg_id, nickname=name))
        assert (await client.post(URL, content=body, headers=headers)).status_code == 200
    assert [e["dedupe_key"] for e in rows(engine, events_table)] == ["m-1", "m-2"]
    [fan] = rows(engine, fans_table)
    assert fan["nickname"] == "小蓝"
    assert [e.created for e in tracker.events if isinstance(e, FanUpserted)] == [True, False]


@pytest.mark.parametrize("forge", ["wrong-secret", "tampered", "stale", "unsigned"])
async def test_forged_tampered_stale_or_unsigned_is_4xx_and_stores_nothing(client, engine, forge):
    body, headers = signed(callback())
    if forge == "wrong-secret":
        body, headers = signed(callback(), secret="not-the-secret-at-all")
    elif forge == "tampered":
        body = body.replace(b"u-1", b"u-2")
    elif forge == "stale":
        body, headers = signed(callback(), timestamp=int(time.time()) - 3600)
    else:
        headers = {"Content-Type": "application/json"}
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == (403 if forge == "stale" else 401)
    assert response.content != ACK
    assert rows(engine, events_table) == [] and rows(engine, fans_table) == []


@pytest.mark.parametrize("path", [
    "/webhooks/nosuchplatform/shop",   # no plugin registers it
    "/webhooks/hooktest/other",        # not a configured account
    "/webhooks/quiethook/shop",        # configured, but its adapter takes no callbacks
    "/webhooks/douyin/shop",           # installed platform, no such account
])
async def test_unknown_targets_are_404(client, engine, path):
    body, headers = signed(callback())
    response = await client.post(path, content=body, headers=headers)
    assert response.status_code == 404
    assert rows(engine, events_table) == []


async def test_oversized_body_is_413_and_stores_nothing(client, engine):
    body, headers = signed(callback(padding="x" * 5000))
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 413
    assert rows(engine, events_table) == []


async def test_url_verification_echo_stores_nothing(client, engine):
    ts = str(int(time.time()))
    query = {"echostr": "abc123", "timestamp": ts, "signature": sign(b"abc123", int(ts))}
    response = await client.get(URL, params=query)
    assert (response.status_code, response.text) == (200, "abc123")
    bad = await client.get(URL, params={**query, "echostr": "abc124"})
    assert bad.status_code == 401
    assert rows(engine, events_table) == []


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}


async def test_info_logs_carry_no_secrets_phones_or_bodies(client, caplog):
    caplog.set_level(logging.INFO)
    body, headers = signed(callback())
    await client.post(URL, content=body, headers=headers)
    await client.post(URL, content=body, headers=headers)
    await client.post(URL, content=body.replace(b"u-1", b"u-9"), headers=headers)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "m-1" in text  # the receiver does log what it did
    for secret in (PHONE, "小红", SECRET, headers["X-Hook-Signature"]):
        assert secret not in text


def test_real_http_over_loopback(engine, database_url, tracker):
    host = make_host(tracker)
    settings = make_settings(host, database_url)
    # a callback a crashed run stored but never applied: the next start-up applies it
    leftover = Fan(platform="hooktest", account_id="shop", platform_uid="u-0", nickname="旧")
    store_event(engine, "hooktest", "shop", "m-0", {"records": encode_records([leftover], settings.phones)})
    app = create_app(host, settings, engine, max_body=4096)
    with serving(app) as base_url, httpx.Client(base_url=base_url) as http:
        body, headers = signed(callback())
        first = http.post(URL, content=body, headers=headers)
        replay = http.post(URL, content=body, headers=headers)
        assert (first.status_code, first.content) == (replay.status_code, replay.content) == (200, ACK)
        forged = http.post(URL, content=body.replace(b"u-1", b"u-2"), headers=headers)
        assert forged.status_code == 401
        big, big_headers = signed(callback(msg_id="m-big", padding="x" * 8000))
        assert http.post(URL, content=big, headers=big_headers).status_code == 413
        chunked = http.post(URL, content=iter([big[:3000], big[3000:6000], big[6000:]]), headers=big_headers)
        assert chunked.status_code == 413
        assert http.get("/healthz").json() == {"ok": True}
        assert http.post("/webhooks/hooktest/nobody", content=body, headers=headers).status_code == 404
    # leaving the block stops the server, after its background work
    assert [(e["dedupe_key"], e["status"]) for e in rows(engine, events_table)] == [
        ("m-0", "processed"), ("m-1", "processed")]
    assert sorted(f["platform_uid"] for f in rows(engine, fans_table)) == ["u-0", "u-1"]


def test_siyu_serve_receives_over_loopback(engine, database_url, tmp_path):
    config = write_config(tmp_path / "siyu.toml", database_url)
    with free_socket() as probe:
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "tests.hub.webhook_helpers", "--config", str(config), "serve",
               "--port", str(port), "--max-body", "4096"]
    with ServeProcess(command, port, cwd=str(ROOT)) as served, httpx.Client(base_url=served.url) as http:
        body, headers = signed(callback())
        assert http.post(URL, content=body, headers=headers).content == ACK
        assert http.post(URL, content=body, headers=headers).content == ACK
        assert http.post(URL, content=body[:-1] + b" }", headers=headers).status_code == 401
        big, big_headers = signed(callback(msg_id="m-big", padding="x" * 5000))
        assert http.post(URL, content=big, headers=big_headers).status_code == 413
    log_text = served.log
    assert "stored as event" in log_text and "a re-delivery" in log_text and "rejected (401)" in log_text
    for secret in (PHONE, "小红", SECRET, headers["X-Hook-Signature"], headers["X-Hook-Timestamp"]):
        assert secret not in log_text
    assert [(e["dedupe_key"], e["status"]) for e in rows(engine, events_table)] == [("m-1", "processed")]
    assert [f["platform_uid"] for f in rows(engine, fans_table)] == ["u-1"]


def test_an_event_that_cannot_be_applied_is_marked_failed(engine, database_url, tracker):
    from hub.webhooks.stored import apply_event

    host = make_host(tracker)
    settings = make_settings(host, database_url)
    stored = store_event(engine, "hooktest", "shop", "m-bad", {"records": [{"type": "Coupon", "data": {}}]})
    assert apply_event(engine, host, settings.phones, stored.id) is None
    [event] = rows(engine, events_table)
    assert event["status"] == "failed" and event["error"] == "KeyError: 'Coupon'"
    assert apply_event(engine, host, settings.phones, stored.id) is None  # applied at most once
    assert rows(engine, fans_table) == [] and tracker.events == []
