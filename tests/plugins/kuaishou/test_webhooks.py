"""Kuaishou pushes: decrypted from ciphertexts built here, heartbeats, and every bad input refused."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import hub
from plugins.kuaishou.webhooks import parse_push
from schemas import Account, Fan

ACCOUNT = Account(platform="kuaishou", account_id="shop")
KEY = base64.b64encode(b"k" * 16 + b"K" * 16).decode()  # the message key, written here
APP_KEY = "ks-app"


def encrypt(plaintext: bytes, key: str = KEY) -> bytes:
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(base64.b64decode(key)), modes.CBC(bytes(16))).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize())


def message(event="kwaishop_order_paySuccess", info=None, **top) -> dict:
    info = {"oid": 2100000000001, "sellerId": 42, "status": 30, "buyerOpenId": "buyer-9",
            "updateTime": 1767225600000} if info is None else info
    return {"eventId": "ev-1", "bizId": 2100000000001, "userId": 42, "openId": "seller-open", "appKey": APP_KEY,
            "event": event, "info": json.dumps(info), "createTime": 1767225600000, "test": False, **top}


def push(body: bytes, method: str = "POST") -> hub.WebhookRequest:
    return hub.WebhookRequest(method=method, path="/webhooks/kuaishou/shop", query={},
                              headers={"content-type": "text/plain;charset=utf-8"}, body=body)


def parse(body: bytes, **kwargs) -> hub.WebhookResult:
    return parse_push(ACCOUNT, push(body, **kwargs), message_key=KEY, app_key=APP_KEY)


def test_an_order_push_gives_its_buyer_and_keeps_the_event_under_its_event_id():
    result = parse(encrypt(json.dumps(message()).encode()))
    assert (result.status_code, result.body, result.media_type) == (200, b'{"result":1}', "application/json")
    assert result.dedupe_key == "ev-1"
    assert result.events == [Fan(platform="kuaishou", account_id="shop", platform_uid="buyer-9")]
    assert result.raw["event"] == "kwaishop_order_paySuccess"
    assert result.raw["info"]["oid"] == 2100000000001  # info parsed a second time


def test_an_after_sales_push_is_kept_as_it_came_without_phone_numbers():
    info = {"orderId": 7, "refundId": 8, "status": 10, "receiverMobile": "13800138000",
            "extra": {"phone": "13800138000", "handlingWay": 1}}
    result = parse(encrypt(json.dumps(message("kwaishop_aftersales_addRefund", info, eventId="ev-2")).encode()))
    assert result.events == [] and result.dedupe_key == "ev-2"
    assert "13800138000" not in json.dumps(result.raw)
    assert result.raw["info"] == {"orderId": 7, "refundId": 8, "status": 10, "extra": {"handlingWay": 1}}


def test_info_may_already_be_an_object_or_empty():
    as_object = {**message(), "info": {"oid": 1, "buyerOpenId": "b"}}
    assert parse(encrypt(json.dumps(as_object).encode())).events[0].platform_uid == "b"
    assert parse(encrypt(json.dumps({**message(), "info": ""}).encode())).events == []


@pytest.mark.parametrize("body", [b'{"test":true}', b' {"test": true}\n'])
def test_the_console_test_and_heartbeats_are_acknowledged_and_not_stored(body):
    result = parse(body)
    assert result.body == b'{"result":1}' and result.events == () and result.dedupe_key is None and not result.raw


def test_an_encrypted_heartbeat_is_acknowledged_too():
    result = parse(encrypt(b'{"test":true}'))
    assert result.body == b'{"result":1}' and result.dedupe_key is None and not result.raw


@pytest.mark.parametrize(("body", "status", "words"), [
    (b"%%% not base64 %%%", 400, "not Base64"),
    (base64.b64encode(b"seventeen bytes!!"), 400, "whole AES blocks"),
    (encrypt(json.dumps(message()).encode(), base64.b64encode(bytes(32)).decode()), 400, "does not decrypt"),
    (encrypt("快手 not json".encode()), 400, "not UTF-8 JSON"),
    (encrypt(b"\xff\xfe\xfd"), 400, "not UTF-8 JSON"),
    (encrypt(b"[1, 2]"), 400, "not a JSON object"),
    (encrypt(json.dumps({"eventId": "e"}).encode()), 400, "no event"),
    (encrypt(json.dumps({**message(), "eventId": ""}).encode()), 400, "no event"),
    (encrypt(json.dumps({**message(), "info": "{oops"}).encode()), 400, "info is not JSON"),
    (encrypt(json.dumps({**message(), "info": "[1]"}).encode()), 400, "info is not a JSON object"),
    (encrypt(json.dumps({**message(), "appKey": "another-app"}).encode()), 403, "another app"),
    (b'{"test":false}', 400, "not Base64"),
])
def test_bad_pushes_are_refused(body, status, words):
    with pytest.raises(hub.WebhookRejected, match=words) as caught:
        parse(body)
    assert caught.value.status_code == status
    assert KEY not in str(caught.value)


def test_a_tampered_ciphertext_is_refused():
    body = bytearray(encrypt(json.dumps(message()).encode()))
    refused = 0
    for i in range(0, len(body) - 4, 7):  # one character changed at a time, across the body
        tampered = bytearray(body)
        tampered[i] = ord("A") if tampered[i] != ord("A") else ord("B")
        try:
            parse(bytes(tampered))
        except hub.WebhookRejected:
            refused += 1
    assert refused == len(range(0, len(body) - 4, 7))


def test_only_posts():
    with pytest.raises(hub.WebhookRejected) as caught:
        parse(b"", method="GET")
    assert caught.value.status_code == 405
