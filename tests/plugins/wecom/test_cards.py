"""Member-card push-back to a 公众号: the request pinned, the second token kept apart from the corp
token, missing configuration, idempotent retries against the sandbox, and the outbox end to end."""

from __future__ import annotations

import asyncio
import json

import httpx
import pydantic
import pytest
import respx
import sqlalchemy as sa

import hub
from hub.platform.tokens import MemoryTokenStore
from hub.cli import main
from hub.platform.client import build_client
from hub.ledger.postings import post
from hub.testing import free_port, serve_asgi
from plugins.wecom import WeComAdapter
from plugins.wecom.auth import WeComMpAuth
from plugins.wecom.wire import MP_TOKEN_CAUSE
from plugins.wecom.sandbox import make_sandbox
from schemas import Account, MemberCard
from schemas.tables import MemberCardRow, MemberRow
from tests.hub.sandboxes import toml_for

BASE = "https://qyapi.weixin.qq.com"
MP = "https://api.weixin.qq.com"
ACCOUNT = Account(platform="wecom", account_id="hq")
MP_KEYS = {"mp_app_id": "wxMP123", "mp_app_secret": "mp-s3cret", "card_id": "pCARD1"}
CARD = MemberCard(member_id=7, platform="wecom", account_id="hq", card_no="123456789012", level=1, balance=1500)


def open_wecom(transport: httpx.AsyncBaseTransport, *, base_url: str | None = None, store=None, **options):
    client = build_client(WeComAdapter, "hq", base_url=base_url, transport=transport)
    config = WeComAdapter.Config(**{"corp_id": "ww123", "secret": "s3cret", **options})
    adapter = WeComAdapter(config=config, client=client)
    adapter.account_id, adapter.token_store = "hq", store or MemoryTokenStore()
    client.adapter = adapter
    client.auth = WeComAdapter.auth_class(adapter, adapter.token_store, "hq")
    return client, adapter


def ok(**body):
    return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", **body})


def err(code):
    return httpx.Response(200, json={"errcode": code, "errmsg": "some message from 10.1.2.3"})


def mp_token(value):
    return httpx.Response(200, json={"access_token": value, "expires_in": 7200})


def updated(bonus=1500):
    return ok(result_bonus=bonus, result_balance=0, openid="oOPENID")


def recording(seen, *responses):
    """A side effect that notes each request's access_token as sent (the auth flow re-sends the
    same request object, so ``route.calls`` would show only its last token)."""
    answers = iter(responses)

    def answer(request):
        seen.append(request.url.params.get("access_token"))
        return next(answers)
    return answer


def test_cards_is_declared_and_the_mp_keys_go_together():
    assert hub.Capability.CARDS in WeComAdapter.capabilities
    assert WeComAdapter.Config(corp_id="ww1", secret="s").mp_base_url == MP
    with pytest.raises(pydantic.ValidationError, match="missing mp_app_secret, card_id"):
        WeComAdapter.Config(corp_id="ww1", secret="s", mp_app_id="wx1")
    config = WeComAdapter.Config(corp_id="ww1", secret="s", **MP_KEYS)
    assert "mp-s3cret" not in repr(config)


async def test_push_pins_the_token_and_updateuser_requests():
    router = respx.Router(assert_all_called=True)
    token = router.get(f"{MP}/cgi-bin/token").mock(return_value=mp_token("MPTOK"))
    update = router.post(f"{MP}/card/membercard/updateuser").mock(return_value=updated())
    client, adapter = open_wecom(httpx.MockTransport(router.async_handler), **MP_KEYS)
    async with client:
        result = await adapter.push_card(ACCOUNT, CARD)
    assert token.calls[0].request.method == "GET"
    assert dict(token.calls[0].request.url.params) == {
        "grant_type": "client_credential", "appid": "wxMP123", "secret": "mp-s3cret"}
    request = update.calls[0].request
    assert (request.method, request.url.host, request.url.path) == ("POST", "api.weixin.qq.com",
                                                                    "/card/membercard/updateuser")
    assert dict(request.url.params) == {"access_token": "MPTOK"}
    assert json.loads(request.content) == {"code": "123456789012", "card_id": "pCARD1", "bonus": 1500,
                                           "add_bonus": 0, "record_bonus": "积分同步"}
    assert result.accepted and "1500" in result.detail


