"""Alipay notifies: verified by rule V1 or V2 before anything is read, checked for app and version,
deduplicated on ``notify_id``; card-delete notifies close the card.  Signed here with a key of the
test's own, as Alipay would sign them."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import hub
from hub.config import parse_settings
from hub.platform.account import open_account
from hub.plugins import load_plugins
from schemas import CardStatus, Fan
from tests.plugins.alipay.keys import APP_KEY_PEM, pem_public, rsa2

HOST = load_plugins()
ALIPAY_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
APP_ID = "2021000000000001"


def notify(kind="alipay.marketing.card.delete.notify", rule="V1", key=ALIPAY_KEY, **fields):
    form = {"notify_id": "n-001", "utc_timestamp": "1767225600000", "msg_method": kind, "app_id": APP_ID,
            "version": "1.0", "charset": "utf-8", "sign_type": "RSA2",
            "biz_content": json.dumps({"biz_card_no": "BIZ0001", "open_id": "074OPEN", "user_id": "2088001",
                                       "remark": '{"引号"}\\'}, ensure_ascii=False)}
    form.update(fields)
    dropped = {"sign", "sign_type"} if rule == "V1" else {"sign"}
    form["sign"] = rsa2(key, "&".join(f"{k}={form[k]}" for k in sorted(form) if k not in dropped and form[k] != ""))
    return hub.WebhookRequest(method="POST", path="/webhooks/alipay/shop", query={},
                              headers={"content-type": "application/x-www-form-urlencoded"},
                              body=urlencode(form).encode())


async def parse(request, **extra):
    raw = {"platform": "alipay", "id": "shop", "app_id": APP_ID, "app_private_key": APP_KEY_PEM,
           "alipay_public_key": pem_public(ALIPAY_KEY), "card_template_id": "T1", **extra}
    s = parse_settings({"security": {"phone_key": "p" * 32}, "accounts": [raw]}, HOST)
    transport = httpx.MockTransport(lambda r: httpx.Response(500))
    async with open_account(HOST, s, s.accounts[0], transport=transport) as handle:
        return await handle.adapter.parse_webhook(handle.account, request)


async def test_a_card_delete_notify_closes_the_card():
    result = await parse(notify())
    assert result.body == b"success" and result.dedupe_key == "notify:n-001"
    [fan] = result.events
    assert isinstance(fan, Fan) and fan.platform_uid == "074OPEN" and fan.card_no == "BIZ0001"
    assert fan.card_status is CardStatus.CLOSED and fan.identity_keys == {"alipay_user_id": "2088001"}
    assert result.raw == {"kind": "alipay.marketing.card.delete.notify", "notify_id": "n-001", "biz_card_no": "BIZ0001"}


async def test_an_open_notify_reports_an_active_card_and_a_failed_open_nothing():
    opened = await parse(notify(kind="alipay.user.opencard.result.notify"))
    assert opened.events[0].card_status is CardStatus.ACTIVE
    failed = await parse(notify(kind="alipay.user.opencard.result.notify", biz_content=json.dumps(
        {"biz_card_no": "B", "open_id": "O", "success": "false"})))
    assert failed.events == []


async def test_a_tampered_notify_is_rejected():
    good = notify()
    tampered = hub.WebhookRequest(good.method, good.path, good.query, good.headers,
                                  good.body.replace(b"BIZ0001", b"BIZ0002"))
    with pytest.raises(hub.WebhookRejected) as caught:
        await parse(tampered)
    assert caught.value.status_code == 401


async def test_rule_v2_keeps_sign_type_in_the_string_for_the_kinds_configured():
    message = notify(kind="alipay.mobile.public.message.notify", rule="V2")
    with pytest.raises(hub.WebhookRejected):
        await parse(message)  # verified by V1 it fails
    result = await parse(message, notify_v2_kinds=["alipay.mobile.public.message.notify"])
    assert result.events == [] and result.raw == {"kind": "alipay.mobile.public.message.notify", "notify_id": "n-001"}


@pytest.mark.parametrize(("fields", "status"), [
    ({"app_id": "2021999999999999"}, 403),
    ({"version": "2.0"}, 400),
    ({"notify_id": ""}, 400),
    ({"sign_type": "RSA"}, 400),
])
async def test_other_apps_versions_and_notifies_without_id_are_refused(fields, status):
    with pytest.raises(hub.WebhookRejected) as caught:
        await parse(notify(**fields))
    assert caught.value.status_code == status


async def test_unsigned_or_foreign_signed_notifies_are_refused():
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for request in (notify(key=other), hub.WebhookRequest("POST", "/", {}, {}, b"notify_id=1&app_id=" + APP_ID.encode())):
        with pytest.raises(hub.WebhookRejected) as caught:
            await parse(request)
        assert caught.value.status_code == 401


async def test_an_app_auth_notify_keeps_no_token():
    result = await parse(notify(kind="open_app_auth_notify", biz_content=json.dumps(
        {"detail": {"app_auth_token": "secret-token", "user_id": "2088"}})))
    assert "secret-token" not in repr(result.raw) and result.events == []


async def test_an_activation_callback_without_auth_code_is_refused():
    with pytest.raises(hub.WebhookRejected) as caught:
        await parse(hub.WebhookRequest("GET", "/webhooks/alipay/shop", {"request_id": "r"}, {}, b""))
    assert caught.value.status_code == 400
