"""Kuaishou end to end over loopback: the sandbox, ``siyu sync``, the ledger, the receiver."""

from __future__ import annotations

import json
import time
import logging

import httpx
import sqlalchemy as sa

from hub.cli import main
from hub.config import parse_settings
from hub.plugins import load_plugins
from hub.sync.engine import sync_accounts
from hub.testing import serve_asgi
from hub.webhooks.receiver import create_app
from plugins.kuaishou.sandbox import APP_SECRET, MESSAGE_KEY, SIGN_SECRET, account_settings, make_app
from plugins.kuaishou.sandbox_data import buyer_id
from schemas.tables import FanRow, LedgerEntryRow, OrderRow, TokenRow, WebhookEventRow
from tests.hub.sandboxes import toml_for

HOST = load_plugins()
PHONE_KEY = "test-phone-key-0123456789abcdef"
FAST = {"attempts": 6, "initial_wait": 0.01, "max_wait": 0.05, "jitter": 0.0}


def account(url: str, seed: int = 0, **extra) -> dict:
    return {**account_settings(url, seed=seed), "rate_limits": {"*": [10000, 1]}, **extra}


def settings_for(database_url: str, *accounts: dict):
    raw = {"database": {"url": database_url}, "security": {"phone_key": PHONE_KEY}, "retry": FAST,
           "accounts": list(accounts)}
    return parse_settings(raw, HOST)


def rows(engine, table, **where):
    t = table.__table__
    query = sa.select(t)
    for k, v in where.items():
        query = query.where(t.c[k] == v)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def entry_points(engine, key: str) -> list[int]:
    t = LedgerEntryRow.__table__
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t.c.points).where(t.c.idempotency_key == key).order_by(t.c.entry_id))
                    .scalars())


def refund_points(engine, oid: int) -> int:
    t = LedgerEntryRow.__table__
    prefix = f"order:kuaishou:shop:{oid}:refund:"
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.c.points), 0))
                                .where(t.c.idempotency_key.startswith(prefix))).scalar_one())


def test_orders_synced_earn_points_and_a_refund_reverses_them(tmp_path, database_url, engine, capsys):
    with serve_asgi(make_app(12, seed=3)) as url:
        raw = {"database": {"url": database_url}, "security": {"phone_key": PHONE_KEY}, "retry": FAST,
               "accounts": [account(url, seed=3)]}
        config = tmp_path / "siyu.toml"
        config.write_text(toml_for(raw))
        assert main(["--config", str(config), "sync", "--platform", "kuaishou", "--json"]) == 0
        first = json.loads(capsys.readouterr().out)
        order = httpx.post(f"{url}/_admin/order", json={"buyer": 2, "totalFee": 12_399}).json()
        oid = order["orderBaseInfo"]["oid"]
        assert main(["--config", str(config), "sync", "--platform", "kuaishou", "--json"]) == 0
        capsys.readouterr()
        earned = entry_points(engine, f"order:kuaishou:shop:{oid}:earn")
        httpx.post(f"{url}/_admin/refund", json={"oid": oid})
        assert main(["--config", str(config), "sync", "--platform", "kuaishou", "--json"]) == 0
        capsys.readouterr()
        stats = httpx.get(f"{url}/_admin/stats").json()
        assert main(["--config", str(config), "ledger", "verify", "--json"]) == 0
    streams = {s["stream"]: s for s in first["streams"]}
    assert set(streams) == {"fans", "orders"} and all(s["complete"] and not s["error"] for s in streams.values())
    assert streams["fans"]["inserted"] == 12 and streams["orders"]["inserted"] == len(rows(engine, OrderRow)) - 1
    assert earned == [123]  # one point per yuan of 123.99 yuan
    assert refund_points(engine, oid) == -123
    [stored] = rows(engine, OrderRow, order_id=str(oid))
    assert (stored["status"], stored["refunded_fen"]) == ("refunded", 12_399)
    # every paid order of the generated shop earned; its refunded ones gave everything back
    for row in rows(engine, OrderRow):
        earn = sum(entry_points(engine, f"order:kuaishou:shop:{row['order_id']}:earn"))
        if row["status"] in ("created", "cancelled") or row["amount_fen"] < 100:
            assert earn == 0, row
        else:
            assert earn == row["amount_fen"] // 100, row
        if row["status"] == "refunded" and earn:
            assert refund_points(engine, int(row["order_id"])) == -earn
    [fan] = rows(engine, FanRow, platform_uid=buyer_id(3, 2))
    assert fan["nickname"] == "快手买家2" and fan["member_id"] is not None
    assert stats.get("bad_signatures", 0) == 0 and stats["refresh_requests"] == 1


