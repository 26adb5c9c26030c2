"""The activation callback against a scripted gateway (``httpx.MockTransport``): the three calls in
order with the user's token, the fan it yields, one exchange however many copies of a callback
arrive at once, the fallback when ``card.open`` finds the card already there, and answers that do
not verify."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qsl

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

import hub
from hub.config import parse_settings
from hub.platform.account import open_account
from hub.plugins import load_plugins
from schemas import CardStatus
from tests.plugins.alipay.keys import APP_KEY_PEM, pem_public, signed_body

HOST = load_plugins()
ALIPAY_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OK = {"code": "10000", "msg": "Success"}


class Gateway:
    """Answers by method; ``open_refused`` makes ``card.open`` say the user holds the card."""

    def __init__(self, *, open_refused=False, signer=ALIPAY_KEY):
        self.calls: list[tuple[str, dict, dict]] = []
        self.open_refused, self.signer = open_refused, signer

    def node(self, method, biz):
        if method == "alipay.system.oauth.token":
            return {**OK, "access_token": "authusrB1", "user_id": "2088000000000001", "open_id": "074OPEN1"}
        if method == "alipay.marketing.card.activateform.query":
            return {**OK, "infos": json.dumps([{"OPEN_FORM_FIELD_MOBILE": "139-1234-5678"},
                                               {"OPEN_FORM_FIELD_NAME": '王{"二"}\\'}], ensure_ascii=False)}
        if method == "alipay.marketing.card.open":
            if self.open_refused:
                return {"code": "40004", "msg": "Business Failed", "sub_code": "CARD_EXIST", "sub_msg": "已领卡"}
            return {**OK, "card_info": {"biz_card_no": "BIZ-NEW", "external_card_no": biz["card_ext_info"]["external_card_no"]}}
        if method == "alipay.marketing.card.query":
            return {**OK, "card_info": {"biz_card_no": "BIZ-OLD"}, "schema_url": "alipays://x"}
        raise AssertionError(method)

    async def __call__(self, request):
        await asyncio.sleep(0.01)
        query = dict(request.url.params)
        form = dict(parse_qsl(request.content.decode()))
        biz = json.loads(form.get("biz_content") or "{}")
        self.calls.append((query["method"], query, {**form, **biz}))
        text = json.dumps(self.node(query["method"], biz), ensure_ascii=False)
        return httpx.Response(200, content=signed_body(query["method"].replace(".", "_") + "_response", text,
                                                       self.signer))


def callback(code="code-1"):
    return hub.WebhookRequest("GET", "/webhooks/alipay/shop", {"auth_code": code, "request_id": "req-1",
                                                                "app_id": "2021000000000001"}, {}, b"")


async def run(gateway, *requests):
    raw = {"platform": "alipay", "id": "shop", "app_id": "2021000000000001", "app_private_key": APP_KEY_PEM,
           "alipay_public_key": pem_public(ALIPAY_KEY), "card_template_id": "T1"}
    s = parse_settings({"security": {"phone_key": "p" * 32}, "accounts": [raw]}, HOST)
    async with open_account(HOST, s, s.accounts[0], transport=httpx.MockTransport(gateway)) as handle:
        return await asyncio.gather(*(handle.adapter.parse_webhook(handle.account, r) for r in requests),
                                    return_exceptions=True)


async def test_activation_exchanges_reads_the_form_opens_the_card_and_yields_one_fan():
    gateway = Gateway()
    [result] = await run(gateway, callback())
    assert [c[0] for c in gateway.calls] == ["alipay.system.oauth.token", "alipay.marketing.card.activateform.query",
                                             "alipay.marketing.card.open"]
    token_call, form_call, open_call = gateway.calls
    assert token_call[2] == {"grant_type": "authorization_code", "code": "code-1"}
    assert "auth_token" not in token_call[1]
    assert form_call[1]["auth_token"] == open_call[1]["auth_token"] == "authusrB1"
    assert form_call[2]["biz_type"] == "MEMBER_CARD" and form_call[2]["request_id"] == "req-1"
    opened = open_call[2]
    assert opened["card_template_id"] == "T1" and opened["card_user_info"] == {"open_id": "074OPEN1"}
    assert opened["card_ext_info"]["external_card_no"].startswith("SY") and "074OPEN1" not in json.dumps(opened["card_ext_info"])
    [fan] = result.events
    assert (fan.platform_uid, fan.card_no, fan.card_status) == ("074OPEN1", "BIZ-NEW", CardStatus.ACTIVE)
    assert fan.phone == "+8613912345678" and fan.identity_keys == {"alipay_user_id": "2088000000000001"}
    assert result.dedupe_key.startswith("activation:") and "code-1" not in result.dedupe_key
    assert "会员卡已开通" in result.body.decode() and result.media_type == "text/html"


async def test_copies_of_one_callback_arriving_together_exchange_the_code_once():
    gateway = Gateway()
    first, second, third = await run(gateway, callback(), callback(), callback())
    assert first is second is third
    assert [c[0] for c in gateway.calls].count("alipay.marketing.card.open") == 1


async def test_a_refused_open_reads_the_card_the_user_holds():
    gateway = Gateway(open_refused=True)
    [result] = await run(gateway, callback())
    assert gateway.calls[-1][0] == "alipay.marketing.card.query"
    assert gateway.calls[-1][2]["card_user_info"] == {"open_id": "074OPEN1"}
    assert result.events[0].card_no == "BIZ-OLD"


async def test_answers_that_do_not_verify_open_nothing():
    gateway = Gateway(signer=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    [error] = await run(gateway, callback())
    assert isinstance(error, hub.WebhookRejected) and error.status_code == 400
    assert [c[0] for c in gateway.calls] == ["alipay.system.oauth.token"]


async def test_a_callback_for_another_app_is_refused_before_any_call():
    gateway = Gateway()
    other = hub.WebhookRequest("GET", "/", {"auth_code": "c", "request_id": "r", "app_id": "2021999999999999"}, {}, b"")
    [error] = await run(gateway, other)
    assert isinstance(error, hub.WebhookRejected) and error.status_code == 403 and not gateway.calls