async def test_a_result_bonus_that_differs_is_not_accepted():
    router = respx.Router()
    router.get(f"{MP}/cgi-bin/token").mock(return_value=mp_token("MPTOK"))
    router.post(f"{MP}/card/membercard/updateuser").mock(return_value=updated(bonus=900))
    client, adapter = open_wecom(httpx.MockTransport(router.async_handler), **MP_KEYS)
    async with client:
        result = await adapter.push_card(ACCOUNT, CARD)
    assert not result.accepted and "900" in result.detail


async def test_without_the_mp_keys_a_push_is_a_config_error_and_sends_nothing():
    router = respx.Router()
    client, adapter = open_wecom(httpx.MockTransport(router.async_handler))
    async with client:
        with pytest.raises(hub.PlatformConfigError) as info:
            await adapter.push_card(ACCOUNT, CARD)
    assert all(key in str(info.value) for key in ("mp_app_id", "mp_app_secret", "card_id"))
    assert len(router.calls) == 0


async def test_a_card_without_a_code_is_refused_without_a_request():
    router = respx.Router()
    client, adapter = open_wecom(httpx.MockTransport(router.async_handler), **MP_KEYS)
    async with client:
        result = await adapter.push_card(ACCOUNT, CARD.model_copy(update={"card_no": None}))
    assert not result.accepted and len(router.calls) == 0


@pytest.mark.parametrize("code", [40001, 40014, 42001])
async def test_an_mp_token_rejection_refreshes_only_the_mp_token(code):
    store = MemoryTokenStore()
    router = respx.Router()
    corp_token = router.get(f"{BASE}/cgi-bin/gettoken").mock(
        return_value=ok(access_token="CORP1", expires_in=7200))
    corp_sent, mp_sent = [], []
    router.get(f"{BASE}/cgi-bin/externalcontact/get_follow_user_list").mock(
        side_effect=recording(corp_sent, ok(follow_user=["a"]), ok(follow_user=["a"])))
    token = router.get(f"{MP}/cgi-bin/token").mock(side_effect=[mp_token("MP1"), mp_token("MP2")])
    router.post(f"{MP}/card/membercard/updateuser").mock(side_effect=recording(mp_sent, err(code), updated()))
    client, adapter = open_wecom(httpx.MockTransport(router.async_handler), store=store, **MP_KEYS)
    async with client:
        await adapter.follow_users()
        result = await adapter.push_card(ACCOUNT, CARD)
        await adapter.follow_users(refresh=True)
    assert result.accepted
    assert mp_sent == ["MP1", "MP2"] and corp_sent == ["CORP1", "CORP1"]
    assert (corp_token.call_count, token.call_count) == (1, 2)
    assert store.load("wecom", "hq").access_token == "CORP1"
    assert store.load("wecom", "hq#mp").access_token == "MP2"


async def test_a_corp_token_rejection_never_touches_the_mp_token():
    store = MemoryTokenStore()
    router = respx.Router()
    router.get(f"{BASE}/cgi-bin/gettoken").mock(side_effect=[ok(access_token="CORP1", expires_in=7200),
                                                             ok(access_token="CORP2", expires_in=7200)])
    router.get(f"{BASE}/cgi-bin/externalcontact/get_follow_user_list").mock(
        side_effect=[err(42001), ok(follow_user=["a"])])
    token = router.get(f"{MP}/cgi-bin/token").mock(return_value=mp_token("MP1"))
    router.post(f"{MP}/card/membercard/updateuser").mock(return_value=updated())
    client, adapter = open_wecom(httpx.MockTransport(router.async_handler), store=store, **MP_KEYS)
    async with client:
        await adapter.push_card(ACCOUNT, CARD)
        await adapter.follow_users()
    assert token.call_count == 1
    assert store.load("wecom", "hq").access_token == "CORP2"
    assert store.load("wecom", "hq#mp").access_token == "MP1"


