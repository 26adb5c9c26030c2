"""The activation flow against a scripted gateway (``httpx.MockTransport``): the callback is taken
without a call (its code sealed), the follow-up exchanges the code once and reads the form with
the user's token, and the push of the pending card opens it for the member (``external_card_no``
= the member id, the balance on it) or, when the user holds it already, updates that card."""

from __future__ import annotations

import asyncio
import logging
import json
from urllib.parse import parse_qsl

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import hub
from hub.config import parse_settings
from hub.platform.account import open_account
from hub.plugins import load_plugins
from plugins.alipay.auth import code_key, open_code
from schemas import CardStatus, MemberCard
from tests.plugins.alipay.keys import APP_KEY, APP_KEY_PEM, pem_public, signed_body

HOST = load_plugins()
ALIPAY_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OK = {"code": "10000", "msg": "Success"}
OPEN_ID = "074OPEN1"


class Gateway:
    """Answers by method; ``open_refused`` makes ``card.open`` say the user holds the card,
    ``code_refused`` makes the exchange refuse the code, ``down`` answers 20000 to everything."""

    def __init__(self, *, open_refused=False, code_refused=False, signer=ALIPAY_KEY):
        self.calls: list[tuple[str, dict, dict]] = []
        self.open_refused, self.code_refused, self.signer, self.down = open_refused, code_refused, signer, False

    def node(self, method, form, biz):
        if self.down:
            return {"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error"}
        if method == "alipay.system.oauth.token":
            if self.code_refused:
                return {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.code-invalid", "sub_msg": "过期"}
            token = "authusrB1" if form.get("grant_type") == "authorization_code" else "authusrB2"
            return {**OK, "access_token": token, "expires_in": "1296000", "refresh_token": "authusrR1",
                    "user_id": "2088000000000001", "open_id": OPEN_ID}
        if method == "alipay.marketing.card.activateform.query":
            return {**OK, "infos": json.dumps([{"OPEN_FORM_FIELD_MOBILE": "139-1234-5678"},
                                               {"OPEN_FORM_FIELD_NAME": '王{"二"}\\'}], ensure_ascii=False)}
        if method == "alipay.marketing.card.open":
            if self.open_refused:
                return {"code": "40004", "msg": "Business Failed", "sub_code": "CARD_EXIST", "sub_msg": "已领卡"}
            return {**OK, "card_info": {"biz_card_no": "BIZ-NEW", "external_card_no": biz["card_ext_info"]["external_card_no"]}}
        if method == "alipay.marketing.card.query":
            return {**OK, "card_info": {"biz_card_no": "BIZ-OLD"}, "schema_url": "alipays://x"}
        if method == "alipay.marketing.card.update":
            return {**OK, "result_code": "SUCCESS"}
        raise AssertionError(method)

    def methods(self):
        return [c[0] for c in self.calls]

    async def __call__(self, request):
        await asyncio.sleep(0.01)
        query = dict(request.url.params)
        form = dict(parse_qsl(request.content.decode()))
        biz = json.loads(form.get("biz_content") or "{}")
        self.calls.append((query["method"], query, {**form, **biz}))
        text = json.dumps(self.node(query["method"], form, biz), ensure_ascii=False)
        return httpx.Response(200, content=signed_body(query["method"].replace(".", "_") + "_response", text,
                                                       self.signer))


def callback(code="code-1", **extra):
    return hub.WebhookRequest("GET", "/webhooks/alipay/shop", {"auth_code": code, "request_id": "req-1",
                                                                "app_id": "2021000000000001", **extra}, {}, b"")


def settings():
    raw = {"platform": "alipay", "id": "shop", "app_id": "2021000000000001", "app_private_key": APP_KEY_PEM,
           "alipay_public_key": pem_public(ALIPAY_KEY), "card_template_id": "T1",
           "level_names": ["普卡", "银卡", "金卡"]}
    return parse_settings({"security": {"phone_key": "p" * 32}, "retry": {"attempts": 2, "initial_wait": 0.01,
                                                                           "max_wait": 0.02, "jitter": 0.0},
                           "accounts": [raw]}, HOST)


async def run(gateway, work, store=None):
    s = settings()
    async with open_account(HOST, s, s.accounts[0], transport=httpx.MockTransport(gateway),
                            token_store=store or hub.MemoryTokenStore()) as handle:
        return await work(handle.adapter, handle.account)


def as_stored(result):
    """The follow-up as the hub hands it back: JSON round-tripped."""
    return json.loads(json.dumps(dict(result.follow_up)))


async def test_the_callback_is_taken_without_a_call_and_its_code_is_kept_sealed():
    gateway = Gateway()
    result = await run(gateway, lambda adapter, account: adapter.parse_webhook(account, callback()))
    assert gateway.calls == [] and result.events == ()
    assert result.status_code == 200 and result.media_type == "text/html" and "会员卡开通中" in result.body.decode()
    assert result.dedupe_key.startswith("activation:") and "code-1" not in result.dedupe_key
    stored = as_stored(result)
    assert "code-1" not in json.dumps(stored) and stored["request_id"] == "req-1"
    assert open_code(stored["code"], code_key(APP_KEY), "shop") == "code-1"
    with pytest.raises(ValueError):
        open_code(stored["code"], code_key(ALIPAY_KEY), "shop")  # another app's key
    with pytest.raises(ValueError):
        open_code(stored["code"], code_key(APP_KEY), "other-account")


@pytest.mark.parametrize("query, status", [({"app_id": "2021999999999999"}, 403), ({"auth_code": ""}, 400),
                                           ({"auth_code": "x" * 200}, 400), ({"auth_code": "a b"}, 400),
                                           ({"request_id": ""}, 400)])
async def test_a_callback_of_another_app_or_malformed_is_refused(query, status):
    gateway = Gateway()

    async def work(adapter, account):
        with pytest.raises(hub.WebhookRejected) as info:
            await adapter.parse_webhook(account, callback(**query))
        return info.value

    assert (await run(gateway, work)).status_code == status and gateway.calls == []


async def test_the_follow_up_exchanges_the_code_reads_the_form_and_yields_a_fan_with_a_card_to_open():
    gateway, store = Gateway(), hub.MemoryTokenStore()

    async def work(adapter, account):
        result = await adapter.parse_webhook(account, callback())
        return await adapter.complete_webhook(account, as_stored(result))

    [fan] = await run(gateway, work, store)
    assert gateway.methods() == ["alipay.system.oauth.token", "alipay.marketing.card.activateform.query"]
    token_call, form_call = gateway.calls
    assert token_call[2] == {"grant_type": "authorization_code", "code": "code-1"} and "auth_token" not in token_call[1]
    assert form_call[1]["auth_token"] == "authusrB1"
    assert form_call[2]["biz_type"] == "MEMBER_CARD" and form_call[2]["request_id"] == "req-1"
    assert (fan.platform_uid, fan.card_no, fan.card_status) == (OPEN_ID, f"open-pending:{OPEN_ID}", CardStatus.ACTIVE)
    assert fan.phone == "+8613912345678" and fan.identity_keys == {"alipay_user_id": "2088000000000001"}
    # the user's token waits in the token store for the card's opening, under the holder
    kept = {key: token for (platform, key), token in store.tokens.items() if platform == "alipay"}
    assert any(key.startswith("shop#card-user:") for key in kept)
    assert all(OPEN_ID not in key and "code-1" not in key for key in kept)
    assert "authusrB1" not in repr(list(kept.values()))


async def test_a_retried_or_concurrent_follow_up_exchanges_the_code_once():
    gateway = Gateway()

    async def work(adapter, account):
        stored = as_stored(await adapter.parse_webhook(account, callback()))
        together = await asyncio.gather(*(adapter.complete_webhook(account, stored) for _ in range(3)))
        again = await adapter.complete_webhook(account, stored)
        return together, again

    together, again = await run(gateway, work)
    assert gateway.methods().count("alipay.system.oauth.token") == 1
    assert {fan.platform_uid for fans in [*together, again] for fan in fans} == {OPEN_ID}


async def test_a_code_alipay_refuses_keeps_the_callback_pending_a_while_then_ends_it_with_nothing_to_open():
    gateway = Gateway(code_refused=True)

    async def work(adapter, account):
        stored = as_stored(await adapter.parse_webhook(account, callback()))
        with pytest.raises(hub.PermanentError):  # another copy may have exchanged it: tried again
            await adapter.complete_webhook(account, stored)
        return await adapter.complete_webhook(account, {**stored, "received_at": stored["received_at"] - 601})

    assert await run(gateway, work) == [] and gateway.methods() == ["alipay.system.oauth.token"] * 2


async def test_alipay_down_fails_the_follow_up_so_that_it_is_tried_again():
    gateway = Gateway()
    gateway.down = True

    async def work(adapter, account):
        stored = as_stored(await adapter.parse_webhook(account, callback()))
        with pytest.raises(hub.TransientError):
            await adapter.complete_webhook(account, stored)
        gateway.down = False
        return await adapter.complete_webhook(account, stored)

    [fan] = await run(gateway, work)
    assert fan.platform_uid == OPEN_ID


async def test_answers_that_do_not_verify_are_never_trusted():
    gateway = Gateway(signer=rsa.generate_private_key(public_exponent=65537, key_size=2048))

    async def work(adapter, account):
        with pytest.raises(hub.PlatformConfigError):
            await adapter.complete_webhook(account, as_stored(await adapter.parse_webhook(account, callback())))

    await run(gateway, work)
    assert gateway.methods() == ["alipay.system.oauth.token"]


def member_card(card_no=f"open-pending:{OPEN_ID}"):
    return MemberCard(member_id=42, platform="alipay", account_id="shop", card_no=card_no, balance=1234, level=1)


async def activated_then(gateway, push):
    store = hub.MemoryTokenStore()

    async def work(adapter, account):
        await adapter.complete_webhook(account, as_stored(await adapter.parse_webhook(account, callback())))
        return await push(adapter, account)

    return await run(gateway, work, store), store


async def test_pushing_a_pending_card_opens_it_for_the_member_with_the_balance_on_it():
    gateway = Gateway()
    result, store = await activated_then(gateway, lambda adapter, account: adapter.push_card(account, member_card()))
    assert gateway.methods()[-1] == "alipay.marketing.card.open"
    method, query, opened = gateway.calls[-1]
    assert query["auth_token"] == "authusrB1"
    assert opened["card_template_id"] == "T1" and opened["card_user_info"] == {"open_id": OPEN_ID}
    assert opened["card_ext_info"]["external_card_no"] == "42"
    assert opened["card_ext_info"]["point"] == "1234.00" and opened["card_ext_info"]["level"] == "银卡"
    assert opened["out_serial_no"].startswith("SYO")
    assert result == hub.PushResult(accepted=True, reference="BIZ-NEW", card_no="BIZ-NEW", detail="opened")
    assert not [key for (platform, key) in store.tokens if platform == "alipay"]  # the card is open: tokens forgotten


async def test_a_refused_open_updates_the_card_the_user_holds():
    gateway = Gateway(open_refused=True)
    result, _ = await activated_then(gateway, lambda adapter, account: adapter.push_card(account, member_card()))
    assert gateway.methods()[-3:] == ["alipay.marketing.card.open", "alipay.marketing.card.query",
                                      "alipay.marketing.card.update"]
    assert gateway.calls[-2][2]["card_user_info"] == {"open_id": OPEN_ID}
    updated = gateway.calls[-1][2]
    assert updated["target_card_no"] == "BIZ-OLD" and updated["card_info"] == {"point": "1234.00", "level": "银卡"}
    assert result.accepted and result.card_no == "BIZ-OLD"


async def test_a_pending_card_without_a_token_opens_nothing_and_says_why():
    gateway = Gateway()
    gateway.node = lambda method, form, biz: ({"code": "40004", "msg": "Business Failed", "sub_code": "CARD_NOT_EXIST"}
                                              if method == "alipay.marketing.card.query" else {})
    result = await run(gateway, lambda adapter, account: adapter.push_card(account, member_card()))
    assert gateway.methods() == ["alipay.marketing.card.query"]
    assert not result.accepted and "activation form" in result.detail


async def test_a_card_with_its_number_is_updated_as_before():
    gateway = Gateway()
    result = await run(gateway, lambda adapter, account: adapter.push_card(account, member_card("BIZ-9")))
    assert gateway.methods() == ["alipay.marketing.card.update"] and gateway.calls[0][2]["target_card_no"] == "BIZ-9"
    assert result.accepted and result.card_no is None


async def test_the_code_the_tokens_and_the_phone_never_reach_a_log(caplog):
    caplog.set_level(logging.DEBUG)
    gateway = Gateway()
    gateway.down = True

    async def work(adapter, account):
        stored = as_stored(await adapter.parse_webhook(account, callback("secret-code-77")))
        with pytest.raises(hub.TransientError) as info:
            await adapter.complete_webhook(account, stored)
        gateway.down = False
        await adapter.complete_webhook(account, stored)
        await adapter.push_card(account, member_card())
        return str(info.value)

    error = await run(gateway, work)
    assert gateway.methods()[-1] == "alipay.marketing.card.open" and "gateway.do" in caplog.text  # calls were logged
    for secret in ("secret-code-77", "authusrB1", "authusrR1", "13912345678", "1234-5678"):
        assert secret not in caplog.text and secret not in error


async def test_a_used_up_token_is_refreshed_once_for_the_opening():
    gateway = Gateway()
    answer = gateway.node

    def node(method, form, biz):
        if method == "alipay.marketing.card.open" and gateway.calls[-1][1].get("auth_token") == "authusrB1":
            return {"code": "20001", "msg": "Insufficient Token Permissions", "sub_code": "aop.invalid-auth-token"}
        return answer(method, form, biz)

    gateway.node = node
    result, store = await activated_then(gateway, lambda adapter, account: adapter.push_card(account, member_card()))
    assert gateway.methods()[-3:] == ["alipay.marketing.card.open", "alipay.system.oauth.token",
                                      "alipay.marketing.card.open"]
    assert gateway.calls[-2][2] == {"grant_type": "refresh_token", "refresh_token": "authusrR1"}
    assert gateway.calls[-1][1]["auth_token"] == "authusrB2" and result.card_no == "BIZ-NEW"
    assert not [key for (platform, key) in store.tokens if platform == "alipay"]
