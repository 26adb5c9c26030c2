"""End to end over loopback, against the Alipay sandbox: a shopper opens the Alipay member card from
the activation form; the hub answers a page at once, exchanges the code and reads the form after
the answer, stitches the shopper with the same person's WeCom fan (same phone), and the push opens
the card for the member (``external_card_no`` = the member id) showing the unified balance, after
``siyu apply`` and ``siyu outbox drain``.  A replayed or reused ``auth_code`` opens nothing
twice; Alipay down during the activation loses nothing; a card-delete notify closes the card."""

from __future__ import annotations

import asyncio
import json
import time
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
from schemas.tables import FanRow, MemberCardRow, MemberRow, OutboxRow, TokenRow, WebhookEventRow
from tests.hub.sandboxes import settings_for, toml_for

HOST = load_plugins()
PHONE = "13912345678"
RETRY = {"attempts": 3, "initial_wait": 0.01, "max_wait": 0.05, "jitter": 0.01}


def rows(engine, table, **where):
    t = table.__table__
    query = sa.select(t).where(*(t.c[k] == v for k, v in where.items()))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query.order_by(*t.primary_key.columns)).mappings()]


def settled(engine, check, what):
    """Wait for the receiver's work after its answer (a background task) to show in the database."""
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


class Story:
    """A hub configured for one sandbox account, and a WeCom fan with 1,234 points and the phone."""

    def __init__(self, tmp_path, database_url, engine, capsys):
        self.port = free_port()
        self.spec = make_sandbox(5, 20, f"http://127.0.0.1:{self.port}")
        self.sandbox = self.spec.app.state.sandbox
        self.account = dict(self.spec.account)
        raw = {"database": {"url": database_url}, "security": {"phone_key": "test-phone-key-0123456789abcdef"},
               "retry": RETRY, "accounts": [self.account]}
        self.config = tmp_path / "siyu.toml"
        self.config.write_text(toml_for(raw))
        self.settings = settings_for(HOST, database_url, self.account, retry=RETRY)
        self.engine, self.capsys = engine, capsys
        with engine.begin() as conn:
            upsert(conn, [Fan(platform="wecom", account_id="hq", platform_uid="wmSHOPPER", phone=PHONE),
                          PointsEvent(platform="wecom", account_id="hq", event_id="welcome-1", fan_uid="wmSHOPPER",
                                      delta=1234, reason="welcome", occurred_at=datetime(2026, 1, 1, tzinfo=UTC))],
                   self.settings.phones)
        self.siyu("apply")
        [self.wecom] = rows(engine, FanRow, platform="wecom")
        self.member_id = self.wecom["member_id"]
        assert rows(engine, MemberRow, member_id=self.member_id)[0]["balance"] == 1234

    def siyu(self, *args):
        self.capsys.readouterr()
        assert main(["--config", str(self.config), *args, "--json"]) == 0
        return json.loads(self.capsys.readouterr().out)

    def hub(self):
        return serve_asgi(create_app(HOST, self.settings, self.engine))

    def hook(self, hub_url):
        return f"{hub_url}/webhooks/alipay/{self.account['id']}"

    def callbacks(self):
        return rows(self.engine, WebhookEventRow, platform="alipay")

    def user_tokens(self):
        return [r for r in rows(self.engine, TokenRow, platform="alipay") if "#" in r["account_id"]]

    def check_card_opened_with_the_balance(self):
        """``siyu apply`` stitches the shopper and queues the card; ``siyu outbox drain`` opens it."""
        self.siyu("apply")
        [alipay] = rows(self.engine, FanRow, platform="alipay")
        assert alipay["member_id"] == self.member_id and alipay["phone_hash"] == self.wecom["phone_hash"]
        [member_card] = rows(self.engine, MemberCardRow, platform="alipay")
        assert member_card["member_id"] == self.member_id and member_card["status"] == "active"
        assert member_card["card_no"] == f"open-pending:{alipay['platform_uid']}"  # not opened yet
        [item] = rows(self.engine, OutboxRow, platform="alipay")
        assert item["status"] == "pending" and item["payload"]["balance"] == 1234
        assert self.sandbox.cards == {}

        drained = self.siyu("outbox", "drain")
        assert drained["sent"] == 1 and drained["dead"] == 0
        [card] = self.sandbox.cards.values()
        assert card["external_card_no"] == str(self.member_id)
        assert card["point"] == "1234.00" and card["level"] == "1" and card["status"] == "ACTIVE"
        assert self.sandbox.users[card["user"]].open_id == alipay["platform_uid"]
        [member_card] = rows(self.engine, MemberCardRow, platform="alipay")
        assert member_card["card_no"] == card["biz_card_no"] and member_card["balance"] == 1234
        [alipay] = rows(self.engine, FanRow, platform="alipay")
        assert alipay["card_no"] == card["biz_card_no"] and not alipay["needs_card"]  # the fan shows it too
        assert self.sandbox.stats["alipay.marketing.card.open"] == 1
        assert self.user_tokens() == []  # the card is open: the shopper's token is forgotten
        assert self.siyu("outbox", "drain")["sent"] == 0
        return card


