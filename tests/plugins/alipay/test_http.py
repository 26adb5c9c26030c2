"""The adapter's requests and answers on the wire, through ``httpx.MockTransport`` (no patching):
parameters where Alipay wants them, the signature over all of them, answers verified before use,
the error table, the merchant's ``app_auth_token`` and configuration errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import hub
from hub.config import parse_settings
from hub.errors import ConfigError
from hub.platform.account import open_account
from hub.plugins import load_plugins
from schemas import MemberCard
from tests.plugins.alipay.keys import APP_KEY, APP_KEY_PEM, pem_public, rsa2, signed_body

HOST = load_plugins()
ALIPAY_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FAST = {"attempts": 3, "initial_wait": 0.01, "max_wait": 0.02, "jitter": 0.0}


def account(**extra):
    return {"platform": "alipay", "id": "shop", "app_id": "2021000000000001", "app_private_key": APP_KEY_PEM,
            "alipay_public_key": pem_public(ALIPAY_KEY), "card_template_id": "T1", **extra}


def settings(**extra):
    return parse_settings({"security": {"phone_key": "p" * 32}, "retry": FAST, "accounts": [account(**extra)]}, HOST)


def answer(method, node, key=ALIPAY_KEY):
    text = json.dumps(node, ensure_ascii=False)
    return httpx.Response(200, content=signed_body(method.replace(".", "_") + "_response", text, key),
                          headers={"content-type": "application/json;charset=utf-8"})


class Recorder:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request):
        self.requests.append(request)
        method = request.url.params["method"]
        node = self.answers.pop(0) if self.answers else {"code": "10000", "msg": "Success", "result_code": "SUCCESS"}
        return answer(method, node) if isinstance(node, dict) else node


async def push(recorder, card=None, **extra):
    s = settings(**extra)
    card = card or MemberCard(member_id=7, platform="alipay", account_id="shop", card_no="BIZ0001", level=2,
                              balance=1234)
    async with open_account(HOST, s, s.accounts[0], transport=httpx.MockTransport(recorder)) as handle:
        return await handle.call("push_card", card), handle


async def test_a_push_is_one_signed_gateway_call_with_the_unified_balance():
    recorder = Recorder()
    result, _ = await push(recorder, level_names=["普通", "银卡", "金卡"])
    assert result.accepted and result.reference == "BIZ0001"
    [request] = recorder.requests
    assert request.method == "POST" and request.url.path == "/gateway.do"
    query = dict(request.url.params)
    assert {k: query[k] for k in ("app_id", "method", "format", "charset", "sign_type", "version")} == {
        "app_id": "2021000000000001", "method": "alipay.marketing.card.update", "format": "json",
        "charset": "utf-8", "sign_type": "RSA2", "version": "1.0"}
    stamp = datetime.strptime(query["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert abs(datetime.now(ZoneInfo("Asia/Shanghai")) - stamp) < timedelta(minutes=1)
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    form = dict(parse_qsl(request.content.decode()))
    assert set(form) == {"biz_content"}
    biz = json.loads(form["biz_content"])
    assert biz["target_card_no"] == "BIZ0001" and biz["target_card_no_type"] == "BIZ_CARD"
    assert biz["card_info"] == {"point": "1234.00", "level": "金卡"}
    assert biz["notify_messages"] == [{"message_type": "POINT_UPDATE", "change_reason": "会员积分同步"}]
    # biz_content is sent exactly as it was signed: compact, sorted, UTF-8
    assert form["biz_content"] == json.dumps(biz, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    signed = {**{k: v for k, v in query.items() if k != "sign"}, **form}
    base = "&".join(f"{k}={signed[k]}" for k in sorted(signed))
    assert query["sign"] == rsa2(APP_KEY, base)


async def test_the_merchants_app_auth_token_is_sent_and_signed():
    recorder = Recorder()
    result, handle = await push(recorder, app_auth_token="202401BBmerchant")
    assert result.accepted
    query = dict(recorder.requests[0].url.params)
    assert query["app_auth_token"] == "202401BBmerchant"
    signed = {**{k: v for k, v in query.items() if k != "sign"}, **dict(parse_qsl(recorder.requests[0].content.decode()))}
    assert query["sign"] == rsa2(APP_KEY, "&".join(f"{k}={signed[k]}" for k in sorted(signed)))
    assert handle.adapter.token_store.load("alipay", "shop#merchant") is not None


async def test_an_answer_that_does_not_verify_is_an_error_and_never_retried():
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    recorder = Recorder(answer("alipay.marketing.card.update", {"code": "10000", "msg": "Success"}, key=forger))
    with pytest.raises(hub.PlatformConfigError, match="alipay_public_key"):
        await push(recorder)
    assert len(recorder.requests) == 1


async def test_a_business_failure_carries_its_sub_code_and_is_not_retried():
    recorder = Recorder({"code": "40004", "msg": "Business Failed", "sub_code": "CARD_NOT_EXIST", "sub_msg": "会员卡不存在"})
    with pytest.raises(hub.PermanentError) as caught:
        await push(recorder)
    assert caught.value.code == "40004" and "CARD_NOT_EXIST" in str(caught.value)
    assert len(recorder.requests) == 1


async def test_service_unavailable_is_retried_and_signed_again():
    recorder = Recorder({"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error"})
    result, handle = await push(recorder)
    assert result.accepted and len(recorder.requests) == 2
    assert handle.retries.total == 1
    first, second = (dict(r.url.params) for r in recorder.requests)
    assert first["method"] == second["method"] and second["sign"]  # the retry went through the signer again


async def test_an_error_response_is_mapped_by_its_sub_code():
    body = b'{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature"}}'
    recorder = Recorder(httpx.Response(200, content=body))
    with pytest.raises(hub.PlatformConfigError) as caught:
        await push(recorder)
    assert caught.value.code == "isv.invalid-signature"


async def test_a_card_without_biz_card_no_is_refused_without_a_call():
    recorder = Recorder()
    result, _ = await push(recorder, card=MemberCard(member_id=1, platform="alipay", account_id="shop"))
    assert not result.accepted and not recorder.requests


@pytest.mark.parametrize("key", ["app_private_key", "alipay_public_key"])
def test_a_key_that_does_not_parse_is_a_config_error_naming_the_key_not_its_content(key):
    bad = "-----BEGIN PRIVATE KEY-----\nMIIsecretsecretsecret\n-----END PRIVATE KEY-----"
    with pytest.raises(ConfigError) as caught:
        settings(**{key: bad})
    assert key in str(caught.value) and "secretsecret" not in str(caught.value)
