"""Every Kuaishou request the adapter makes, pinned with respx: exact bytes, tokens, errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlencode

import httpx
import pytest
import respx

import hub
from hub.platform.client import build_client
from hub.platform.retry import RetryPolicy
from plugins.kuaishou.adapter import DAY_MS, KuaishouAdapter
from plugins.kuaishou.auth import KuaishouAuth
from schemas import Account, OrderStatus

BASE = "https://openapi.kwaixiaodian.com"
ACCOUNT = Account(platform="kuaishou", account_id="shop")
NOW = datetime.now(UTC)
T = 1_767_225_600_000  # the adapter's clock in these tests (2026-01-01 00:00 UTC, epoch ms)
SIGN_SECRET = "t3st-sign-secret"
APP_SECRET = "t3st-app-secret"
MESSAGE_KEY = base64.b64encode(bytes(range(32))).decode()


class Rig:
    def __init__(self, retry=None, **overrides):
        options = {"app_key": "ks-app", "app_secret": APP_SECRET, "sign_secret": SIGN_SECRET,
                   "message_key": MESSAGE_KEY, "access_token": "AT-configured", "refresh_token": "RT-configured",
                   "access_token_expires_at": NOW + timedelta(hours=40),
                   "refresh_token_expires_at": NOW + timedelta(days=150), **overrides}
        self.router = respx.Router(base_url=BASE, assert_all_called=True)
        self.client = build_client(KuaishouAdapter, "shop", base_url=BASE, retry=retry or RetryPolicy(attempts=1),
                                   transport=httpx.MockTransport(self.router.async_handler))
        self.adapter = KuaishouAdapter(config=KuaishouAdapter.Config(**options), client=self.client)
        self.adapter.now_ms = lambda: T  # type: ignore[method-assign]
        self.client.adapter = self.adapter
        self.store = hub.MemoryTokenStore()
        self.adapter.account_id, self.adapter.token_store = "shop", self.store  # as the hub sets them
        self.client.auth = KuaishouAuth(self.adapter, self.store, "shop")

    def token(self):
        return self.store.load("kuaishou", "shop")


def expected_sign(params: dict[str, str], method: str = "HMAC_SHA256") -> str:
    text = "&".join(f"{k}={params[k]}" for k in sorted(params)) + f"&signSecret={SIGN_SECRET}"
    if method == "MD5":
        return hashlib.md5(text.encode()).hexdigest()
    return base64.b64encode(hmac.new(SIGN_SECRET.encode(), text.encode(), hashlib.sha256).digest()).decode()


def order_item(oid=1001, status=70, refunds=(), pay=T - 3_600_000, **base):
    return {"orderBaseInfo": {"oid": oid, "buyerOpenId": "buyer-1", "buyerNick": "小明", "buyerImage": "https://x/a.jpg",
                              "status": status, "createTime": T - 7_200_000, "payTime": pay,
                              "updateTime": T - 1_000, "refundTime": 0, "totalFee": 12_345, "expressFee": 800,
                              **base},
            "orderItemInfo": {"itemId": 1, "num": 1}, "orderRefundList": list(refunds),
            "orderAddress": {"encryptedMobile": f"#cipher-{oid}#"}}


def ok(data):
    return httpx.Response(200, json={"result": 1, "error_msg": "", "data": data, "requestId": "r1"})


def first_window_param(lookback_days=90, **extra):
    begin = T - 90 * DAY_MS + 60_000 if lookback_days == 90 else T - lookback_days * DAY_MS
    return {"beginTime": begin, "cpsType": 0, "cursor": "", "endTime": begin + 7 * DAY_MS, "orderViewStatus": 1,
            "pageSize": 50, "queryType": 2, "sort": 2, **extra}


# -- exact request bytes -------------------------------------------------------------------------

async def test_the_order_list_get_carries_exactly_the_documented_signed_query():
    rig = Rig()
    route = rig.router.get("/open/order/cursor/list").mock(return_value=ok({"cursor": "nomore", "orderList": []}))
    page = await rig.adapter.fetch_orders(ACCOUNT, None)
    param = json.dumps(first_window_param(), separators=(",", ":"), sort_keys=True)
    params = {"appkey": "ks-app", "method": "open.order.cursor.list", "version": "1", "param": param,
              "timestamp": str(T), "signMethod": "HMAC_SHA256", "access_token": "AT-configured"}
    params["sign"] = expected_sign(params)
    request = route.calls.last.request
    assert request.method == "GET"
    assert request.url.raw_path.decode() == "/open/order/cursor/list?" + urlencode(params)
    assert request.content == b""
    assert page.items == [] and json.loads(page.next_cursor)[3] == ""  # the next 7-day window


async def test_a_post_carries_the_same_parameters_form_encoded_and_md5_signed():
    rig = Rig(sign_method="MD5", order_list_http_method="POST", order_lookback_days=3)
    route = rig.router.post("/open/order/cursor/list").mock(return_value=ok({"cursor": "nomore", "orderList": []}))
    page = await rig.adapter.fetch_orders(ACCOUNT, None)
    param = json.dumps(first_window_param(3, endTime=T), separators=(",", ":"), sort_keys=True)
    params = {"appkey": "ks-app", "method": "open.order.cursor.list", "version": "1", "param": param,
              "timestamp": str(T), "signMethod": "MD5", "access_token": "AT-configured"}
    params["sign"] = expected_sign(params, "MD5")
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.content == urlencode(params).encode()
    assert request.url.query == b""
    assert page.next_cursor is None  # one window, one page: the pass is done


# -- paging and mapping --------------------------------------------------------------------------

async def test_orders_follow_the_cursor_then_the_next_window_then_end():
    rig = Rig(order_lookback_days=10)
    items = [order_item(1001), order_item(1002, status=80, pay=0), order_item(1003, refunds=[{"refundStatus": 60}]),
             order_item(1004, status=80), order_item(1005, status=10, pay=0)]
    route = rig.router.get("/open/order/cursor/list").mock(side_effect=[
        ok({"cursor": "c2", "orderList": items[:2]}), ok({"cursor": "nomore", "orderList": items[2:]}),
        ok({"cursor": "nomore", "orderList": []})])
    first = await rig.adapter.fetch_orders(ACCOUNT, None)
    second = await rig.adapter.fetch_orders(ACCOUNT, first.next_cursor)
    third = await rig.adapter.fetch_orders(ACCOUNT, second.next_cursor)
    sent = [json.loads(dict(c.request.url.params)["param"]) for c in route.calls]
    assert [p["cursor"] for p in sent] == ["", "c2", ""]
    assert sent[0]["beginTime"] == sent[1]["beginTime"] == T - 10 * DAY_MS
    assert sent[2]["beginTime"] == sent[0]["endTime"] == T - 3 * DAY_MS and sent[2]["endTime"] == T
    assert third.next_cursor is None
    orders = {o.order_id: o for o in [*first.items, *second.items]}
    assert orders["1001"].status is OrderStatus.COMPLETED and orders["1001"].amount_fen == 12_345
    assert orders["1001"].paid_at == datetime.fromtimestamp((T - 3_600_000) / 1000, UTC)
    assert orders["1002"].status is OrderStatus.CANCELLED  # closed before payment
    assert orders["1003"].status is OrderStatus.REFUNDED and orders["1003"].refunded_fen == 12_345
    assert orders["1004"].status is OrderStatus.REFUNDED  # closed after payment: the money went back
    assert orders["1005"].status is OrderStatus.CREATED
    assert {o.buyer_uid for o in orders.values()} == {"buyer-1"}


async def test_freight_counts_when_configured():
    rig = Rig(amount_basis="total_fee_with_express", order_lookback_days=1)
    rig.router.get("/open/order/cursor/list").mock(return_value=ok({"cursor": "nomore", "orderList": [order_item()]}))
    [order] = (await rig.adapter.fetch_orders(ACCOUNT, None)).items
    assert order.amount_fen == 12_345 + 800


async def test_fans_are_the_distinct_buyers_with_decrypted_phones_where_allowed(caplog):
    caplog.set_level(logging.DEBUG)
    rig = Rig(order_lookback_days=1, decrypt_phones=True)
    items = [order_item(1), order_item(2), {**order_item(3, buyerOpenId="buyer-2"), "orderAddress": {}}]
    rig.router.get("/open/order/cursor/list").mock(return_value=ok({"cursor": "nomore", "orderList": items}))
    decrypt = rig.router.post("/open/security/instant/decrypt/batch").mock(return_value=ok([
        {"encryptedData": "#cipher-1#", "decryptedData": "13800138000", "errorCode": 0},
        {"encryptedData": "#cipher-2#", "decryptedData": "138****8000", "errorCode": 0}]))
    page = await rig.adapter.fetch_fans(ACCOUNT, None)
    form = dict(parse_qsl(decrypt.calls.last.request.content.decode()))
    assert json.loads(form["param"]) == {"decryptDataList": [{"encryptedData": "#cipher-1#"},
                                                             {"encryptedData": "#cipher-2#"}]}
    assert form["method"] == "open.security.instant.decrypt.batch" and form["sign"]
    fans = {f.platform_uid: f for f in page.items}
    assert set(fans) == {"buyer-1", "buyer-2"}
    assert fans["buyer-1"].nickname == "小明" and fans["buyer-1"].other_phones == ["+8613800138000"]
    assert fans["buyer-2"].other_phones == []
    assert "13800138000" not in caplog.text and "8000" not in caplog.text


async def test_no_decryption_unless_the_shop_allows_it():
    rig = Rig(order_lookback_days=1)
    rig.router.get("/open/order/cursor/list").mock(return_value=ok({"cursor": "nomore", "orderList": [order_item()]}))
    [fan] = (await rig.adapter.fetch_fans(ACCOUNT, None)).items
    assert fan.other_phones == [] and "other_phones" not in fan.model_fields_set


# -- tokens --------------------------------------------------------------------------------------

async def test_an_expired_token_is_refreshed_and_the_rotation_saved_before_use():
    rig = Rig(access_token_expires_at=NOW - timedelta(minutes=1), order_lookback_days=1)
    refresh = rig.router.post("/oauth2/refresh_token").mock(return_value=httpx.Response(200, json={
        "result": 1, "access_token": "AT-2", "expires_in": 172800, "refresh_token": "RT-2",
        "refresh_token_expires_in": 200 * 86400, "open_id": "seller", "scopes": ["merchant_order"]}))
    stored_at_call = []

    def answer(request):
        stored_at_call.append(rig.token().refresh_token)
        return ok({"cursor": "nomore", "orderList": []})

    api = rig.router.get("/open/order/cursor/list").mock(side_effect=answer)
    await rig.adapter.fetch_orders(ACCOUNT, None)
    assert dict(parse_qsl(refresh.calls.last.request.content.decode())) == {
        "grant_type": "refresh_token", "refresh_token": "RT-configured", "app_id": "ks-app", "app_secret": APP_SECRET}
    assert stored_at_call == ["RT-2"]  # persisted before the new access token was used
    assert dict(api.calls.last.request.url.params)["access_token"] == "AT-2"
    token = rig.token()
    assert token.expires_at > NOW + timedelta(hours=47)
    # the new refresh token keeps the old expiry (150 days), however long the answer says
    assert abs(token.refresh_expires_at - (NOW + timedelta(days=150))) < timedelta(seconds=5)


async def test_a_token_the_platform_calls_expired_is_refreshed_once_and_resent():
    rig = Rig(order_lookback_days=1)
    rig.router.post("/oauth2/refresh_token").mock(return_value=httpx.Response(200, json={
        "result": 1, "access_token": "AT-2", "expires_in": 172800, "refresh_token": "RT-2"}))
    answers = iter([httpx.Response(200, json={"result": 4001, "error_msg": "TOKEN过期"}),
                    ok({"cursor": "nomore", "orderList": []})])
    tokens = []

    def answer(request):  # the same request is signed again: read it as it is sent
        params = dict(request.url.params)
        tokens.append(params["access_token"])
        assert params["sign"] == expected_sign({k: v for k, v in params.items() if k != "sign"})
        return next(answers)

    rig.router.get("/open/order/cursor/list").mock(side_effect=answer)
    await rig.adapter.fetch_orders(ACCOUNT, None)
    assert tokens == ["AT-configured", "AT-2"]


async def test_a_warning_names_the_date_when_the_refresh_token_runs_out(caplog):
    caplog.set_level(logging.INFO, "siyu")
    rig = Rig(access_token_expires_at=NOW - timedelta(minutes=1), refresh_token_expires_at=NOW + timedelta(days=5),
              order_lookback_days=1)
    rig.router.post("/oauth2/refresh_token").mock(return_value=httpx.Response(200, json={
        "result": 1, "access_token": "AT-2", "expires_in": 172800, "refresh_token": "RT-2",
        "refresh_token_expires_in": 5 * 86400}))
    rig.router.get("/open/order/cursor/list").mock(return_value=ok({"cursor": "nomore", "orderList": []}))
    await rig.adapter.fetch_orders(ACCOUNT, None)
    day = (NOW + timedelta(days=5)).date().isoformat()
    assert f"the refresh token expires on {day}" in caplog.text and "authorise the app again" in caplog.text
    for secret in ("RT-2", "AT-2", "RT-configured", APP_SECRET, SIGN_SECRET):
        assert secret not in caplog.text


async def test_an_expired_refresh_token_ends_the_sync_saying_to_reauthorise_and_when():
    expired = NOW - timedelta(days=2)
    rig = Rig(access_token_expires_at=NOW - timedelta(minutes=1), refresh_token_expires_at=expired)
    with pytest.raises(hub.PlatformConfigError) as caught:
        await rig.adapter.fetch_orders(ACCOUNT, None)
    message = str(caught.value)
    assert f"expired on {expired.date().isoformat()}" in message and "must authorise the app again" in message
    assert "RT-configured" not in message


@pytest.mark.parametrize("code", [100200102, 100200105])
async def test_a_refused_refresh_ends_the_sync_saying_to_reauthorise(code):
    rig = Rig(access_token_expires_at=NOW - timedelta(minutes=1))
    rig.router.post("/oauth2/refresh_token").mock(return_value=httpx.Response(200, json={
        "result": code, "error": "access_denied", "error_msg": "refreshToken.discarded"}))
    with pytest.raises(hub.PlatformConfigError, match="must authorise the app again") as caught:
        await rig.adapter.fetch_orders(ACCOUNT, None)
    assert caught.value.code == code


# -- errors --------------------------------------------------------------------------------------

async def test_a_qps_answer_is_retried_after_a_second():
    rig = Rig(retry=RetryPolicy(attempts=3, initial_wait=0, max_wait=0, jitter=0), order_lookback_days=1)
    rig.router.get("/open/order/cursor/list").mock(side_effect=[
        httpx.Response(200, json={"result": 9, "error_msg": "Exceed qps limit, KEY [apiId:1;appkey:ks-app], "
                                                            "MAX_QPS [300.0]"}),
        ok({"cursor": "nomore", "orderList": []})])
    await rig.adapter.fetch_orders(ACCOUNT, None)
    assert rig.client.retries.by_reason == {"RateLimited": 1}


@pytest.mark.parametrize(("message", "cls"), [
    ("验签失败", hub.PlatformConfigError), ("token中无scope权限", hub.PlatformConfigError),
    ("Exceed quota limit, KEY [appkey:ks-app]", hub.PlatformConfigError), ("参数错误", hub.PermanentError)])
async def test_failures_map_to_hub_errors(message, cls):
    rig = Rig(order_lookback_days=1)
    rig.router.get("/open/order/cursor/list").mock(return_value=httpx.Response(200, json={
        "result": 40003, "error_msg": message}))
    with pytest.raises(cls) as caught:
        await rig.adapter.fetch_orders(ACCOUNT, None)
    assert SIGN_SECRET not in str(caught.value) and quote(SIGN_SECRET) not in str(caught.value)


async def test_a_retry_is_signed_again_with_a_fresh_timestamp():
    rig = Rig(retry=RetryPolicy(attempts=2, initial_wait=0, max_wait=0, jitter=0), order_lookback_days=1)
    seen = []
    rig.adapter.now_ms = lambda: T + 5_000 * len(seen)  # type: ignore[method-assign]  # 5 s pass per attempt

    def answer(request):
        params = dict(request.url.params)
        seen.append(params["timestamp"])
        assert params["sign"] == expected_sign({k: v for k, v in params.items() if k != "sign"})
        return httpx.Response(503) if len(seen) == 1 else ok({"cursor": "nomore", "orderList": []})

    rig.router.get("/open/order/cursor/list").mock(side_effect=answer)
    await rig.adapter.fetch_orders(ACCOUNT, None)
    assert seen == [str(T), str(T + 5_000)]


async def test_a_shop_that_does_not_allow_decryption_still_gives_its_buyers():
    rig = Rig(order_lookback_days=1, decrypt_phones=True)
    rig.router.get("/open/order/cursor/list").mock(return_value=ok({"cursor": "nomore", "orderList": [order_item()]}))
    rig.router.post("/open/security/instant/decrypt/batch").mock(return_value=httpx.Response(200, json={
        "result": 7, "error_msg": "token中无scope权限"}))
    page = await rig.adapter.fetch_fans(ACCOUNT, None)
    assert [f.platform_uid for f in page.items] == ["buyer-1"] and page.items[0].other_phones == []
    assert len(page.notes) == 1 and "not decrypted" in page.notes[0]


def test_a_message_key_that_is_not_an_aes_key_is_a_config_error_that_does_not_echo_it():
    import pydantic

    options = {"app_key": "k", "app_secret": "s", "sign_secret": "s", "access_token": "a", "refresh_token": "r"}
    for bad in ("not-base64-at-all!", base64.b64encode(b"short").decode()):
        with pytest.raises(pydantic.ValidationError) as caught:
            KuaishouAdapter.Config(**options, message_key=bad)
        assert bad not in str(caught.value) and "message_key" in str(caught.value)
