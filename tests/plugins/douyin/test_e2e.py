"""Douyin end to end over loopback: the sandbox, ``siyu sync``, the receiver, ``siyu serve``, the outbox."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from hub.cli import main
from hub.config import parse_settings
from hub.outbox.drain import Drainer, enqueue
from hub.plugins import load_plugins
from hub.sync.engine import sync_accounts
from hub.testing import free_port, serve_asgi
from hub.webhooks.receiver import create_app
from plugins.douyin.sandbox import (
    CLIENT_SECRET,
    OPEN_ID,
    Faults,
    account_settings,
    event_body,
    make_app,
    signed_headers,
)
from schemas.tables import FanRow, MessageRow, TokenRow, WebhookEventRow
from tests.hub.sandboxes import ServeProcess, toml_for

HOST = load_plugins()
ROOT = Path(__file__).resolve().parents[3]
PHONE_KEY = "test-phone-key-0123456789abcdef"
DAY = 86400.0
FAST = {"attempts": 6, "initial_wait": 0.01, "max_wait": 0.05, "jitter": 0.0}


def account(url: str, **extra) -> dict:
    return {**account_settings(url), "rate_limits": {"*": [10000, 1]}, **extra}


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


def test_siyu_sync_stops_at_the_documented_cap_and_says_so(tmp_path, database_url, engine, capsys):
    with serve_asgi(make_app(5100)) as url:
        raw = {"database": {"url": database_url}, "security": {"phone_key": PHONE_KEY},
               "accounts": [account(url, page_size=1000)]}
        config = tmp_path / "siyu.toml"
        config.write_text(toml_for(raw))
        assert main(["--config", str(config), "sync", "--platform", "douyin", "--json"]) == 0
        stats = httpx.get(f"{url}/_admin/stats").json()
    doc = json.loads(capsys.readouterr().out)
    [fans] = doc["streams"]
    assert (fans["stream"], fans["inserted"], fans["complete"], fans["pages"]) == ("fans", 5000, True, 5)
    assert any("at most 5,000" in n and "5,100" in n for n in fans["notes"])
    assert stats["fans_pages"] == 5 and stats["refresh_requests"] == 1 and stats.get("renew_requests", 0) == 0
    [token] = rows(engine, TokenRow, platform="douyin", account_id="ent")
    # the configured expiries were unknown: refreshed once and persisted; no renewal spent to learn
    # the refresh token's expiry, which the refresh answer told (30 days: outside the window)
    assert token["refresh_token"] == "rft.sandbox-0" and token["extra"]["renewals"] == 0
    assert token["access_token"] != "act.sandbox-0" and token["refresh_expires_at"] is not None
    [fan] = rows(engine, FanRow, platform_uid="fan-0-000002")
    assert fan["union_id"] == "union-0-000002" and fan["nickname"] == "抖音用户2"


async def test_tokens_expire_rotate_and_run_out_of_renewals(database_url, engine, caplog):
    caplog.set_level(logging.INFO, "siyu")
    with serve_asgi(make_app(30)) as url:
        settings = settings_for(database_url, account(url, page_size=20))

        async def one_sync():
            [summary] = await sync_accounts(HOST, settings, engine, stream="fans")
            return summary

        assert (await one_sync()).error is None
        renewals = [rows(engine, TokenRow)[0]["extra"]["renewals"]]
        for _ in range(7):  # 15 days pass between syncs: the access token dies every time
            httpx.post(f"{url}/_admin/clock", json={"advance": 15 * 86400})
            summary = await one_sync()
            renewals.append(rows(engine, TokenRow)[0]["extra"]["renewals"])
            if summary.error:
                break
        grants = httpx.get(f"{url}/_admin/grants").json()
    # the first sync learns the expiry (30 days: no renewal); from then on each refresh says 15 days
    # are left, inside renew_within_days (16), so each sync renews once until the five are spent
    assert renewals == [0, 1, 2, 3, 4, 5, 5, 5], renewals
    assert summary.error and "10010" in summary.error  # the last grant ran out: re-authorise
    assert [g["renewals"] for g in grants.values()] == [5]
    assert "only 1 refresh-token renewal(s) left" in caplog.text and "no refresh-token renewals left" in caplog.text
    assert "rft." not in caplog.text and "act." not in caplog.text and CLIENT_SECRET not in caplog.text


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def test_an_unknown_refresh_expiry_spends_no_renewal_and_stores_the_refresh_answers(database_url, engine):
    with serve_asgi(make_app(30, refresh_left=20 * DAY)) as url:
        settings = settings_for(database_url, account(url))
        for _ in range(2):
            [summary] = await sync_accounts(HOST, settings, engine, stream="fans")
            assert summary.error is None
        stats = httpx.get(f"{url}/_admin/stats").json()
    assert stats.get("renew_requests", 0) == 0 and stats["refresh_requests"] == 1
    [token] = rows(engine, TokenRow)
    left = aware(token["refresh_expires_at"]) - datetime.now(UTC)
    assert timedelta(days=19) < left <= timedelta(days=20)  # the refresh answer's refresh_expires_in
    assert token["refresh_token"] == "rft.sandbox-0" and token["extra"]["renewals"] == 0
    assert len(rows(engine, FanRow)) == 30


async def test_inside_the_window_the_renewal_is_spent_once(database_url, engine):
    with serve_asgi(make_app(30, refresh_left=10 * DAY)) as url:
        settings = settings_for(database_url, account(url))
        for _ in range(3):
            [summary] = await sync_accounts(HOST, settings, engine, stream="fans")
            assert summary.error is None
        stats = httpx.get(f"{url}/_admin/stats").json()
        grants = httpx.get(f"{url}/_admin/grants").json()
    assert stats["renew_requests"] == 1 and stats["refresh_requests"] == 1
    assert [g["renewals"] for g in grants.values()] == [1]
    [token] = rows(engine, TokenRow)
    assert token["refresh_token"] != "rft.sandbox-0" and token["extra"]["renewals"] == 1
    assert timedelta(days=29) < aware(token["refresh_expires_at"]) - datetime.now(UTC) <= timedelta(days=30)


@pytest.mark.parametrize(("refusal", "said"), [("scope", "code 10004"), ("404", "HTTP 404")])
def test_a_refused_renewal_is_a_warning_and_siyu_sync_completes(refusal, said, tmp_path, database_url, engine, capsys,
                                                                caplog):
    """No renew_refresh_token scope (10004), or no such endpoint (404): every fan arrives, exit 0,
    one warning names the date to re-authorise by, and the next sync within the day does not ask."""
    caplog.set_level(logging.WARNING, "siyu")
    with serve_asgi(make_app(30, refresh_left=10 * DAY, faults=Faults(refuse_renewal=refusal))) as url:
        raw = {"database": {"url": database_url}, "security": {"phone_key": PHONE_KEY}, "accounts": [account(url)]}
        config = tmp_path / "siyu.toml"
        config.write_text(toml_for(raw))
        command = ["--config", str(config), "sync", "--platform", "douyin", "--json"]
        assert main(command) == 0
        first = json.loads(capsys.readouterr().out)
        assert httpx.get(f"{url}/_admin/stats").json()["renew_requests"] == 1
        assert main(command) == 0  # within the day: the refusal is not asked again
        stats = httpx.get(f"{url}/_admin/stats").json()
    [fans] = first["streams"]
    assert (fans["inserted"], fans["complete"], fans.get("error")) == (30, True, None)
    assert len(rows(engine, FanRow, platform="douyin")) == 30
    assert stats["renew_requests"] == 1 and stats["fans_pages"] == 4
    [token] = rows(engine, TokenRow, account_id="ent")
    expiry = aware(token["refresh_expires_at"])  # from the refresh answer: the 10 days the grant has left
    assert timedelta(days=9) < expiry - datetime.now(UTC) <= timedelta(days=10)
    assert token["refresh_token"] == "rft.sandbox-0" and "renewal_refused_at" in token["extra"]
    [warning] = [r for r in caplog.records if "could not be renewed" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert expiry.date().isoformat() in warning.getMessage() and "authorise the app again" in warning.getMessage()
    assert said in warning.getMessage()
    assert "rft." not in caplog.text and "act." not in caplog.text and CLIENT_SECRET not in caplog.text


def message_content(n: int, fan: str = "fan-0-000001") -> dict:
    return {"conversation_short_id": f"conv-{fan}", "server_message_id": f"srv-{n}", "conversation_type": 1,
            "message_type": "text", "text": f"第{n}条", "create_time": 1_700_000_000_000 + n,
            "user_infos": [{"open_id": fan, "nick_name": "粉丝一号", "avatar": "https://x/a.jpeg"}]}


def test_signed_deliveries_through_the_receiver_are_stored_once(database_url, engine):
    with serve_asgi(make_app(10)) as sandbox:
        settings = settings_for(database_url, account(sandbox))
        app = create_app(HOST, settings, engine, apply_pending_on_start=False)
        with serve_asgi(app) as hub_url:
            target = f"{hub_url}/webhooks/douyin/ent"
            assert httpx.post(f"{sandbox}/_admin/verify", json={"url": target, "challenge": 424242}).json() == {
                "ok": True, "status": 200}
            order = {"url": target, "event": "im_receive_msg", "from_user_id": "fan-0-000001", "msg_id": "m-1",
                     "content": message_content(1)}
            first = httpx.post(f"{sandbox}/_admin/deliver", json=order).json()
            again = httpx.post(f"{sandbox}/_admin/deliver", json=order).json()  # Douyin retries
            follow = httpx.post(f"{sandbox}/_admin/deliver", json={
                "url": target, "event": "new_follow_action", "from_user_id": "fan-0-000005", "msg_id": "m-2",
                "content": {"action_type": 1, "action_time": 1_700_000_100}}).json()
            body = event_body("im_receive_msg", message_content(3), from_user_id="fan-0-000001")
            forged = httpx.post(target, content=body, headers=signed_headers(body, msg_id="m-3", secret="wrong"))
            tampered = httpx.post(target, content=body.replace("第3条".encode(), "第4条".encode()),
                                  headers=signed_headers(body, msg_id="m-4"))
            assert len(rows(engine, WebhookEventRow)) == 2  # stored before the answer
        # leaving the block waits for the work done after answering
    assert [first["status"], again["status"], follow["status"]] == [200, 200, 200]
    assert (forged.status_code, tampered.status_code) == (401, 401)
    events = rows(engine, WebhookEventRow)
    keys = sorted((e["dedupe_key"].split(":")[0], e["status"]) for e in events)  # from the signed bodies
    assert keys == [("im", "processed"), ("sha256", "processed")]
    [message] = rows(engine, MessageRow)
    assert (message["platform_msg_id"], message["conversation_id"], message["fan_uid"]) == (
        "srv-1", "conv-fan-0-000001", "fan-0-000001")
    fans = {f["platform_uid"]: f for f in rows(engine, FanRow)}
    assert fans["fan-0-000001"]["nickname"] == "粉丝一号" and fans["fan-0-000005"]["follow_state"] == "following"
    # the message delivered twice counts once; the follow is an interaction too
    assert fans["fan-0-000001"]["interactions"] == {"messages": 1}
    assert fans["fan-0-000005"]["interactions"] == {"follows": 1}


async def test_the_outbox_pushes_cards_and_replies_through_the_sandbox(database_url, engine):
    with serve_asgi(make_app(10)) as url:
        settings = settings_for(database_url, account(url))
        reply = {"platform": "douyin", "account_id": "ent", "platform_msg_id": "out-1", "conversation_id": "conv-9",
                 "fan_uid": "fan-0-000001", "direction": "outbound", "content_type": "text",
                 "body": {"reply_to": "srv-1", "text": "欢迎回来"}, "sent_at": "2026-01-01T00:00:00+00:00"}
        with engine.begin() as conn:
            for balance in (40, 75):  # the second supersedes the first
                enqueue(conn, platform="douyin", account_id="ent", kind="card_update", target="card:1",
                        payload={"member_id": 1, "card_no": "fan-0-000001", "balance": balance, "level": 2})
            enqueue(conn, platform="douyin", account_id="ent", kind="message", target="conv:conv-9", payload=reply)
        summary = await Drainer(engine, HOST, settings).drain()
        members = httpx.get(f"{url}/_admin/members").json()
        messages = httpx.get(f"{url}/_admin/messages").json()
    assert summary.sent == 2 and summary.dead == 0
    assert members["members"] == {"fan-0-000001": {"points_amount_cent": 7500, "user_level": 3}}
    assert len(members["updates"]) == 1
    [sent] = messages
    assert (sent["open_id"], sent["to_user_id"], sent["msg_id"], sent["content"]) == (
        OPEN_ID, "fan-0-000001", "srv-1", {"msg_type": 1, "text": {"text": "欢迎回来"}})


def test_siyu_serve_receives_douyin_callbacks(tmp_path, database_url, engine):
    port = free_port()
    with serve_asgi(make_app(10)) as sandbox:
        raw = {"database": {"url": database_url}, "security": {"phone_key": PHONE_KEY}, "accounts": [account(sandbox)]}
        config = tmp_path / "siyu.toml"
        config.write_text(toml_for(raw))
        command = [str(Path(sys.executable).parent / "siyu"), "--config", str(config), "serve", "--port", str(port)]
        with ServeProcess(command, port, cwd=str(ROOT)) as served:
            target = f"{served.url}/webhooks/douyin/ent"
            order = {"url": target, "event": "life_member_join", "from_user_id": "fan-0-000007", "msg_id": "join-1",
                     "content": {"account_id": "7000000000000001", "open_id": "fan-0-000007",
                                 "mobile": "13900139000"}}
            body = event_body(order["event"], order["content"], from_user_id=order["from_user_id"])
            answers = [httpx.post(target, content=body, headers=signed_headers(body, msg_id=msg_id)).status_code
                       for msg_id in ("join-1", "join-1-again")]  # a retry: the same signed bytes
            verified = httpx.post(f"{sandbox}/_admin/verify", json={"url": target}).json()
    log_text = served.log
    assert answers == [200, 200] and verified["ok"]
    assert "stored as event" in log_text and "a re-delivery" in log_text
    for secret in ("13900139000", CLIENT_SECRET, "rft.", "act."):
        assert secret not in log_text
    [event] = rows(engine, WebhookEventRow)
    assert event["dedupe_key"].startswith("sha256:") and event["status"] == "processed"
    assert "13900139000" not in json.dumps(event["payload"], ensure_ascii=False)
    [fan] = rows(engine, FanRow, platform_uid="fan-0-000007")
    assert fan["phone_hash"] is not None


async def test_a_member_join_becomes_a_card_that_shows_the_unified_balance(database_url, engine):
    """life_member_join → the member's card → points from another platform → pushed to 来客."""
    from hub.sync.apply import apply_pending
    from hub.ledger import post
    from hub.sync.store import upsert
    from schemas import Fan
    from schemas.tables import MemberCardRow

    with serve_asgi(make_app(10)) as sandbox:
        settings = settings_for(database_url, account(sandbox))
        app = create_app(HOST, settings, engine, apply_pending_on_start=False)
        with serve_asgi(app) as hub_url:
            join = {"url": f"{hub_url}/webhooks/douyin/ent", "event": "life_member_join",
                    "from_user_id": "fan-0-000007", "msg_id": "join-7",
                    "content": {"account_id": "7000", "open_id": "fan-0-000007", "mobile": "13512345678"}}
            assert httpx.post(f"{sandbox}/_admin/deliver", json=join).json()["status"] == 200
        with engine.begin() as conn:  # the same person on WeCom, known by the same phone
            upsert(conn, [Fan(platform="wecom", account_id="hq", platform_uid="wm-7", phone="13512345678")],
                   settings.phones)
        applied = apply_pending(engine, HOST, settings)
        assert applied.cards_updated == 1 and applied.errors == []
        [card] = rows(engine, MemberCardRow)
        assert (card["platform"], card["card_no"], card["status"]) == ("douyin", "fan-0-000007", "active")
        [wecom_fan] = rows(engine, FanRow, platform="wecom")
        assert wecom_fan["member_id"] == card["member_id"]  # one person across the two platforms
        post(engine, member_id=card["member_id"], points=321, reason="WeCom order", key="wecom-order-1")
        summary = await Drainer(engine, HOST, settings).drain()
        members = httpx.get(f"{sandbox}/_admin/members").json()
    assert summary.dead == 0
    assert members["members"]["fan-0-000007"]["points_amount_cent"] == 32100
