"""Xiaohongshu wire facts pinned to the published vectors, and the pure mapping functions."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from plugins.xiaohongshu.mapping import (
    buyer_fans,
    mainland_mobile,
    order_status,
    refunded_fen,
    strip_private,
    to_orders,
    yuan_to_fen,
)
from plugins.xiaohongshu.wire import (
    decode_cursor,
    encode_cursor,
    envelope_error,
    push_sign,
    push_sign_source,
    push_signature_matches,
    request_sign,
    request_sign_source,
    unwrap,
)
from schemas import OrderStatus

PUSH_SECRET = "9a539709cafc1efc9ef05838be468a28"


# -- the published md5 vectors (research file §3.2, §3.5, §3.6) ----------------------------------

def test_request_sign_reproduces_the_sdk_vector():
    source = request_sign_source("oauth.getAccessToken", "test-app", 1700000000, "1.0", "secret-key")
    assert source == "oauth.getAccessToken?appId=test-app&timestamp=1700000000&version=1.0secret-key"
    assert request_sign("oauth.getAccessToken", "test-app", 1700000000, "1.0", "secret-key") == (
        "15dd91e56a77df52c8a652a43a7c131e")


def test_push_sign_reproduces_the_doc_41_vector_with_its_query_parameter():
    source = push_sign_source("/open_api/msg", {"canshu": "test"}, "xhs", "1625475843", PUSH_SECRET)
    assert source == "/open_api/msg?app-key=xhs&canshu=test&timestamp=1625475843" + PUSH_SECRET
    assert hashlib.md5(source.encode()).hexdigest() == "a7b7430de338783293443133ab9b9357"
    assert push_sign("/open_api/msg", {"canshu": "test"}, "xhs", "1625475843", PUSH_SECRET) == (
        "a7b7430de338783293443133ab9b9357")
    # the doc's sample text without the query parameter does not give the published hash
    assert push_sign("/open_api/msg", {}, "xhs", "1625475843", PUSH_SECRET) != "a7b7430de338783293443133ab9b9357"


def test_push_sign_reproduces_the_legacy_v1_vector():
    query = {"status": "0", "page_size": "50", "page_no": "1"}  # any order: sorted by key
    assert push_sign("/ark/open_api/v1/items", query, "xhs", "1469902537", PUSH_SECRET) == (
        "72be6fad4dd0e5104dbdebbcdadb2a06")


@pytest.mark.parametrize("sign", ["A7B7430DE338783293443133AB9B9357", " a7b7430de338783293443133ab9b9357 "])
def test_push_signature_matches_ignores_case_and_spaces(sign):
    assert push_signature_matches("/open_api/msg", {"canshu": "test"}, "xhs", "1625475843", PUSH_SECRET, sign)


@pytest.mark.parametrize("sign", [None, "", "a7b7430de338783293443133ab9b9358", "not hex at all ✗"])
def test_bad_push_signatures_do_not_match(sign):
    assert not push_signature_matches("/open_api/msg", {"canshu": "test"}, "xhs", "1625475843", PUSH_SECRET, sign)


# -- the envelope --------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "expected"), [
    ({"error_code": 0, "success": True, "data": {"total": 0}}, None),
    ({"error_code": "0", "success": True, "data": None}, None),
    ({"error_code": -1010001, "success": False, "error_msg": "获取商家信息出错"}, (-1010001, "获取商家信息出错")),
    ({"error_code": 0, "success": False, "error_msg": "x"}, (-1, "x")),  # success false without a code
    ({"error_code": 0, "data": {}}, (-1, "")),  # no success flag is not a success
    ({"error_code": 0, "success": True, "data": {"code": 0, "msg": "成功", "success": True, "data": {}}}, None),
    ({"error_code": 0, "success": True, "data": {"code": 40001, "msg": "参数错误", "success": False}},
     (40001, "参数错误")),
    ([1, 2], (-1, "the answer is not a JSON object")),
])
def test_envelope_error_checks_both_layers(body, expected):
    assert envelope_error(body) == expected


def test_unwrap_takes_the_inner_data_where_there_is_one():
    assert unwrap({"data": {"code": 0, "success": True, "data": {"a": 1}}}) == {"a": 1}
    assert unwrap({"data": {"total": 3}}) == {"total": 3}
    assert unwrap({"data": None}) == {}


# -- the window cursor ---------------------------------------------------------------------------

def test_cursor_round_trips_and_refuses_what_it_did_not_write():
    assert decode_cursor(encode_cursor(1000, 2800, 7)) == (1000, 2800, 7)
    for bad in ("", "1:2", "a:b:c", "10:5:1", "0:1801:1", "0:1800:101", "0:10:-1"):
        with pytest.raises(ValueError):
            decode_cursor(bad)


# -- mapping -------------------------------------------------------------------------------------

def test_yuan_to_fen_rounds_half_up_and_refuses_garbage():
    assert [yuan_to_fen(v) for v in (None, "", 0, "12.34", 12.345, "0.1", 99.999)] == [0, 0, 0, 1234, 1235, 10, 10000]
    with pytest.raises(ValueError):
        yuan_to_fen("12元")


def test_refunded_fen_counts_only_successful_refunds():
    infos = [{"refundAmountYuan": 10.5, "refundStatus": 2}, {"refundAmountYuan": "3", "refundStatus": 1},
             {"refundAmountYuan": 1, "refundStatus": "2"}, {"refundStatus": 2}]
    assert refunded_fen(infos) == 1150


@pytest.mark.parametrize(("code", "paid", "refunded", "expected"), [
    (1, False, 0, (OrderStatus.CREATED, 0)),
    (4, True, 0, (OrderStatus.PAID, 0)),
    (6, True, 0, (OrderStatus.SHIPPED, 0)),
    (7, True, 0, (OrderStatus.COMPLETED, 0)),
    (7, True, 300, (OrderStatus.PARTIALLY_REFUNDED, 300)),
    (7, True, 5000, (OrderStatus.REFUNDED, 1000)),  # capped at the amount (a refund may include freight)
    (8, True, 0, (OrderStatus.REFUNDED, 1000)),
    (9, False, 0, (OrderStatus.CANCELLED, 0)),
    (9, True, 0, (OrderStatus.REFUNDED, 1000)),
])
def test_order_status(code, paid, refunded, expected):
    assert order_status(code, paid=paid, amount=1000, refunded=refunded) == expected


def test_an_undocumented_order_status_is_refused():
    with pytest.raises(ValueError, match="unknown orderStatus 42"):
        order_status(42, paid=True, amount=1, refunded=0)


DETAIL = {"orderId": "P700000000000000001", "userId": "60aa", "orderStatus": 7, "totalPayAmount": 12_600,
          "totalShippingFree": 600, "createdTime": 1_700_000_000_000, "paidTime": 1_700_000_030_000,
          "updateTime": 1_700_000_900_123, "openAddressId": "oa1"}


def test_to_orders_pays_points_on_goods_only_and_reads_millisecond_times():
    [order], skipped = to_orders("xiaohongshu", "shop", [DETAIL], {"P700000000000000001": 4000})
    assert (order.order_id, order.buyer_uid, order.amount_fen, order.refunded_fen, order.status) == (
        "P700000000000000001", "60aa", 12_000, 4000, OrderStatus.PARTIALLY_REFUNDED)
    assert skipped == [] and order.paid_at == datetime(2023, 11, 14, 22, 13, 50, tzinfo=UTC)
    assert order.refunded_at == datetime(2023, 11, 14, 22, 28, 20, 123000, tzinfo=UTC)
    [unpaid], _ = to_orders("xiaohongshu", "shop", [{**DETAIL, "orderStatus": 1, "paidTime": 0, "totalPayAmount": 0,
                                                      "totalShippingFree": 0}], {})
    assert (unpaid.status, unpaid.paid_at, unpaid.amount_fen) == (OrderStatus.CREATED, None, 0)


def test_an_order_of_an_undocumented_status_is_skipped_not_fatal():
    orders, skipped = to_orders("xiaohongshu", "shop", [DETAIL, {**DETAIL, "orderId": "P2", "orderStatus": 11}], {})
    assert [o.order_id for o in orders] == ["P700000000000000001"] and skipped == ["P2"]


def test_a_detail_without_its_buyer_fails_the_page():
    with pytest.raises(KeyError):
        to_orders("xiaohongshu", "shop", [{k: v for k, v in DETAIL.items() if k != "userId"}], {})


@pytest.mark.parametrize(("value", "expected"), [
    ("13800138000", "13800138000"), ("+8613800138000", "13800138000"), ("138 0013 8000", "13800138000"),
    ("18000000000-9999", None), ("021-12345678", None), ("123456789", None), (None, None), (13800138000, None),
])
def test_mainland_mobile(value, expected):
    assert mainland_mobile(value) == expected


def test_buyer_fans_one_per_buyer_with_the_receiver_phone_as_an_identity_key_only():
    details = [DETAIL, {**DETAIL, "orderId": "P2"}, {**DETAIL, "orderId": "P3", "userId": "60bb"}]
    fans = buyer_fans("xiaohongshu", "shop", details, {"P2": "13800138000"})
    assert [(f.platform_uid, f.phone, f.other_phones) for f in fans] == [
        ("60aa", None, ["+8613800138000"]), ("60bb", None, [])]  # normalised


def test_strip_private_removes_personal_fields_at_any_depth():
    data = {"orderId": "P1", "receiverPhone": "138", "x": [{"buyerMobile": "1", "keep": 2}], "receiver": {"a": 1}}
    assert strip_private(data) == {"orderId": "P1", "x": [{"keep": 2}]}