async def test_a_refused_mp_token_is_permanent_and_keeps_the_secret_out():
    router = respx.Router()
    router.get(f"{MP}/cgi-bin/token").mock(return_value=err(40001))
    update = router.post(f"{MP}/card/membercard/updateuser").mock(return_value=updated())
    client, adapter = open_wecom(httpx.MockTransport(router.async_handler), **MP_KEYS)
    async with client:
        with pytest.raises(hub.PermanentError) as info:
            await adapter.push_card(ACCOUNT, CARD)
    assert type(info.value) is hub.PermanentError and MP_TOKEN_CAUSE in str(info.value)
    assert info.value.code == 40001 and info.value.account_id == "hq"
    assert "mp-s3cret" not in str(info.value) and "10.1.2.3" not in str(info.value)
    assert update.call_count == 0


async def test_a_failed_token_request_does_not_leave_the_mp_flow_locked():
    router = respx.Router()
    router.get(f"{MP}/cgi-bin/token").mock(side_effect=[httpx.ConnectTimeout("down"), mp_token("MP1")])
    router.post(f"{MP}/card/membercard/updateuser").mock(return_value=updated())
    client, adapter = open_wecom(httpx.MockTransport(router.async_handler), **MP_KEYS)
    async with client:
        with pytest.raises(hub.TransientError):
            await adapter.push_card(ACCOUNT, CARD)
        assert not adapter.credential("mp")._lock.locked()
        result = await asyncio.wait_for(adapter.push_card(ACCOUNT, CARD), 10)  # a guard against a hang
    assert result.accepted


async def test_the_mp_token_is_a_second_credential_even_on_one_server():
    """The 公众号 token is the adapter's declared second credential, passed on the 公众号 request
    only: with both base URLs on one server, each request still carries its own token."""
    assert WeComAdapter.credentials == {"mp": WeComMpAuth}
    router = respx.Router(assert_all_called=True)
    one = "http://127.0.0.1:8101"
    router.get(f"{one}/cgi-bin/gettoken").mock(return_value=ok(access_token="CORP1", expires_in=7200))
    router.get(f"{one}/cgi-bin/token").mock(return_value=mp_token("MP1"))
    corp_sent, mp_sent = [], []
    router.get(f"{one}/cgi-bin/externalcontact/get_follow_user_list").mock(
        side_effect=recording(corp_sent, ok(follow_user=["a"])))
    router.post(f"{one}/card/membercard/updateuser").mock(side_effect=recording(mp_sent, updated()))
    client, adapter = open_wecom(httpx.MockTransport(router.async_handler), base_url=one, mp_base_url=one, **MP_KEYS)
    async with client:
        await adapter.follow_users()
        assert (await adapter.push_card(ACCOUNT, CARD)).accepted
    assert (corp_sent, mp_sent) == (["CORP1"], ["MP1"])
    assert adapter.credential("mp").store_key == "hq#mp"


# -- against the sandbox ------------------------------------------------------------------------


def sandbox_options(base_url):
    spec = make_sandbox(0, 20, base_url)
    keys = ("corp_id", "secret", "mp_app_id", "mp_app_secret", "card_id", "mp_base_url")
    return spec.app, {k: spec.account[k] for k in keys}


async def cards_of(client):
    return (await client.get("/_admin/cards")).json()


async def test_a_retried_push_leaves_the_sandbox_card_as_the_first_did():
    app, options = sandbox_options("http://sandbox")
    transport = httpx.ASGITransport(app=app)
    client, adapter = open_wecom(transport, base_url="http://sandbox", **options)
    async with client, httpx.AsyncClient(transport=transport, base_url="http://sandbox") as admin:
        first = await adapter.push_card(ACCOUNT, CARD)
        after_first = await cards_of(admin)
        again = await adapter.push_card(ACCOUNT, CARD)
        after_again = await cards_of(admin)
        await adapter.follow_users()  # the corp token, from the same server, still works
    assert first.accepted and again.accepted
    assert after_first["123456789012"]["bonus"] == after_again["123456789012"]["bonus"] == 1500
    assert after_again["123456789012"]["updates"] == 2
    assert app.state.sandbox.stats.get("mp_token") == 1 and app.state.sandbox.stats.get("gettoken") == 1