def test_activation_stitches_the_shopper_and_opens_the_card_showing_the_unified_balance(
        tmp_path, database_url, engine, capsys):
    story = Story(tmp_path, database_url, engine, capsys)
    sandbox = story.sandbox
    with serve_asgi(story.spec.app, port=story.port) as sandbox_url:
        with story.hub() as hub_url:
            hook = story.hook(hub_url)
            opened = httpx.post(f"{sandbox_url}/_admin/activate", json={"url": hook, "phone": PHONE}, timeout=30).json()
            assert opened["status"] == 200 and "会员卡开通中" in opened["body"]
            replay = {"auth_code": opened["auth_code"], "request_id": opened["request_id"]}
            again = httpx.get(hook, params=replay, timeout=30)
            assert again.status_code == 200 and again.text == opened["body"]
            settled(engine, lambda: [e["status"] for e in story.callbacks()] == ["processed"], "the follow-up")
        with story.hub() as other_hub:  # another process: the same code stores and opens nothing
            reused = httpx.get(story.hook(other_hub), params=replay, timeout=30)
            assert reused.status_code == 200
        [event] = story.callbacks()
        stored = json.dumps(event["payload"])
        assert PHONE not in stored and opened["auth_code"] not in stored
        assert sandbox.stats["alipay.system.oauth.token"] == 1

        card = story.check_card_opened_with_the_balance()
        assert sandbox.stats["alipay.system.oauth.token"] == 1

        # the card_holders read: what Alipay shows, next to the ledger
        async def holders():
            async with open_account(HOST, story.settings, story.settings.accounts[0], engine=engine) as handle:
                return await handle.adapter.card_holders(handle.account, [card["biz_card_no"]])
        [holder] = asyncio.run(holders())
        assert holder.points() == 1234 and holder.in_wallet and holder.external_card_no == str(story.member_id)

        # more points: the update goes to the opened card
        with engine.begin() as conn:
            upsert(conn, [PointsEvent(platform="wecom", account_id="hq", event_id="gift-2", fan_uid="wmSHOPPER",
                                      delta=100, reason="gift", occurred_at=datetime(2026, 1, 2, tzinfo=UTC))],
                   story.settings.phones)
        story.siyu("apply")
        assert story.siyu("outbox", "drain")["sent"] == 1
        assert card["point"] == "1334.00" and card["updates"] == 1 and len(sandbox.cards) == 1

        # the shopper deletes the card in Alipay: the notify closes the member's card
        with story.hub() as hub_url:
            deleted = httpx.post(f"{sandbox_url}/_admin/notify", timeout=30,
                                 json={"url": story.hook(hub_url), "kind": "delete",
                                       "biz_card_no": card["biz_card_no"]}).json()
            assert deleted["status"] == 200 and deleted["body"] == "success"
            settled(engine, lambda: all(e["status"] == "processed" for e in story.callbacks()), "the notify")
        story.siyu("apply")
        assert rows(engine, MemberCardRow, platform="alipay")[0]["status"] == "closed"


