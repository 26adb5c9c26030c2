"""Alipay's wire rules pinned to the documentation: the string to sign, RSA2 signatures checked
against vectors computed here (``openssl dgst -sha256 -sign`` with the key in ``keys.py``), the
quote-aware reading of answers, response and notify verification, keys and the error table."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import hub
from plugins.alipay import wire
from tests.plugins.alipay.keys import APP_KEY, APP_KEY_PEM, bare_base64, pem_public, pkcs8, rsa2, signed_body

QUERY_PARAMS = {
    "app_id": "2016080100000000",
    "method": "alipay.marketing.card.query",
    "format": "json",
    "charset": "utf-8",
    "sign_type": "RSA2",
    "timestamp": "2024-01-01 12:00:00",
    "version": "1.0",
    "biz_content": '{"target_card_no":"1234","target_card_no_type":"BIZ_CARD"}',
}
# the documented rule applied by hand: every parameter (sign_type too), sorted, k=v joined by &
QUERY_BASE = ('app_id=2016080100000000&biz_content={"target_card_no":"1234","target_card_no_type":"BIZ_CARD"}'
              "&charset=utf-8&format=json&method=alipay.marketing.card.query&sign_type=RSA2"
              "&timestamp=2024-01-01 12:00:00&version=1.0")


def test_the_string_to_sign_is_every_parameter_sorted_without_sign_and_empty_values():
    assert wire.sign_content(QUERY_PARAMS) == QUERY_BASE
    with_noise = {**QUERY_PARAMS, "sign": "xyz", "app_auth_token": "", "notify_url": ""}
    assert wire.sign_content(with_noise) == QUERY_BASE
    merchant = {**QUERY_PARAMS, "app_auth_token": "202401BB"}
    assert wire.sign_content(merchant) == QUERY_BASE.replace("app_id=2016080100000000&",
                                                             "app_auth_token=202401BB&app_id=2016080100000000&")


def test_the_signature_is_sha256_with_rsa_over_utf8_in_base64():
    signature = wire.sign(QUERY_BASE, APP_KEY)
    assert signature == rsa2(APP_KEY, QUERY_BASE)
    assert len(signature) == 344 and "\n" not in signature  # a 2048-bit key, one line
    # PKCS#1 v1.5 is deterministic: a stable regression vector for this key and string
    assert signature.startswith("splZhJfV1hkazEtzTHLOCvxC0AQkF4zXrCJl7YXe") and signature.endswith("/b5I85b8t1LLX5EFHA==")
    assert hashlib.sha256(signature.encode()).hexdigest() == (
        "31c57aa8987741dd9f2c735d07ddebcfb46f42da639cf26f41b82d7c1b66723a")
    chinese = "biz_content={\"name\":\"会员卡\"}&sign_type=RSA2"
    assert wire.sign(chinese, APP_KEY) == rsa2(APP_KEY, chinese)
    assert wire.verify(QUERY_BASE.encode(), signature, APP_KEY.public_key())
    assert not wire.verify((QUERY_BASE + " ").encode(), signature, APP_KEY.public_key())
    assert not wire.verify(QUERY_BASE.encode(), "not base64!", APP_KEY.public_key())


def test_timestamp_is_shanghai_wall_clock_and_biz_content_is_compact_sorted_utf8():
    assert wire.shanghai_timestamp(datetime(2024, 1, 1, 4, 0, 0, tzinfo=UTC)) == "2024-01-01 12:00:00"
    assert wire.biz_json({"b": 1, "a": {"名": "卡"}}) == '{"a":{"名":"卡"},"b":1}'


def test_notify_rules_v1_and_v2():
    form = {"notify_id": "n1", "sign": "S", "sign_type": "RSA2", "app_id": "1", "version": "1.0", "charset": "utf-8",
            "empty": ""}
    assert wire.notify_sign_content(form, "V1") == "app_id=1&charset=utf-8&notify_id=n1&version=1.0"
    assert wire.notify_sign_content(form, "V2") == "app_id=1&charset=utf-8&notify_id=n1&sign_type=RSA2&version=1.0"


TRICKY = ('{"code":"10000","msg":"Success","infos":"[{\\"OPEN_FORM_FIELD_NAME\\":\\"王{小}\\\\\\"二\\"}]",'
          '"note":"}\\",\\"sign\\":\\"forged\\"}","nested":{"list":[1,{"x":"]}"}],"e":"\\u4e2d\\\\"}}')


def test_answers_are_read_with_a_quote_aware_scan():
    assert json.loads(TRICKY)["note"] == '}","sign":"forged"}'  # the text really is tricky
    body = '{ "alipay_marketing_card_query_response" : ' + TRICKY + ' , "sign":"abc" }'
    members = wire.top_level_members(body)
    assert members["alipay_marketing_card_query_response"] == TRICKY
    assert members["sign"] == '"abc"'
    for broken in ('{"a":"unterminated}', '{"a":{"b":1}', '["not", "an object"]', '{"a" 1}', '{"a":1} trailing'):
        with pytest.raises(wire.MalformedResponse):
            wire.top_level_members(broken)


def alipay_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_a_signed_answer_with_braces_quotes_and_escapes_verifies_byte_for_byte():
    key = alipay_key()
    body = signed_body("alipay_marketing_card_query_response", TRICKY, key)
    reply = wire.read_response(body, "alipay.marketing.card.query", key.public_key())
    assert reply.ok and reply.verified
    assert reply.node["note"] == '}","sign":"forged"}' and reply.node["nested"]["e"] == "中\\"
    # the same node re-serialised differs from what was signed: only the raw text verifies
    assert json.dumps(json.loads(TRICKY), ensure_ascii=False, separators=(",", ":")) != TRICKY


def test_a_tampered_or_unsigned_success_is_never_trusted():
    key = alipay_key()
    body = signed_body("alipay_marketing_card_query_response", TRICKY, key)
    tampered = body.replace(b'"10000"', b'"10000" ')
    with pytest.raises(wire.SignatureMismatch):
        wire.read_response(tampered, "alipay.marketing.card.query", key.public_key())
    other = alipay_key()
    with pytest.raises(wire.SignatureMismatch):  # signed, but not by Alipay's key
        wire.read_response(signed_body("alipay_marketing_card_query_response", TRICKY, other),
                           "alipay.marketing.card.query", key.public_key())
    unsigned = ('{"alipay_marketing_card_query_response":' + TRICKY + "}").encode()
    with pytest.raises(wire.SignatureMismatch):
        wire.read_response(unsigned, "alipay.marketing.card.query", key.public_key())


def test_error_response_and_unsigned_failures_are_read_for_their_codes_only():
    key = alipay_key()
    body = b'{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature","sub_msg":"\\u9a8c\\u7b7e\\u51fa\\u9519"},"sign":""}'
    reply = wire.read_response(body, "alipay.marketing.card.update", key.public_key())
    assert not reply.ok and not reply.verified and wire.error_key(reply) == "isv.invalid-signature"
    assert reply.describe() == "40002 isv.invalid-signature: 验签出错"
    business = '{"code":"40004","msg":"Business Failed","sub_code":"CARD_NOT_EXIST","sub_msg":"会员卡不存在"}'
    reply = wire.read_response(signed_body("alipay_marketing_card_update_response", business, key),
                               "alipay.marketing.card.update", key.public_key())
    assert reply.verified and wire.error_key(reply) == "40004" and "CARD_NOT_EXIST" in reply.describe()
    with pytest.raises(wire.MalformedResponse):
        wire.read_response(b'{"other_response":{}}', "alipay.marketing.card.update", key.public_key())


def test_keys_load_from_pem_pkcs1_pkcs8_and_the_consoles_bare_base64():
    public = APP_KEY.public_key().public_numbers()
    for text in (APP_KEY_PEM, pkcs8(APP_KEY), bare_base64(APP_KEY_PEM), bare_base64(pkcs8(APP_KEY))):
        assert wire.load_private_key(text).public_key().public_numbers() == public
    for text in (pem_public(APP_KEY), bare_base64(pem_public(APP_KEY))):
        assert wire.load_public_key(text).public_numbers() == public
    for bad in ("", "not a key", APP_KEY_PEM.replace("MIIE", "MIIF"), pem_public(APP_KEY)):
        with pytest.raises(ValueError) as caught:
            wire.load_private_key(bad)
        assert "MII" not in str(caught.value)


def test_every_error_table_entry_is_a_hub_error_and_sub_codes_win():
    for entry in wire.ERROR_CODES.values():
        assert issubclass(entry, hub.PlatformError)
    assert wire.ERROR_CODES["20000"] is hub.TransientError
    assert wire.ERROR_CODES["40004"] is hub.PermanentError
    assert wire.ERROR_CODES["20001"] is wire.ERROR_CODES["40006"] is hub.PlatformConfigError
    reply = wire.GatewayReply(node={"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"}, verified=True)
    assert wire.error_key(reply) == "ACQ.SYSTEM_ERROR"
    assert wire.response_key("alipay.system.oauth.token") == "alipay_system_oauth_token_response"