async def test_the_sandbox_refuses_a_corp_token_for_member_cards():
    app, _ = sandbox_options("http://sandbox")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as raw:
        s = app.state.sandbox.settings
        corp = (await raw.get("/cgi-bin/gettoken", params={"corpid": s.corp_id, "corpsecret": s.secret})).json()
        body = {"code": "c1", "card_id": s.card_id, "bonus": 5, "add_bonus": 0}
        refused = await raw.post("/card/membercard/updateuser", params={"access_token": corp["access_token"]},
                                 json=body)
        mp = (await raw.get("/cgi-bin/token", params={"grant_type": "client_credential", "appid": s.mp_app_id,
                                                      "secret": s.mp_app_secret})).json()
        bad = await raw.get("/cgi-bin/token", params={"grant_type": "client_credential", "appid": s.mp_app_id,
                                                      "secret": "wrong"})
        accepted = await raw.post("/card/membercard/updateuser", params={"access_token": mp["access_token"]},
                                  json=body)
        wrong_card = await raw.post("/card/membercard/updateuser", params={"access_token": mp["access_token"]},
                                    json={**body, "card_id": "pOTHER"})
    assert refused.json()["errcode"] == 40001 and bad.json()["errcode"] == 40001
    assert mp["expires_in"] == 7200 and mp["access_token"] != corp["access_token"]
    assert accepted.json()["result_bonus"] == 5 and wrong_card.json()["errcode"] == 40058


async def test_a_revoked_mp_token_is_refreshed_and_the_push_goes_through():
    app, options = sandbox_options("http://sandbox")
    app.state.sandbox.faults["mp_revoke_every"] = 1
    client, adapter = open_wecom(httpx.ASGITransport(app=app), base_url="http://sandbox", **options)
    async with client:
        for balance in (10, 20, 30):
            result = await adapter.push_card(ACCOUNT, CARD.model_copy(update={"balance": balance}))
            assert result.accepted
    assert app.state.sandbox.cards["123456789012"]["bonus"] == 30
    assert app.state.sandbox.stats["mp_token"] == 3 and "gettoken" not in app.state.sandbox.stats


# -- end to end ---------------------------------------------------------------------------------


def test_a_posting_reaches_the_sandbox_card_through_siyu_outbox_drain(tmp_path, database_url, engine, capsys):
    port = free_port()
    spec = make_sandbox(0, 20, f"http://127.0.0.1:{port}")
    account = dict(spec.account)
    config = tmp_path / "siyu.toml"
    config.write_text(toml_for({"database": {"url": database_url}, "security": {"phone_key": "k" * 32},
                                "accounts": [account]}))
    with engine.begin() as conn:
        member_id = conn.execute(sa.insert(MemberRow.__table__).returning(MemberRow.__table__.c.member_id)).scalar_one()
        conn.execute(sa.insert(MemberCardRow.__table__).values(member_id=member_id, platform="wecom",
                                                               account_id=account["id"], card_no="880000000001"))
    post(engine, member_id=member_id, points=120, reason="welcome", key="wecom-welcome-1")
    post(engine, member_id=member_id, points=30, reason="order", key="wecom-order-1")
    with serve_asgi(spec.app, port=port) as url:
        assert main(["--config", str(config), "outbox", "drain", "--json"]) == 0
        drained = capsys.readouterr()
        cards = httpx.get(f"{url}/_admin/cards").json()
    assert cards["880000000001"]["bonus"] == 150, (cards, drained.out)
    assert set(cards) == {"880000000001"}
    assert account["mp_app_secret"] not in drained.out + drained.err