def test_alipay_down_during_the_activation_loses_nothing(tmp_path, database_url, engine, capsys):
    story = Story(tmp_path, database_url, engine, capsys)
    sandbox = story.sandbox
    with serve_asgi(story.spec.app, port=story.port) as sandbox_url:
        form = httpx.post(f"{sandbox_url}/_admin/form", json={"phone": PHONE}, timeout=30).json()
    # Alipay is down now: the shopper's browser comes back from the form all the same
    with story.hub() as hub_url:
        query = {"auth_code": form["auth_code"], "request_id": form["request_id"]}
        answer = httpx.get(story.hook(hub_url), params=query, timeout=30)
        assert answer.status_code == 200 and "会员卡开通中" in answer.text
        settled(engine, lambda: bool(story.callbacks() and story.callbacks()[0]["error"]), "the failed follow-up")
    [event] = story.callbacks()
    assert event["status"] == "received" and "Transient" in event["error"]
    assert rows(engine, FanRow, platform="alipay") == []

    with serve_asgi(story.spec.app, port=story.port):  # Alipay answers again
        story.check_card_opened_with_the_balance()  # siyu apply completes the stored callback first
        [event] = story.callbacks()
        assert event["status"] == "processed"
        assert sandbox.stats["alipay.system.oauth.token"] == 1
        with story.hub() as hub_url:  # the shopper reloads the page: nothing new
            again = httpx.get(story.hook(hub_url), params=query, timeout=30)
            assert again.status_code == 200
        assert len(story.callbacks()) == 1 and story.siyu("apply") is not None
        assert story.siyu("outbox", "drain")["sent"] == 0 and len(sandbox.cards) == 1
        assert sandbox.stats["alipay.marketing.card.open"] == 1


def test_a_made_up_code_is_answered_a_page_and_opens_nothing(tmp_path, database_url, engine, capsys):
    story = Story(tmp_path, database_url, engine, capsys)
    with serve_asgi(story.spec.app, port=story.port):
        with story.hub() as hub_url:
            answer = httpx.get(story.hook(hub_url), params={"auth_code": "made-up", "request_id": "r"}, timeout=30)
            assert answer.status_code == 200
            settled(engine, lambda: bool(story.callbacks() and story.callbacks()[0]["error"]), "the refused exchange")
        assert "isv.code-invalid" in story.callbacks()[0]["error"]
        assert rows(engine, FanRow, platform="alipay") == [] and story.sandbox.cards == {}


def test_an_item_queued_before_the_card_had_its_number_goes_to_the_number_it_has_now(
        tmp_path, database_url, engine, capsys):
    from hub.outbox.drain import enqueue

    story = Story(tmp_path, database_url, engine, capsys)
    cards = MemberCardRow.__table__
    with engine.begin() as conn:  # a push opened the card since this item was queued
        conn.execute(cards.insert().values(member_id=story.member_id, platform="alipay", account_id="brand",
                                           card_no="SBX005000000777", status="active", balance=0, level=0,
                                           inserted_at=datetime.now(UTC), updated_at=datetime.now(UTC)))
        enqueue(conn, platform="alipay", account_id="brand", kind="card_update", target=f"card:{story.member_id}",
                payload={"member_id": story.member_id, "card_no": "open-pending:074sbx0050000000000OPENID",
                         "balance": 1234, "level": 1})
    with serve_asgi(story.spec.app, port=story.port):
        assert story.siyu("outbox", "drain")["sent"] == 1
    assert "alipay.marketing.card.open" not in story.sandbox.stats
    assert story.sandbox.cards["SBX005000000777"]["point"] == "1234.00"
    assert rows(engine, MemberCardRow, platform="alipay")[0]["card_no"] == "SBX005000000777"
