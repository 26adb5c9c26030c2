"""End to end over loopback: a shopper opens the Alipay member card from the activation form, the
hub stitches them with the same person's WeCom fan (same phone), and after ``siyu apply`` and
``siyu outbox drain`` the Alipay card shows the member's unified balance; a replayed or reused
``auth_code`` opens nothing twice; a card-delete notify closes the member's card."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa

from hub.cli import main
from hub.platform.account import open_account
from hub.plugins import load_plugins
from hub.sync.store import upsert
from hub.testing import free_port, serve_asgi
from hub.webhooks.receiver import create_app
from plugins.alipay.sandbox import make_sandbox
from schemas import Fan, PointsEvent
from schemas.tables import FanRow, MemberCardRow, MemberRow, OutboxRow, WebhookEventRow
from tests.hub.sandboxes import settings_for, toml_for

HOST = load_plugins()
PHONE = "13912345678"


def rows(engine, table, **where):
    t = table.__table__
    query = sa.select(t).where(*(t.c[k] == v for k, v in where.items()))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def test_activation_stitches_the_shopper_and_the_card_shows_the_unified_balance(tmp_path, database_url, engine, capsys):
    port = free_port()
    spec = make_sandbox(5, 20, f"http://127.0.0.1:{port}")
    sandbox = spec.app.state.sandbox
    account = dict(spec.account)
    raw = {"database": {"url": database_url}, "security": {"phone_key": "test-phone-key-0123456789abcdef"},
           "retry": {"attempts": 4, "initial_wait": 0.01, "max_wait": 0.05, "jitter": 0.01}, "accounts": [account]}
    config = tmp_path / "siyu.toml"
    config.write_text(toml_for(raw))
    settings = settings_for(HOST, database_url, account)

    # the same person is already a WeCom fan, with 1,234 points on the ledger
    with engine.begin() as conn:
        upsert(conn, [Fan(platform="wecom", account_id="hq", platform_uid="wmSHOPPER", phone=PHONE),
                      PointsEvent(platform="wecom", account_id="hq", event_id="welcome-1", fan_uid="wmSHOPPER",
                                  delta=1234, reason="welcome", occurred_at=datetime(2026, 1, 1, tzinfo=UTC))],
               settings.phones)
    assert main(["--config", str(config), "apply", "--json"]) == 0
    capsys.readouterr()
    [wecom] = rows(engine, FanRow, platform="wecom")
    member_id = wecom["member_id"]
    assert rows(engine, MemberRow, member_id=member_id)[0]["balance"] == 1234

    with serve_asgi(spec.app, port=port) as sandbox_url:
        with serve_asgi(create_app(HOST, settings, engine)) as hub_url:
            hook = f"{hub_url}/webhooks/alipay/{account['id']}"
            opened = httpx.post(f"{sandbox_url}/_admin/activate", json={"url": hook, "phone": PHONE}, timeout=30).json()
            assert opened["status"] == 200 and "会员卡已开通" in opened["body"]
            replay = {"auth_code": opened["auth_code"], "request_id": opened["request_id"]}
            again = httpx.get(hook, params=replay, timeout=30)
            assert again.status_code == 200 and again.text == opened["body"]
        with serve_asgi(create_app(HOST, settings, engine)) as other_hub:  # another process: the code is used up
            reused = httpx.get(f"{other_hub}/webhooks/alipay/{account['id']}", params=replay, timeout=30)
            assert reused.status_code == 400
        assert len(sandbox.cards) == 1 and sandbox.stats["alipay.system.oauth.token"] == 2
        assert sandbox.stats["alipay.marketing.card.open"] == 1
        [card] = sandbox.cards.values()
        assert card["point"] is None  # opened; the balance comes with the push

        [alipay] = rows(engine, FanRow, platform="alipay")
        assert alipay["platform_uid"] == opened["open_id"] and alipay["card_no"] == card["biz_card_no"]
        assert alipay["phone_hash"] == wecom["phone_hash"] and alipay["identity_keys"]["alipay_user_id"]
        events = rows(engine, WebhookEventRow, platform="alipay")
        assert len(events) == 1 and events[0]["status"] == "processed" and PHONE not in json.dumps(events[0]["payload"])

        # stitching makes the shopper the WeCom fan's member; the card's push is queued with it
        assert main(["--config", str(config), "apply", "--json"]) == 0
        assert rows(engine, FanRow, platform="alipay")[0]["member_id"] == member_id
        [member_card] = rows(engine, MemberCardRow, platform="alipay")
        assert member_card["member_id"] == member_id and member_card["card_no"] == card["biz_card_no"]
        assert [o["status"] for o in rows(engine, OutboxRow, platform="alipay")] == ["pending"]
        capsys.readouterr()
        assert main(["--config", str(config), "outbox", "drain", "--json"]) == 0
        drained = json.loads(capsys.readouterr().out)
        assert drained["sent"] == 1
        assert card["point"] == "1234.00" and card["level"] == "1" and card["updates"] == 1
        assert card["messages"] == ["会员积分同步，您的积分有变动"]

        # the card_holders read: what Alipay shows, next to the ledger
        async def holders():
            async with open_account(HOST, settings, settings.accounts[0], engine=engine) as handle:
                return await handle.adapter.card_holders(handle.account, [card["biz_card_no"]])
        [holder] = asyncio.run(holders())
        assert holder.points() == 1234 and holder.in_wallet

        # the shopper deletes the card in Alipay: the notify closes the member's card
        with serve_asgi(create_app(HOST, settings, engine)) as hub_url:
            hook = f"{hub_url}/webhooks/alipay/{account['id']}"
            deleted = httpx.post(f"{sandbox_url}/_admin/notify", timeout=30,
                                 json={"url": hook, "kind": "delete", "biz_card_no": card["biz_card_no"]}).json()
            assert deleted["status"] == 200 and deleted["body"] == "success"
        assert main(["--config", str(config), "apply", "--json"]) == 0
        assert rows(engine, MemberCardRow, platform="alipay")[0]["status"] == "closed"
