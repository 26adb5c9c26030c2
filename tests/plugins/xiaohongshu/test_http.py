"""Every Xiaohongshu request the adapter makes, pinned with respx: the exact JSON bodies, the
signature, the 30-minute windows read from the last page to the first, tokens and decryption."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

import hub

from hub.platform.client import build_client
from plugins.xiaohongshu import XiaohongshuAdapter
from plugins.xiaohongshu.auth import XiaohongshuAuth
from plugins.xiaohongshu.wire import encode_cursor
from schemas import Account, OrderStatus

BASE = "https://ark.xiaohongshu.com"
PATH = "/ark/open_api/v3/common_controller"
ACCOUNT = Account(platform="xiaohongshu", account_id="shop")
SECRET = "s3cret-app-secret"
START = 1_700_000_000  # a window in the past: the horizon (now) never cuts it
SYSTEM = ("appId", "method", "version", "timestamp", "sign", "accessToken")


def now_ms(**delta: float) -> int:
    return int((datetime.now(UTC) + timedelta(**delta)).timestamp() * 1000)


def ok(data: Any) -> dict[str, Any]:
    return {"error_code": 0, "error_msg": "", "success": True, "data": data}


def inner(data: Any) -> dict[str, Any]:
    return ok({"code": 0, "msg": "成功", "success": True, "data": data})


def tokens(access: str = "token-live", refresh: str = "refresh-live", **expiry: float) -> dict[str, Any]:
    return ok({"accessToken": access, "accessTokenExpiresAt": now_ms(**(expiry or {"days": 6})),
               "refreshToken": refresh, "refreshTokenExpiresAt": now_ms(days=13), "sellerId": "5f00aa",
               "sellerName": "小店"})


class Gateway:
    """A fake gateway: answers by ``method`` from queues (the token call by default answers fresh
    tokens) and keeps every request body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.answers: dict[str, list[Any]] = {"oauth.refreshToken": []}

    def on(self, method: str, *answers: Any) -> None:
        self.answers.setdefault(method, []).extend(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path == PATH and not request.url.query
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.content)
        self.bodies.append(body)
        queue = self.answers.get(body["method"])
        if body["method"] == "oauth.refreshToken" and not queue:
            return httpx.Response(200, json=tokens())
        answer = queue.pop(0)
        if callable(answer):
            answer = answer(body)
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    def calls(self, method: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b["method"] == method]


class Rig:
    def __init__(self, **overrides: Any) -> None:
        options = {"app_id": "app-1", "app_secret": SECRET, "access_token": "token-configured",
                   "refresh_token": "refresh-configured", "empty_windows_per_page": 1, **overrides}
        self.gateway = Gateway()
        self.router = respx.Router(base_url=BASE, assert_all_called=False)
        self.router.post(PATH).mock(side_effect=self.gateway)
        self.client = build_client(XiaohongshuAdapter, "shop", transport=httpx.MockTransport(self.router.async_handler))
        self.adapter = XiaohongshuAdapter(config=XiaohongshuAdapter.Config(**options), client=self.client)
        self.store = hub.MemoryTokenStore()
        self.adapter.account_id, self.adapter.token_store = "shop", self.store
        self.client.adapter = self.adapter
        self.client.auth = XiaohongshuAuth(self.adapter, self.store, "shop")

    def token(self) -> hub.Token | None:
        return self.store.load("xiaohongshu", "shop")


def business(body: dict[str, Any]) -> dict[str, Any]:
    """The body without its system parameters, after checking them."""
    assert body["appId"] == "app-1" and body["version"] == "2.0"
    stamp = body["timestamp"]  # a string of Unix seconds, as in doc 39's example body
    assert isinstance(stamp, str) and stamp.isdigit() and abs(int(stamp) - time.time()) < 5
    source = f"{body['method']}?appId=app-1&timestamp={body['timestamp']}&version=2.0{SECRET}"
    assert body["sign"] == hashlib.md5(source.encode()).hexdigest()
    return {k: v for k, v in body.items() if k not in SYSTEM}


