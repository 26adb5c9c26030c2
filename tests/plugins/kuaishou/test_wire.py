"""Kuaishou's wire rules pinned to the documented facts: paths, signatures, the envelope, the push cipher."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import hub
from plugins.kuaishou.wire import (
    CAUSES,
    DECRYPT_METHOD,
    ERROR_CODES,
    ORDER_LIST_METHOD,
    PATHS,
    decrypt_push,
    encode_param,
    encrypt_push,
    envelope_error,
    method_path,
    sign,
    string_to_sign,
)

# The derived vector of the platform notes (§2.2): the official doc has no usable vector.
DOC_PARAMS = {"access_token": "tok", "appkey": "ks123", "method": "open.item.get", "param": '{"itemId":30001}',
              "signMethod": "MD5", "timestamp": "1704038400000", "version": "1"}


def test_every_code_has_a_cause_in_our_words():
    assert set(CAUSES) == set(ERROR_CODES)


def test_the_path_is_the_method_with_slashes():
    assert PATHS["order_list"] == method_path(ORDER_LIST_METHOD)
    assert PATHS["decrypt"] == method_path(DECRYPT_METHOD)
    assert method_path("open.order.cursor.list") == "/open/order/cursor/list"
    assert method_path("open.security.instant.decrypt.batch") == "/open/security/instant/decrypt/batch"


def test_the_string_to_sign_is_sorted_pairs_then_the_sign_secret():
    assert string_to_sign({**DOC_PARAMS, "sign": "ignored"}, "secret") == (
        'access_token=tok&appkey=ks123&method=open.item.get&param={"itemId":30001}&signMethod=MD5'
        "&timestamp=1704038400000&version=1&signSecret=secret")


def test_md5_and_hmac_vectors_of_the_platform_notes():
    assert sign(DOC_PARAMS, "secret", "MD5") == "13980bb41d7b82bf12e618c96eb25cf4"
    hmac_params = {**DOC_PARAMS, "signMethod": "HMAC_SHA256"}
    assert sign(hmac_params, "secret", "HMAC_SHA256") == "4K8i3k/gDuCGWA2NAk0g5GkxEzEllfY4r3W1IXNoadM="


def test_signatures_computed_here_from_the_documented_rule():
    secret = "t3st-sign-secret"
    params = {"appkey": "ks-app", "method": "open.order.cursor.list", "version": "1", "access_token": "AT",
              "timestamp": "1767225600000", "param": '{"cursor":"","pageSize":50}', "signMethod": "MD5"}
    text = ('access_token=AT&appkey=ks-app&method=open.order.cursor.list&param={"cursor":"","pageSize":50}'
            "&signMethod=MD5&timestamp=1767225600000&version=1&signSecret=t3st-sign-secret")
    assert sign(params, secret, "MD5") == hashlib.md5(text.encode()).hexdigest()
    params["signMethod"] = "HMAC_SHA256"
    text = text.replace("signMethod=MD5", "signMethod=HMAC_SHA256")
    expected = base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode()
    assert sign(params, secret, "HMAC_SHA256") == expected
    with pytest.raises(ValueError):
        sign(params, secret, "SHA1")  # type: ignore[arg-type]


def test_param_is_compact_sorted_json_that_keeps_unicode():
    assert encode_param({"b": 1, "a": "快手", "c": ""}) == '{"a":"快手","b":1,"c":""}'


@pytest.mark.parametrize(("body", "expected"), [
    ({"result": 1, "data": {}}, None),
    ({"result": "1", "data": {}}, None),
    ({"result": 24, "error_msg": "AUTHORIZATION_REVOKED"},
     (24, "the shop revoked the app's authorisation (AUTHORIZATION_REVOKED): authorise again")),
    ({"result": 26, "data": None, "error_msg": "主账号不存在"},
     (26, "the main account does not exist: the wrong kind of token for this API")),
    ({"result": 100200102, "error": "access_denied"}, (100200102, CAUSES[100200102])),
    ({"result": 31, "error_msg": "没见过的错误"}, (31, "没见过的错误")),
    ({"result": 7, "error_msg": "Exceed qps limit, KEY [apiId:1;appkey:k], MAX_QPS [300.0]"},
     ("msg:qps-limit", "QPS limit exceeded")),
    ({"result": 7, "error_msg": "Exceed quota limit, KEY [appkey:k]"}, ("msg:daily-quota", "daily call quota exhausted")),
    ({"result": 7, "error_msg": "[1017] exceed quota limit,[apiId:1;primaryUserId:2]"},
     ("msg:daily-quota", "daily call quota exhausted")),
    ({"result": 7, "error_msg": "TOKEN过期"}, ("msg:token-expired", "access token expired")),
    ({"result": 7, "error_msg": "验签失败"}, ("msg:signature-failed",
                                           "signature check failed: check sign_secret and sign_method")),
    ({"result": 7, "error_msg": "token中无scope权限"}, ("msg:scope-missing",
                                                     "the shop did not grant the scope this call needs")),
    ({"error_msg": "?"}, ("no-result", "?")),
    ([], ("malformed", "answer is not a JSON object")),
])
def test_the_envelope(body, expected):
    assert envelope_error(body) == expected


@pytest.mark.parametrize(("code", "cls"), [
    ("msg:token-expired", hub.TokenExpired), ("msg:qps-limit", hub.RateLimited),
    ("msg:signature-failed", hub.PlatformConfigError), ("msg:scope-missing", hub.PlatformConfigError),
    ("msg:daily-quota", hub.PlatformConfigError), (24, hub.PlatformConfigError), (100200500, hub.TransientError),
    (999, hub.PermanentError),
])
def test_the_error_table(code, cls):
    error = hub.error_for_code(ERROR_CODES, code, "m", platform="kuaishou")
    assert type(error) is cls
    if cls is hub.RateLimited:
        assert error.retry_after == 1.0


KEY = base64.b64encode(bytes(range(32))).decode()  # a message key written here


def encrypt_here(plaintext: bytes, key: str = KEY) -> bytes:
    """AES/CBC/PKCS5 with a zero IV, then Base64: the documented push cipher, built with cryptography."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(base64.b64decode(key)), modes.CBC(b"\0" * 16)).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize())


def test_a_push_built_here_decrypts_and_ours_matches_it():
    plaintext = json.dumps({"eventId": "e1", "event": "kwaishop_order_addOrder", "info": '{"oid":1}'}).encode()
    body = encrypt_here(plaintext)
    assert decrypt_push(body, KEY) == plaintext
    assert encrypt_push(plaintext, KEY) == body


@pytest.mark.parametrize(("body", "reason"), [
    (b"not base64!!", "not Base64"),
    (base64.b64encode(b"short"), "whole AES blocks"),
    (b"", "whole AES blocks"),
])
def test_bad_push_bodies(body, reason):
    with pytest.raises(ValueError, match=reason) as caught:
        decrypt_push(body, KEY)
    assert KEY not in str(caught.value)


def test_a_push_under_another_key_does_not_decrypt():
    other = base64.b64encode(bytes(32)).decode()
    with pytest.raises(ValueError, match="does not decrypt"):
        decrypt_push(encrypt_here(b'{"eventId":"e"}' * 3, other), KEY)


def test_a_bad_message_key_is_named_without_its_value():
    with pytest.raises(ValueError, match="AES key"):
        decrypt_push(encrypt_here(b"{}"), base64.b64encode(b"0123").decode())
