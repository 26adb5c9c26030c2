"""Douyin's envelope, error table and callback signature, pinned to the documented rules."""

from __future__ import annotations

import hashlib

import httpx
import pytest

import hub
from hub.platform.errormap import check_response
from plugins.douyin import DouyinAdapter
from plugins.douyin.wire import CAUSES, ERROR_CODES, as_int, envelope_error, sign_body, signature_matches

# The documented rule: X-Douyin-Signature = hex SHA-1 of (client_secret + raw body), no separator.
# Body below is the exact body of the official Go example; the secret is ours.
SECRET = "test_secret"
BODY = b'{"event":"verify_webhook","client_key":"abc","content":{"challenge":12345}}'
DIGEST = "ff779a3b9e9daa2d1484d22450cd02e9fcfc4e62"  # also computed independently below


def test_signature_vector_computed_by_hand():
    assert hashlib.sha1(SECRET.encode("utf-8") + BODY).hexdigest() == DIGEST
    assert sign_body(SECRET, BODY) == DIGEST
    assert signature_matches(SECRET, BODY, DIGEST)
    assert signature_matches(SECRET, BODY, DIGEST.upper())  # hex case is not meaningful


@pytest.mark.parametrize("signature", [
    None, "", "0" * 40, DIGEST[:-1], DIGEST + "0",
    hashlib.sha1(BODY + SECRET.encode()).hexdigest(),  # secret appended instead of prefixed
    hashlib.sha1(SECRET.encode() + b"&" + BODY).hexdigest(),  # with a separator
    "签名",
])
def test_forged_signatures_do_not_match(signature):
    assert not signature_matches(SECRET, BODY, signature)


def test_a_one_byte_change_of_the_body_does_not_match():
    changed = BODY.replace(b"12345", b"12346")
    assert len(changed) == len(BODY) and changed != BODY
    assert not signature_matches(SECRET, changed, DIGEST)
    assert not signature_matches("test_secreT", BODY, DIGEST)


@pytest.mark.parametrize(("body", "expected"), [
    ({"data": {"error_code": 0, "description": ""}, "extra": {"error_code": 0, "sub_error_code": 0}}, None),
    ({"data": {"error_code": "0"}, "extra": {"error_code": "0", "sub_error_code": "0"}}, None),
    ({"data": {"access_token": "x", "error_code": 0}, "message": "success"}, None),  # OAuth shape
    ({"data": {"list": []}}, None),  # no code at all
    ({"data": {"error_code": "28001008", "description": "过期"}, "extra": {"error_code": 28001008}},
     (28001008, "过期")),
    ({"data": {"error_code": 0}, "extra": {"error_code": "2190002", "description": "无效"}}, (2190002, "无效")),
    ({"data": {"error_code": 0}, "extra": {"error_code": 0, "sub_error_code": 12001, "sub_description": "频繁"}},
     (12001, "频繁")),
    ({"data": {"error_code": 10010, "description": "refresh_token过期"}, "message": "error"},
     (10010, "refresh_token过期")),
    ({"data": {"error_code": "n/a"}}, (-1, "")),
    ([1, 2], (-1, "the answer is not a JSON object")),
])
def test_success_needs_every_code_to_be_zero(body, expected):
    assert envelope_error(body) == expected


def test_numbers_sent_as_strings_are_parsed():
    assert [as_int("86400"), as_int(" 7 "), as_int(3), as_int(4.0), as_int(None), as_int("", default=-1)] == \
        [86400, 7, 3, 4, 0, -1]
    for bad in (True, "1.5", 2.5, [1]):
        with pytest.raises(ValueError):
            as_int(bad)


@pytest.mark.parametrize(("code", "cls"), [
    (28001008, hub.TokenExpired), (2190008, hub.TokenExpired), (2190002, hub.TokenExpired),
    (28003018, hub.RateLimited), (28003017, hub.PlatformConfigError), (2190001, hub.PlatformConfigError),
    (28001005, hub.TransientError), (2100004, hub.TransientError), (28001007, hub.PermanentError),
    (10010, hub.PlatformConfigError), (10020, hub.PlatformConfigError), (11002, hub.TokenExpired),
])
def test_both_code_families_map_as_documented(code, cls):
    entry = ERROR_CODES[code]
    assert (entry[0] if isinstance(entry, tuple) else entry) is cls


def _response(json, status=200):
    return httpx.Response(status, json=json, request=httpx.Request("GET", "https://open.douyin.com/fans/list/"))


ADAPTER = DouyinAdapter(config=None, client=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("body", "cls"), [
    ({"data": {"error_code": 0}, "extra": {"error_code": "28003018", "description": "请求频率过高"}}, hub.RateLimited),
    ({"data": {"error_code": "2190008", "description": "x"}}, hub.TokenExpired),
    ({"data": {"error_code": 99999999, "description": "新的错误"}}, hub.PermanentError),
])
def test_check_response_applies_the_envelope(body, cls):
    with pytest.raises(cls) as caught:
        check_response(ADAPTER, _response(body), account_id="ent")
    assert caught.value.platform == "douyin" and "/fans/list/" in str(caught.value)


def test_a_success_envelope_passes_and_an_html_error_page_maps_by_status():
    check_response(ADAPTER, _response({"data": {"error_code": "0"}, "extra": {"error_code": "0"}}))
    page = httpx.Response(502, content=b"<html>bad gateway</html>",
                          request=httpx.Request("GET", "https://open.douyin.com/fans/list/"))
    with pytest.raises(hub.TransientError):
        check_response(ADAPTER, page)
    missing = httpx.Response(404, content=b"<html>not found</html>",
                             request=httpx.Request("GET", "https://open.douyin.com/fans/list"))
    with pytest.raises(hub.PermanentError, match="HTTP 404"):
        check_response(ADAPTER, missing)


def test_every_code_has_a_cause_in_our_words():
    assert set(CAUSES) == set(ERROR_CODES)
    assert all(text and text.isascii() for text in CAUSES.values())  # our words, not Douyin's


def test_a_hub_error_says_the_cause_in_our_words_or_douyins_for_an_unknown_code():
    known = _response({"data": {"error_code": 10004, "description": "权限不足"}, "message": "error"})
    with pytest.raises(hub.PlatformConfigError) as caught:
        check_response(ADAPTER, known, account_id="ent")
    assert "renew_refresh_token scope" in str(caught.value) and "(code 10004)" in str(caught.value)
    unknown = _response({"data": {"error_code": 99999999, "description": "新的错误"}})
    with pytest.raises(hub.PermanentError, match="新的错误"):
        check_response(ADAPTER, unknown, account_id="ent")
