"""Xiaohongshu end to end over loopback: the sandbox, ``siyu sync``, the ledger, tokens, pushes."""

from __future__ import annotations

import json
import logging
import time

import httpx
import sqlalchemy as sa

from hub.cli import main
from hub.config import parse_settings
from hub.plugins import load_plugins
from hub.sync.engine import sync_accounts
from hub.testing import serve_asgi
from hub.webhooks.receiver import create_app
from plugins.xiaohongshu.sandbox import APP_SECRET, account_settings, make_app
from plugins.xiaohongshu.sandbox_data import seller_id
from schemas.tables import FanRow, LedgerEntryRow, OrderRow, TokenRow, WebhookEventRow
from tests.hub.sandboxes import toml_for

HOST = load_plugins()
PHONE_KEY = "test-phone-key-0123456789abcdef"
FAST = {"attempts": 6, "initial_wait": 0.01, "max_wait": 0.05, "jitter": 0.0}


def account(url: str, seed: int = 0, **extra) -> dict:
    return {**account_settings(url, seed=seed), "rate_limits": {"*": [10000, 1]}, **extra}


def rows(engine, table, **where):
    t = table.__table__
    query = sa.select(t)
    for k, v in where.items():
        query = query.where(t.c[k] == v)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def points(engine, prefix: str) -> int:
    t = LedgerEntryRow.__table__
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.c.points), 0))
                                .where(t.c.idempotency_key.startswith(prefix, autoescape=True))).scalar_one())