def listing(total: int, page: int, ids: list[str], size: int = 100) -> dict[str, Any]:
    return ok({"total": total, "pageNo": page, "pageSize": size, "maxPageNo": -(-total // size),
               "orderList": [{"orderId": i, "orderStatus": 7, "orderAfterSalesStatus": 1} for i in ids]})


def detail(order_id: str, **fields: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        assert body["orderId"] == order_id
        return ok({"orderId": order_id, "userId": f"u-{order_id}", "orderStatus": 7, "orderAfterSalesStatus": 1,
                   "totalPayAmount": 10_600, "totalShippingFree": 600, "createdTime": 1_700_000_000_000,
                   "paidTime": 1_700_000_060_000, "updateTime": 1_700_000_600_000, "openAddressId": f"oa-{order_id}",
                   **fields})
    return answer


# -- tokens and signing --------------------------------------------------------------------------

async def test_the_first_call_refreshes_to_learn_the_expiries_then_signs_with_the_token_unsigned():
    rig = Rig()
    rig.gateway.on("order.getOrderList", listing(0, 1, []))
    async with rig.client:
        page = await rig.adapter.fetch_orders(ACCOUNT, encode_cursor(START, START + 1800, 0))
    refresh, listed = rig.gateway.bodies[:2]
    assert refresh["method"] == "oauth.refreshToken" and "accessToken" not in refresh
    assert business(refresh) == {"refreshToken": "refresh-configured"}
    assert listed["accessToken"] == "token-live"  # in the body, outside the signature
    assert business(listed) == {"startTime": START, "endTime": START + 1800, "timeType": 2, "pageNo": 1,
                                "pageSize": 100}
    token = rig.token()
    assert token.access_token == "token-live" and token.extra["seller_id"] == "5f00aa"
    assert timedelta(days=5, hours=23) < token.expires_at - datetime.now(UTC) <= timedelta(days=6)
    assert timedelta(days=12, hours=23) < token.refresh_expires_at - datetime.now(UTC) <= timedelta(days=13)
    assert page.items == [] and page.next_cursor == encode_cursor(START + 1800, START + 3600, 0)


async def test_refresh_waits_for_the_last_30_minutes_and_then_rotates_both_tokens():
    rig = Rig()
    rig.gateway.on("oauth.refreshToken", tokens(minutes=40), tokens("token-2", "refresh-2", days=7))
    for _ in range(3):
        rig.gateway.on("order.getOrderList", listing(0, 1, []))
    cursor = encode_cursor(START, START + 1800, 0)
    async with rig.client:
        await rig.adapter.fetch_orders(ACCOUNT, cursor)  # learns the expiry: 40 minutes left
        await rig.adapter.fetch_orders(ACCOUNT, cursor)  # more than 25 minutes: no refresh
        assert len(rig.gateway.calls("oauth.refreshToken")) == 1
        # 20 minutes later (another process starts from the stored token): inside the window
        stored = rig.token()
        rig.store.save("xiaohongshu", "shop", hub.Token(stored.access_token, datetime.now(UTC) + timedelta(minutes=20),
                                                        stored.refresh_token, stored.refresh_expires_at, stored.extra))
        rig.client.auth = XiaohongshuAuth(rig.adapter, rig.store, "shop")
        await rig.adapter.fetch_orders(ACCOUNT, cursor)
    first, second = rig.gateway.calls("oauth.refreshToken")
    assert business(first) == {"refreshToken": "refresh-configured"} and business(second) == {
        "refreshToken": "refresh-live"}
    assert [b["accessToken"] for b in rig.gateway.calls("order.getOrderList")] == [
        "token-live", "token-live", "token-2"]
    assert (rig.token().access_token, rig.token().refresh_token) == ("token-2", "refresh-2")


async def test_a_dead_refresh_token_ends_the_sync_with_when_to_authorise_again(caplog):
    rig = Rig()
    expired = datetime.now(UTC) - timedelta(hours=2)
    rig.store.save("xiaohongshu", "shop", hub.Token("token-old", expired, "refresh-old", expired,
                                                    {"seed": hashlib.sha256(b"refresh-configured").hexdigest()[:16]}))
    async with rig.client:
        with pytest.raises(hub.PlatformConfigError) as info:
            await rig.adapter.fetch_orders(ACCOUNT, encode_cursor(START, START + 1800, 0))
    text = str(info.value)
    assert "must authorise the app again" in text and f"expired at {expired:%Y-%m-%d %H:%M} UTC" in text
    assert "appId=app-1" in text and rig.gateway.bodies == []  # nothing sent
    assert "refresh-old" not in text and SECRET not in text


async def test_a_refused_refresh_says_the_shop_must_authorise_again():
    rig = Rig()
    rig.gateway.on("oauth.refreshToken", {"error_code": -1, "error_msg": "refresh token invalid", "success": False})
    async with rig.client:
        with pytest.raises(hub.PlatformConfigError, match="must authorise the app again .* expiry is unknown"):
            await rig.adapter.fetch_orders(ACCOUNT, encode_cursor(START, START + 1800, 0))


async def test_a_configured_error_code_rejecting_the_token_refreshes_once_and_resends():
    rig = Rig(extra_error_codes={-77: "token_expired"})
    rig.gateway.on("oauth.refreshToken", tokens(), tokens("token-new", "refresh-new", minutes=10))
    rig.gateway.on("order.getOrderList", {"error_code": -77, "error_msg": "token invalid", "success": False},
                   listing(0, 1, []))
    async with rig.client:
        await rig.adapter.fetch_orders(ACCOUNT, encode_cursor(START, START + 1800, 0))
    first, again = rig.gateway.calls("order.getOrderList")
    assert (first["accessToken"], again["accessToken"]) == ("token-live", "token-new")
    assert business(again) == business(first)  # signed afresh


async def test_an_unknown_code_is_permanent_and_names_the_platforms_message():
    rig = Rig()
    rig.gateway.on("order.getOrderList", {"error_code": -1010001, "error_msg": "获取商家信息出错", "success": False})
    async with rig.client:
        with pytest.raises(hub.PermanentError, match="获取商家信息出错") as info:
            await rig.adapter.fetch_orders(ACCOUNT, encode_cursor(START, START + 1800, 0))
    assert info.value.code == -1010001 and SECRET not in str(info.value)
    assert len(rig.gateway.calls("order.getOrderList")) == 1  # never retried


# -- the 30-minute windows, last page first ------------------------------------------------------

async def test_a_window_is_probed_then_read_from_its_last_page_to_its_first():
    rig = Rig(page_size=2)
    ids = [f"P{i}" for i in range(5)]
    rig.gateway.on("order.getOrderList", listing(5, 1, ids[:2], size=2), listing(5, 3, ids[4:], size=2),
                   listing(5, 2, ids[2:4], size=2), listing(5, 1, ids[:2], size=2))
    for i in ["P4", "P2", "P3", "P0", "P1"]:
        rig.gateway.on("order.getOrderDetail", detail(i))
    cursor = encode_cursor(START, START + 1800, 0)
    seen, cursors = [], []
    async with rig.client:
        for _ in range(3):
            page = await rig.adapter.fetch_orders(ACCOUNT, cursor)
            seen += [o.order_id for o in page.items]
            cursor = page.next_cursor
            cursors.append(cursor)
    pages = [business(b)["pageNo"] for b in rig.gateway.calls("order.getOrderList")]
    assert pages == [1, 3, 2, 1]  # the probe, then the last page first
    assert {(business(b)["startTime"], business(b)["endTime"], business(b)["pageSize"])
            for b in rig.gateway.calls("order.getOrderList")} == {(START, START + 1800, 2)}
    assert seen == ["P4", "P2", "P3", "P0", "P1"]
    assert cursors == [f"{START}:{START + 1800}:2", f"{START}:{START + 1800}:1",
                       encode_cursor(START + 1800, START + 3600, 0)]


async def test_empty_windows_are_walked_in_one_call_up_to_the_limit():
    rig = Rig(empty_windows_per_page=3)
    for _ in range(3):
        rig.gateway.on("order.getOrderList", listing(0, 1, []))
    async with rig.client:
        page = await rig.adapter.fetch_orders(ACCOUNT, encode_cursor(START, START + 1800, 0))
    windows = [(business(b)["startTime"], business(b)["endTime"]) for b in rig.gateway.calls("order.getOrderList")]
    assert windows == [(START, START + 1800), (START + 1800, START + 3600), (START + 3600, START + 5400)]
    assert page.items == [] and page.next_cursor == encode_cursor(START + 5400, START + 7200, 0)


async def test_the_last_window_ends_at_the_horizon_and_ends_the_stream():
    rig = Rig(window_minutes=30, settle_seconds=60, lookback_days=0.01)  # 864 s back: one short window
    rig.gateway.on("order.getOrderList", listing(1, 1, ["P1"]))
    rig.gateway.on("order.getOrderDetail", detail("P1"))
    async with rig.client:
        page = await rig.adapter.fetch_orders(ACCOUNT, None)
    [body] = rig.gateway.calls("order.getOrderList")
    window = business(body)
    assert window["endTime"] - window["startTime"] == 864
    assert abs(window["endTime"] - (time.time() - 60)) < 5
    assert page.next_cursor is None and [o.order_id for o in page.items] == ["P1"]


async def test_a_window_over_10000_orders_is_narrowed():
    rig = Rig()
    rig.gateway.on("order.getOrderList", listing(12_000, 1, []), listing(6_000, 1, []), listing(6_000, 60, ["P9"]))
    rig.gateway.on("order.getOrderDetail", detail("P9"))
    async with rig.client:
        page = await rig.adapter.fetch_orders(ACCOUNT, encode_cursor(START, START + 1800, 0))
    windows = [(business(b)["endTime"] - business(b)["startTime"], business(b)["pageNo"])
               for b in rig.gateway.calls("order.getOrderList")]
    assert windows == [(1800, 1), (900, 1), (900, 60)]
    assert page.next_cursor == encode_cursor(START, START + 900, 59)


# -- orders, refunds, buyers ---------------------------------------------------------------------

async def test_orders_come_from_details_and_refunds_from_the_after_sale_apis():
    rig = Rig()
    rig.gateway.on("order.getOrderList", listing(2, 1, ["P1", "P2"]))
    rig.gateway.on("order.getOrderDetail", detail("P1"), detail("P2", orderAfterSalesStatus=3))
    rig.gateway.on("afterSale.listAfterSaleInfos", inner({"totalCount": 2, "afterSaleBasicInfos": [
        {"returnsId": "R1", "orderId": "P2", "status": 4}, {"returnsId": "R2", "orderId": "P2", "status": 5}]}))
    rig.gateway.on("afterSale.getAfterSaleInfo",
                   lambda b: inner({"afterSaleInfo": {"returnsId": b["returnsId"], "refundAmountYuan": 25.5,
                                                      "refundStatus": 2 if b["returnsId"] == "R1" else 401}}),
                   lambda b: inner({"afterSaleInfo": {"returnsId": b["returnsId"], "refundAmountYuan": 25.5,
                                                      "refundStatus": 2 if b["returnsId"] == "R1" else 401}}))
    async with rig.client:
        page = await rig.adapter.fetch_orders(ACCOUNT, encode_cursor(START, START + 1800, 0))
    assert business(rig.gateway.calls("afterSale.listAfterSaleInfos")[0]) == {"orderId": "P2", "pageNo": 1,
                                                                             "pageSize": 100}
    assert sorted(business(b)["returnsId"] for b in rig.gateway.calls("afterSale.getAfterSaleInfo")) == ["R1", "R2"]
    one, two = page.items
    assert (one.order_id, one.buyer_uid, one.amount_fen, one.status) == ("P1", "u-P1", 10_000, OrderStatus.COMPLETED)
    assert (two.refunded_fen, two.status) == (2550, OrderStatus.PARTIALLY_REFUNDED)


async def test_buyers_with_receiver_phones_decrypted_within_the_daily_quota():
    rig = Rig(phone_decrypt_calls_per_day=1)
    rig.gateway.on("order.getOrderList", listing(2, 1, ["P1", "P2"]), listing(1, 1, ["P3"]))
    rig.gateway.on("order.getOrderDetail", detail("P1", orderStatus=4), detail("P2"), detail("P3", orderStatus=4))
    rig.gateway.on("order.getOrderReceiverInfo", ok({"receiverInfos": [
        {"orderId": "P1", "matched": True, "receiverPhone": "#cipher#", "receiverName": "#n#"}]}))
    rig.gateway.on("data.batchDecrypt", ok({"dataInfoList": [
        {"dataTag": "P1", "encryptedData": "#cipher#", "decryptedData": "13900139000", "virtualNumberFlag": False}]}))
    async with rig.client:
        first = await rig.adapter.fetch_fans(ACCOUNT, encode_cursor(START, START + 1800, 0))
        second = await rig.adapter.fetch_fans(ACCOUNT, first.next_cursor)  # today's one call is spent
    assert business(rig.gateway.calls("order.getOrderReceiverInfo")[0]) == {
        "receiverQueries": [{"orderId": "P1", "openAddressId": "oa-P1"}], "isReturn": False}
    assert business(rig.gateway.calls("data.batchDecrypt")[0]) == {
        "baseInfos": [{"dataTag": "P1", "encryptedData": "#cipher#"}], "actionType": "4", "appUserId": "siyu-hub"}
    assert [(f.platform_uid, f.other_phones, f.phone) for f in first.items] == [
        ("u-P1", ["+8613900139000"], None), ("u-P2", [], None)]
    assert [(f.platform_uid, f.other_phones) for f in second.items] == [("u-P3", [])]
    assert len(rig.gateway.calls("order.getOrderReceiverInfo")) == 1  # no quota left: not even asked


async def test_the_platform_saying_the_quota_is_spent_stops_decrypting_for_the_day():
    rig = Rig(phone_decrypt_calls_per_day=10)
    rig.gateway.on("order.getOrderList", listing(1, 1, ["P1"]), listing(1, 1, ["P2"]))
    rig.gateway.on("order.getOrderDetail", detail("P1", orderStatus=4), detail("P2", orderStatus=4))
    rig.gateway.on("order.getOrderReceiverInfo", ok({"receiverInfos": [
        {"orderId": "P1", "matched": True, "receiverPhone": "#c#"}]}))
    rig.gateway.on("data.batchDecrypt", ok({"dataInfoList": [
        {"dataTag": "P1", "errorCode": -2000701, "errorMsg": "触发解密限额，无法解密"}]}))
    async with rig.client:
        first = await rig.adapter.fetch_fans(ACCOUNT, encode_cursor(START, START + 1800, 0))
        await rig.adapter.fetch_fans(ACCOUNT, first.next_cursor)
    assert first.items[0].other_phones == []
    assert len(rig.gateway.calls("data.batchDecrypt")) == 1


async def test_an_undocumented_status_is_a_note_and_garbage_a_permanent_error(caplog):
    caplog.set_level(logging.WARNING, "siyu")
    rig = Rig(warn_refresh_days=20)  # the refresh token (13 days left) is inside the warning
    rig.gateway.on("order.getOrderList", listing(2, 1, ["P1", "P2"]), listing(1, 1, ["P3"]), listing(1, 1, ["P4"]))
    rig.gateway.on("order.getOrderDetail", detail("P1"), detail("P2", orderStatus=11), detail("P3"),
                   detail("P4", totalPayAmount="lots"))
    cursor = encode_cursor(START, START + 1800, 0)
    async with rig.client:
        first = await rig.adapter.fetch_orders(ACCOUNT, cursor)
        second = await rig.adapter.fetch_orders(ACCOUNT, first.next_cursor)
        with pytest.raises(hub.PermanentError, match="unexpected order data"):
            await rig.adapter.fetch_orders(ACCOUNT, second.next_cursor)
    assert [o.order_id for o in first.items] == ["P1"]
    assert any("order P2 has an undocumented orderStatus" in n for n in first.notes)
    assert all(any("the refresh token expires at" in n for n in page.notes) for page in (first, second))
    assert caplog.text.count("the refresh token expires at") == 1  # logged once, noted on every page