async def test_tokens_rotate_and_a_dead_grant_says_to_authorise_again(database_url, engine, caplog):
    caplog.set_level(logging.INFO, "siyu")
    with serve_asgi(make_app(8)) as url:
        settings = settings_for(database_url, account(url, sign_method="MD5", order_lookback_days=3))

        async def one_sync():
            [summary] = await sync_accounts(HOST, settings, engine, stream="orders")
            return summary

        assert (await one_sync()).error is None  # unknown expiry: refreshed first
        tokens = [rows(engine, TokenRow)[0]["refresh_token"]]
        httpx.post(f"{url}/_admin/clock", json={"advance": 49 * 3600})  # the access token died meanwhile
        assert (await one_sync()).error is None  # TOKEN过期 → refreshed once → re-sent
        tokens.append(rows(engine, TokenRow)[0]["refresh_token"])
        httpx.post(f"{url}/_admin/clock", json={"advance": 181 * 86400})  # past the grant's 180 days
        dead = await one_sync()
        stats = httpx.get(f"{url}/_admin/stats").json()
    assert tokens[0] != "ks-rt-sandbox-0" and tokens[1] != tokens[0]  # rotated each time, persisted
    assert stats["refresh_requests"] == 3 and stats["token_expired"] == 2 and stats["refresh_refused"] == 1
    assert dead.error and "the shop must authorise the app again" in dead.error and "expiry: 20" in dead.error
    for secret in (*tokens, "ks-at-", APP_SECRET, SIGN_SECRET, MESSAGE_KEY):
        assert secret not in caplog.text


async def test_the_qps_limit_is_waited_out(database_url, engine):
    with serve_asgi(make_app(60, qps=4)) as url:
        settings = settings_for(database_url, account(url, page_size=10, order_lookback_days=90))
        [summary] = await sync_accounts(HOST, settings, engine, stream="orders")
        stats = httpx.get(f"{url}/_admin/stats").json()
    assert summary.error is None and summary.complete
    assert stats.get("qps_limited", 0) >= 1 and summary.retry_reasons.get("RateLimited", 0) >= 1
    assert summary.inserted == len(rows(engine, OrderRow)) > 60


def test_pushes_through_the_receiver_are_acknowledged_in_time_and_stored_once(database_url, engine):
    with serve_asgi(make_app(5)) as sandbox:
        settings = settings_for(database_url, account(sandbox))
        app = create_app(HOST, settings, engine, apply_pending_on_start=False)
        with serve_asgi(app) as hub_url:
            target = f"{hub_url}/webhooks/kuaishou/shop"
            heartbeat = httpx.post(f"{sandbox}/_admin/push", json={"url": target, "test": True}).json()
            order = {"url": target, "event": "kwaishop_order_addOrder", "eventId": "ev-77",
                     "info": {"oid": 2100000000002, "sellerId": 1, "buyerOpenId": buyer_id(0, 4),
                              "createTime": 1767225600000}}
            answers = [httpx.post(f"{sandbox}/_admin/push", json=order).json() for _ in range(3)]  # retried
            wrong_key = httpx.post(f"{sandbox}/_admin/push", json={
                **order, "eventId": "ev-78", "key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}).json()
            garbage = httpx.post(target, content=b"this is not a push", headers={"Content-Type": "text/plain"})
            assert len(rows(engine, WebhookEventRow)) == 1
            deadline = time.monotonic() + 30  # the order list is read after the acknowledgement
            while rows(engine, WebhookEventRow)[0]["status"] != "processed" and time.monotonic() < deadline:
                time.sleep(0.05)
    assert heartbeat["status"] == 200 and json.loads(heartbeat["body"]) == {"result": 1}
    assert [a["status"] for a in answers] == [200, 200, 200]
    assert all(json.loads(a["body"]) == {"result": 1} and a["ms"] < 3000 for a in answers)
    assert wrong_key["status"] == 400 and garbage.status_code == 400
    [event] = rows(engine, WebhookEventRow)
    assert event["dedupe_key"] == "ev-77" and event["status"] == "processed"
    assert event["payload"]["raw"]["event"] == "kwaishop_order_addOrder"
    [fan] = rows(engine, FanRow, platform_uid=buyer_id(0, 4))
    assert fan["platform"] == "kuaishou"
    # the push's follow-up read the order list (no sync ran): the shop's orders are stored
    assert event["payload"]["follow_up"] == {"orders_updated_since": 1767225600000}
    assert {o["order_id"] for o in rows(engine, OrderRow)} >= {"2100000000002"}


async def test_a_second_pass_reads_only_what_changed_since_the_first(database_url, engine):
    """A pass over the order list ends with a high-water mark (the stream's resume cursor): the
    next pass reads from a little before it, not the whole look-back again, and still finds a new
    order."""
    with serve_asgi(make_app(5)) as sandbox:
        settings = settings_for(database_url, account(sandbox))
        [first] = await sync_accounts(HOST, settings, engine, stream="orders")
        requests_first = httpx.get(f"{sandbox}/_admin/stats").json()["order_requests"]
        httpx.post(f"{sandbox}/_admin/order", json={"buyer": 2, "totalFee": 990})
        [second] = await sync_accounts(HOST, settings, engine, stream="orders")
        requests_second = httpx.get(f"{sandbox}/_admin/stats").json()["order_requests"] - requests_first
    assert first.complete and second.complete and second.resumed
    assert requests_first >= 13 and requests_second == 1, (requests_first, requests_second)  # 90 days vs one window
    assert second.inserted == 1 and len(rows(engine, OrderRow)) == first.inserted + 1