def test_orders_synced_earn_points_and_refunds_reverse_them(tmp_path, database_url, engine, capsys):
    with serve_asgi(make_app(30, seed=4)) as url:
        raw = {"database": {"url": database_url}, "security": {"phone_key": PHONE_KEY}, "retry": FAST,
               "accounts": [account(url, seed=4, phone_decrypt_calls_per_day=2)]}
        config = tmp_path / "siyu.toml"
        config.write_text(toml_for(raw))
        assert main(["--config", str(config), "sync", "--platform", "xiaohongshu", "--json"]) == 0
        first = json.loads(capsys.readouterr().out)
        shop = httpx.get(f"{url}/_admin/orders").json()
        target = next(o for o in shop.values() if o["orderStatus"] == 7 and o["orderAfterSalesStatus"] == 1
                      and o["totalPayAmount"] - o["totalShippingFree"] >= 1000)
        goods = target["totalPayAmount"] - target["totalShippingFree"]
        earned = points(engine, f"order:xiaohongshu:shop:{target['orderId']}:earn")
        httpx.post(f"{url}/_admin/refund", json={"order_id": target["orderId"], "yuan": f"{goods / 100:.2f}"})
        assert main(["--config", str(config), "sync", "--platform", "xiaohongshu", "--stream", "orders",
                     "--json"]) == 0
        second = json.loads(capsys.readouterr().out)
        stats = httpx.get(f"{url}/_admin/stats").json()
        assert main(["--config", str(config), "ledger", "verify", "--json"]) == 0
        verified = json.loads(capsys.readouterr().out)
    streams = {s["stream"]: s for s in first["streams"]}
    assert set(streams) == {"fans", "orders"} and all(s["complete"] and not s["error"] for s in streams.values())
    assert streams["orders"]["inserted"] == len(shop) == 40  # 30 buyers, every third with two orders
    assert streams["fans"]["inserted"] == 30
    [again] = second["streams"]
    assert again["error"] is None and again["updated"] == 1  # only the refunded order changed
    assert earned == goods // 100 and points(engine, f"order:xiaohongshu:shop:{target['orderId']}:refund:") == -earned
    [stored] = rows(engine, OrderRow, order_id=target["orderId"])
    assert (stored["status"], stored["refunded_fen"], stored["amount_fen"]) == ("refunded", goods, goods)
    # every paid order earned one point per yuan of goods; refunds took back their share
    for row in rows(engine, OrderRow):
        key = f"order:xiaohongshu:shop:{row['order_id']}"
        earn = points(engine, f"{key}:earn")
        assert earn == (0 if row["status"] in ("created", "cancelled") else row["amount_fen"] // 100), row
        taken = -points(engine, f"{key}:refund:")
        assert taken == (earn * row["refunded_fen"] // row["amount_fen"] if row["refunded_fen"] else 0), row
    assert any(r["status"] == "partially_refunded" for r in rows(engine, OrderRow))
    fans = rows(engine, FanRow, platform="xiaohongshu")
    assert len(fans) == 30 and all(f["member_id"] is not None for f in fans)
    assert any(f["identity_keys"] for f in fans)  # receiver phones decrypted, kept as keyed hashes only
    assert stats["decrypt_calls_by_day"] and max(stats["decrypt_calls_by_day"].values()) <= 2
    assert stats.get("bad_signs", 0) == 0 and stats["refresh_requests"] == 1
    assert verified.get("ok", True) and not verified.get("violations")


async def test_tokens_rotate_and_a_dead_grant_says_when_to_authorise_again(database_url, engine, caplog):
    caplog.set_level(logging.INFO, "siyu")
    with serve_asgi(make_app(6)) as url:
        settings = parse_settings({"database": {"url": database_url}, "security": {"phone_key": PHONE_KEY},
                                   "retry": FAST, "accounts": [account(url)]}, HOST)

        async def one_sync():
            [summary] = await sync_accounts(HOST, settings, engine, stream="orders")
            return summary

        assert (await one_sync()).error is None  # unknown expiry: refreshed first, same tokens back
        kept = [rows(engine, TokenRow)[0]]
        httpx.post(f"{url}/_admin/clock", json={"advance": 8 * 86400})  # the platform's token died meanwhile
        assert (await one_sync()).error is None  # rejected → refreshed once → re-sent
        kept.append(rows(engine, TokenRow)[0])
        httpx.post(f"{url}/_admin/clock", json={"advance": 15 * 86400})  # past the new 14-day refresh token
        dead = await one_sync()
        stats = httpx.get(f"{url}/_admin/stats").json()
    assert kept[0]["access_token"] == "token-sandbox-0" and kept[0]["extra"]["seller_id"] == seller_id(0)
    assert kept[1]["access_token"] != kept[0]["access_token"] and kept[1]["refresh_token"] != "refresh-sandbox-0"
    assert stats["refresh_requests"] == 3 and stats["tokens_issued"] == 1 and stats["token_rejected"] == 2
    assert dead.error and "must authorise the app again" in dead.error and "refused the refresh token now" in dead.error
    for secret in (kept[1]["access_token"], kept[1]["refresh_token"], APP_SECRET):
        assert secret not in caplog.text and secret not in dead.error


def test_a_push_through_the_receiver_is_stored_once_and_its_order_read_at_once(database_url, engine):
    with serve_asgi(make_app(6, seed=2)) as sandbox:
        settings = parse_settings({"database": {"url": database_url}, "security": {"phone_key": PHONE_KEY},
                                   "retry": FAST, "accounts": [account(sandbox, seed=2)]}, HOST)
        app = create_app(HOST, settings, engine, apply_pending_on_start=False)
        with serve_asgi(app) as hub_url:
            order = {"url": f"{hub_url}/webhooks/xiaohongshu/shop", "path": "/webhooks/xiaohongshu/shop",
                     "messages": [{"msgTag": "msg_fulfillment_status_change", "sellerId": seller_id(2),
                                   "data": {"orderId": "P002000000000000001", "orderStatus": 7,
                                            "updateTime": 1_700_000_000_000}}]}
            answers = [httpx.post(f"{sandbox}/_admin/push", json=order).json() for _ in range(2)]
            forged = httpx.post(f"{sandbox}/_admin/push", json={**order, "secret": "not-the-secret"}).json()
            deadline = time.monotonic() + 30  # the order is read after the acknowledgement, not before it
            while not rows(engine, OrderRow) and time.monotonic() < deadline:
                time.sleep(0.05)
    assert [a["status"] for a in answers] == [200, 200] and forged["status"] == 401
    assert json.loads(answers[0]["body"]) == {"success": True, "error_code": 0, "error_msg": ""}
    [event] = rows(engine, WebhookEventRow)
    assert event["status"] == "processed" and event["payload"]["raw"]["orders_changed"] == ["P002000000000000001"]
    assert event["payload"]["follow_up"] == {"orders": ["P002000000000000001"]}
    [stored] = rows(engine, OrderRow)  # fetched by the push's follow-up, without a sync
    assert stored["order_id"] == "P002000000000000001" and stored["buyer_uid"]
    assert any(f["platform_uid"] == stored["buyer_uid"] for f in rows(engine, FanRow))

async def test_a_second_pass_reads_only_what_changed_since_the_first(database_url, engine):
    """A pass ends with a high-water mark (the stream's resume cursor): the next one probes from a
    little before the last horizon, not the whole look-back again, and still sees a refund."""
    with serve_asgi(make_app(6, seed=2)) as sandbox:
        settings = parse_settings({"database": {"url": database_url}, "security": {"phone_key": PHONE_KEY},
                                   "retry": FAST, "accounts": [account(sandbox, seed=2)]}, HOST)
        [first] = await sync_accounts(HOST, settings, engine, stream="orders")
        pages_first = httpx.get(f"{sandbox}/_admin/stats").json()["list_pages"]
        some = sorted(httpx.get(f"{sandbox}/_admin/orders").json())[0]
        httpx.post(f"{sandbox}/_admin/refund", json={"order_id": some, "yuan": "1.00"})
        [second] = await sync_accounts(HOST, settings, engine, stream="orders")
        pages_second = httpx.get(f"{sandbox}/_admin/stats").json()["list_pages"] - pages_first
    assert first.complete and second.complete and second.resumed
    assert pages_first > 20 and pages_second <= 2, (pages_first, pages_second)
    assert second.updated == 1 and second.inserted == 0


def test_siyu_apply_completes_a_push_whose_order_could_not_be_read_when_it_came(database_url, engine, tmp_path,
                                                                               capsys):
    from hub.people.phones import PhoneVault
    from hub.webhooks.stored import event_payload, store_event

    with serve_asgi(make_app(6, seed=2)) as sandbox:
        some = sorted(httpx.get(f"{sandbox}/_admin/orders").json())[0]
        # as the receiver stores a push when the platform could not be reached after the acknowledgement
        payload = event_payload([], PhoneVault(PHONE_KEY), raw={"orders_changed": [some]},
                                follow_up={"orders": [some]})
        assert store_event(engine, "xiaohongshu", "shop", "sha256:pending-push", payload).created
        config = tmp_path / "siyu.toml"
        config.write_text(toml_for({"database": {"url": database_url}, "security": {"phone_key": PHONE_KEY},
                                    "retry": FAST, "accounts": [account(sandbox, seed=2)]}))
        capsys.readouterr()
        assert main(["--config", str(config), "apply", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"]
    [event] = rows(engine, WebhookEventRow)
    assert event["status"] == "processed"
    assert [o["order_id"] for o in rows(engine, OrderRow)] == [some]
