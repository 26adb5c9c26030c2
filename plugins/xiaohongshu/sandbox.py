"""The Xiaohongshu sandbox: an ASGI app speaking the parts of the ark open platform the hub uses.

Written from the platform's documentation (``docs/platforms/xiaohongshu.md``), apart from the
adapter, so that the two cannot share one mistake; it shares with the plugin only the signing
primitives and constants of :mod:`plugins.xiaohongshu.wire`, which tests pin to the published
vectors.

Protocol
    ``POST /ark/open_api/v3/common_controller`` with a JSON body: ``appId``, ``method``,
    ``version`` "2.0", ``timestamp`` (seconds, a string or a number, within 15 minutes of its clock),
    ``sign`` (MD5 of ``method?appId=&timestamp=&version=`` + secret) and, except for token calls,
    ``accessToken``.  Answers ``{"error_code", "error_msg", "success", "data"}``; the after-sale
    methods wrap ``data`` in ``{"code", "msg", "success", "data"}``.
    ``oauth.refreshToken``: while the access token has more than 30 minutes left, the same tokens;
    within them or after expiry, new ones (access 7 days, refresh 14 days, absolute ms expiries;
    the old access token lives 5 more minutes, the old refresh token dies).
    ``order.getOrderList`` (``timeType`` 2: ≤ 30 minutes, inclusive, by update time, ascending),
    ``order.getOrderDetail``, ``order.getOrderReceiverInfo`` (orders awaiting shipment only),
    ``data.batchDecrypt`` (≤ 100 items, 10 calls a day; then per-item ``errorCode`` -2000701),
    ``afterSale.listAfterSaleInfos``, ``afterSale.getAfterSaleInfo``.

Codes the documentation does not give are the sandbox's own (:data:`SANDBOX_CODES`); the account
it hands out maps them with ``extra_error_codes``, as an operator would map the real ones.

Admin (not Xiaohongshu): ``POST /_admin/clock`` (``{"advance": seconds}``), ``/_admin/faults``,
``/_admin/refund`` (``{"order_id", "yuan"}``: a finished after-sale, the order updated now),
``/_admin/push`` (``{"url", "messages"}``: a signed push to ``url``, answering what it said),
``GET /_admin/stats``.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import hub
from plugins.xiaohongshu.sandbox_data import AfterSale, Shop, make_shop
from plugins.xiaohongshu.wire import GATEWAY_PATH, VERSION, push_sign, request_sign

__all__ = ["APP_ID", "APP_SECRET", "SANDBOX_CODES", "account_settings", "make_app", "make_sandbox", "push_request"]

APP_ID = "sandbox-app-0001"
APP_SECRET = "sandbox-app-secret-0123456789abcdef"
DAY_MS = 86_400_000
ACCESS_TTL_MS = 7 * DAY_MS
REFRESH_TTL_MS = 14 * DAY_MS
FRESH_WINDOW_MS = 30 * 60_000
SANDBOX_CODES = {"bad_sign": -9001, "bad_param": -9002, "token_invalid": -9003, "refresh_invalid": -9004,
                 "unknown_method": -9005}
"""The sandbox's own failure codes (the platform's gateway table is not public)."""


@dataclass
class Faults:
    busy: float = 0.0
    """A fraction of calls answered HTTP 503."""


@dataclass
class Grant:
    access: str
    access_expires: int
    refresh_expires: int


@dataclass
class State:
    shop: Shop
    faults: Faults = field(default_factory=Faults)
    offset_ms: int = 0
    grants: dict[str, Grant] = field(default_factory=dict)
    """By refresh token."""
    access: dict[str, int] = field(default_factory=dict)
    """Access token → expiry (ms)."""
    decrypt_calls: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms

    def count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def issue(self, refresh: str | None = None) -> tuple[str, Grant]:
        now = self.now_ms()
        if refresh is not None:
            old = self.grants.pop(refresh)
            self.access[old.access] = min(self.access.get(old.access, 0), now + 5 * 60_000)
        token, new_refresh = f"token-{secrets.token_hex(12)}", f"refresh-{secrets.token_hex(12)}"
        grant = Grant(token, now + ACCESS_TTL_MS, now + REFRESH_TTL_MS)
        self.grants[new_refresh] = grant
        self.access[token] = grant.access_expires
        return new_refresh, grant


def _answer(data: Any = None, *, code: int = 0, msg: str = "", status: int = 200) -> JSONResponse:
    body = {"error_code": code, "error_msg": msg, "success": code == 0, "data": data}
    return JSONResponse(body, status_code=status)


def _inner(data: Any) -> JSONResponse:
    return _answer({"code": 0, "msg": "成功", "success": True, "data": data})


def _bad(msg: str) -> JSONResponse:
    return _answer(code=SANDBOX_CODES["bad_param"], msg=msg)


LIST_FIELDS = ("orderId", "orderType", "orderStatus", "orderAfterSalesStatus", "cancelStatus", "createdTime",
               "paidTime", "updateTime", "deliveryTime", "cancelTime", "finishTime", "promiseLastDeliveryTime",
               "receiverProvinceName", "receiverCityName", "receiverDistrictName", "customerRemark", "sellerRemark",
               "sellerRemarkFlag", "logistics")
"""What ``order.getOrderList`` shows of an order (no buyer, no amounts)."""


def _cipher(phone: str) -> str:
    return "#" + phone[::-1].encode().hex() + "#"


def _decipher(text: str) -> str | None:
    try:
        return bytes.fromhex(text.strip("#")).decode()[::-1]
    except ValueError:
        return None


def order_list(state: State, body: dict[str, Any]) -> Response:
    try:
        start, end = int(body["startTime"]), int(body["endTime"])
        time_type = int(body["timeType"])
        page, size = int(body.get("pageNo", 1)), int(body.get("pageSize", 50))
    except (KeyError, TypeError, ValueError):
        return _bad("startTime, endTime and timeType are required")
    limit = 1800 if time_type == 2 else 86_400 if time_type == 1 else -1
    if not 0 <= end - start <= limit or not 1 <= page <= 100 or not 1 <= size <= 100:
        return _bad("时间范围或分页参数不合法")
    key = "updateTime" if time_type == 2 else "createdTime"
    found = sorted((o for o in state.shop.orders.values() if start * 1000 <= o[key] <= end * 1000 + 999),
                   key=lambda o: (o[key], o["orderId"]))
    state.count("list_pages")
    chunk = found[(page - 1) * size: page * size]
    return _answer({"total": len(found), "pageNo": page, "pageSize": size, "maxPageNo": math.ceil(len(found) / size),
                    "orderList": [{k: o[k] for k in LIST_FIELDS} for o in chunk]})


def order_detail(state: State, body: dict[str, Any]) -> Response:
    order = state.shop.orders.get(str(body.get("orderId")))
    if order is None:
        return _bad("订单不存在")
    state.count("details")
    return _answer({**order, "receiverName": None, "receiverPhone": None, "receiverAddress": None})


def receiver_info(state: State, body: dict[str, Any]) -> Response:
    queries = body.get("receiverQueries")
    if not isinstance(queries, list) or "isReturn" not in body:
        return _bad("receiverQueries and isReturn are required")
    infos = []
    for query in queries:
        order = state.shop.orders.get(str(query.get("orderId")))
        if order is None or order["orderStatus"] != 4:
            continue  # 待发货才可以拉到收件人信息
        matched = query.get("openAddressId") == order["openAddressId"]
        phone = state.shop.phones.get(order["orderId"], "")
        infos.append({"orderId": order["orderId"], "matched": matched, "receiverProvinceName": "上海",
                      **({"receiverName": "#name#", "receiverPhone": _cipher(phone), "receiverAddress": "#addr#"}
                         if matched else {})})
    return _answer({"receiverInfos": infos})


def batch_decrypt(state: State, body: dict[str, Any]) -> Response:
    items = body.get("baseInfos")
    if not isinstance(items, list) or not 1 <= len(items) <= 100 or not body.get("actionType") or not body.get(
            "appUserId"):
        return _bad("baseInfos (≤ 100), actionType and appUserId are required")
    day = time.strftime("%Y-%m-%d", time.gmtime(state.now_ms() / 1000 + 8 * 3600))
    state.decrypt_calls[day] = used = state.decrypt_calls.get(day, 0) + 1
    state.count("decrypt_calls")
    out = []
    for item in items:
        entry = {"dataTag": item.get("dataTag"), "encryptedData": item.get("encryptedData")}
        if used > 10:
            entry.update(errorCode=-2000701, errorMsg="触发解密限额，无法解密")
        else:
            entry.update(decryptedData=_decipher(str(item.get("encryptedData"))), virtualNumberFlag=False)
        out.append(entry)
    return _answer({"dataInfoList": out})


def after_sale_list(state: State, body: dict[str, Any]) -> Response:
    if not body.get("orderId") and not body.get("timeType"):
        return _bad("orderId or timeType is required")
    found = state.shop.after_sales.get(str(body.get("orderId")), [])
    return _inner({"totalCount": len(found), "pageNo": 1, "pageSize": body.get("pageSize", 20), "afterSaleBasicInfos": [
        {"returnsId": a.returns_id, "orderId": a.order_id, "userId": a.user_id, "returnType": 4, "status": a.status,
         "applyTime": a.applied_ms, "updatedAt": a.updated_ms, "expectedRefundAmountYuan": float(a.refund_yuan)}
        for a in found]})


def after_sale_info(state: State, body: dict[str, Any]) -> Response:
    for sales in state.shop.after_sales.values():
        for a in sales:
            if a.returns_id == body.get("returnsId"):
                return _inner({"afterSaleInfo": {
                    "returnsId": a.returns_id, "orderId": a.order_id, "userId": a.user_id, "status": a.status,
                    "refundStatus": a.refund_status, "refundAmountYuan": float(a.refund_yuan),
                    "refundTime": a.updated_ms, "applyTime": a.applied_ms, "updatedAt": a.updated_ms}})
    return _bad("售后单不存在")


BUSINESS = {"order.getOrderList": order_list, "order.getOrderDetail": order_detail,
            "order.getOrderReceiverInfo": receiver_info, "data.batchDecrypt": batch_decrypt,
            "afterSale.listAfterSaleInfos": after_sale_list, "afterSale.getAfterSaleInfo": after_sale_info}


def refresh_token(state: State, body: dict[str, Any]) -> Response:
    state.count("refresh_requests")
    refresh = str(body.get("refreshToken") or "")
    grant = state.grants.get(refresh)
    now = state.now_ms()
    if grant is None or grant.refresh_expires <= now:
        return _answer(code=SANDBOX_CODES["refresh_invalid"], msg="refreshToken 无效或已过期, 请重新授权")
    if grant.access_expires - now > FRESH_WINDOW_MS:
        token = refresh  # more than 30 minutes left: the same tokens
    else:
        token, grant = state.issue(refresh)
        state.count("tokens_issued")
    return _answer({"accessToken": grant.access, "accessTokenExpiresAt": grant.access_expires, "refreshToken": token,
                    "refreshTokenExpiresAt": grant.refresh_expires, "sellerId": state.shop.seller,
                    "sellerName": "沙盒小店"})


def make_app(fans: int = 300, *, seed: int = 0, faults: Faults | None = None,
             people: hub.Population | None = None) -> Starlette:
    """The sandbox app; the grant :func:`account_settings` hands the hub is already issued.

    :param people: shared people: the buyers are those of them who bought in the Xiaohongshu shop
        (``fans`` is then ignored), their orders updated within the last two hours.
    """
    # shared people's orders fall within two hours: a handful of 30-minute windows, so that reading
    # their receivers' phones fits in the 10 decryption calls a day allows
    span = 24.0 if people is None else 2.0
    state = State(shop=make_shop(seed, fans, int(time.time() * 1000), span, people=people), faults=faults or Faults())
    refresh, grant = state.issue()
    state.grants[f"refresh-sandbox-{seed}"] = state.grants.pop(refresh)
    state.access[f"token-sandbox-{seed}"] = state.access.pop(grant.access)
    grant.access = f"token-sandbox-{seed}"
    rng = random.Random(seed)

    async def gateway(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _bad("body is not JSON")
        if not isinstance(body, dict):
            return _bad("body is not an object")
        state.requests.append({k: v for k, v in body.items() if k not in ("accessToken", "sign")})
        method = str(body.get("method") or "")
        stamp = str(body.get("timestamp", ""))  # the doc's example sends a string of seconds
        if body.get("appId") != APP_ID or body.get("version") != VERSION or not stamp.isdigit():
            return _bad("appId, version 2.0 and timestamp (seconds) are required")
        if abs(int(stamp) * 1000 - state.now_ms()) > 15 * 60_000 + abs(state.offset_ms):
            return _bad("timestamp 超出允许范围")
        if body.get("sign") != request_sign(method, APP_ID, stamp, VERSION, APP_SECRET):
            state.count("bad_signs")
            return _answer(code=SANDBOX_CODES["bad_sign"], msg="签名错误")
        if state.faults.busy and rng.random() < state.faults.busy:
            state.count("busy")
            return Response("busy", status_code=503)
        if method == "oauth.refreshToken":
            return refresh_token(state, body)
        handler = BUSINESS.get(method)
        if handler is None:
            return _answer(code=SANDBOX_CODES["unknown_method"], msg="method 不存在")
        if state.access.get(str(body.get("accessToken")), 0) <= state.now_ms():
            state.count("token_rejected")
            return _answer(code=SANDBOX_CODES["token_invalid"], msg="accessToken 无效或已过期")
        return handler(state, body)

    async def admin(request: Request) -> Response:
        action = request.path_params["action"]
        order = json.loads(await request.body() or b"{}") if request.method == "POST" else {}
        if action == "clock":
            state.offset_ms += int(float(order.get("advance", 0)) * 1000)
            return JSONResponse({"offset_ms": state.offset_ms})
        if action == "faults":
            state.faults = Faults(**order)
            return JSONResponse(asdict(state.faults))
        if action == "refund":
            target = state.shop.orders[order["order_id"]]
            sales = state.shop.after_sales.setdefault(target["orderId"], [])
            now = state.now_ms()
            sales.append(AfterSale(returns_id=f"R{now}{len(sales)}", order_id=target["orderId"],
                                   user_id=target["userId"], refund_yuan=str(order["yuan"]), applied_ms=now,
                                   updated_ms=now))
            target.update(orderAfterSalesStatus=3, updateTime=now)
            return JSONResponse({"order": target["orderId"], "after_sales": len(sales)})
        if action == "push":
            pushed = push_request(order["path"], order["messages"], secret=order.get("secret", APP_SECRET))
            async with httpx.AsyncClient(timeout=5.0) as client:
                answer = await client.post(order["url"], content=pushed.body, headers=dict(pushed.headers))
            return JSONResponse({"status": answer.status_code, "body": answer.text})
        if action == "stats":
            return JSONResponse({**state.stats, "decrypt_calls_by_day": state.decrypt_calls})
        if action == "orders":
            return JSONResponse(state.shop.orders)
        if action == "requests":
            return JSONResponse(state.requests)
        return JSONResponse({"error": "unknown admin action"}, status_code=404)

    app = Starlette(routes=[Route(GATEWAY_PATH, gateway, methods=["POST"]),
                            Route("/_admin/{action}", admin, methods=["GET", "POST"])])
    app.state.xiaohongshu = state
    return app


def push_request(path: str, messages: list[dict[str, Any]], *, secret: str = APP_SECRET,
                 query: dict[str, str] | None = None) -> Any:
    """A push as the platform sends it: a JSON array of ``{msgTag, sellerId, data}`` with ``data`` a
    JSON string, and the ``app-key``, ``timestamp`` and ``sign`` headers over ``path`` and ``query``."""
    from hub import WebhookRequest

    body = json.dumps([{**m, "data": json.dumps(m["data"], ensure_ascii=False)} for m in messages],
                      ensure_ascii=False).encode()
    stamp = str(int(time.time()))
    headers = {"content-type": "application/json", "app-key": APP_ID, "timestamp": stamp,
               "sign": push_sign(path, query or {}, APP_ID, stamp, secret)}
    return WebhookRequest(method="POST", path=path, query=dict(query or {}), headers=headers, body=body)


def account_settings(base_url: str, account_id: str = "shop", seed: int = 0) -> dict[str, Any]:
    """The ``[[accounts]]`` entry that points the hub at a sandbox listening on ``base_url``."""
    from plugins.xiaohongshu.sandbox_data import seller_id

    return {"platform": "xiaohongshu", "id": account_id, "base_url": base_url, "app_id": APP_ID,
            "app_secret": APP_SECRET, "access_token": f"token-sandbox-{seed}", "refresh_token": f"refresh-sandbox-{seed}",
            "seller_id": seller_id(seed), "lookback_days": 2, "settle_seconds": 0,
            "extra_error_codes": {str(SANDBOX_CODES["token_invalid"]): "token_expired"},
            "rate_limits": {"*": [1000, 1]}}


_pushes = itertools.count(1)


def make_sandbox(seed: int, fans: int, base_url: str, *, people: hub.Population | None = None) -> Any:
    """The ``siyu sandbox xiaohongshu`` factory: ``fans`` buyers, or the buyers among shared ``people``
    (then the account reads receivers' phones: ``phone_decrypt_calls_per_day``)."""
    from hub import SandboxSpec
    from plugins.xiaohongshu.sandbox_data import order_id, seller_id

    account = account_settings(base_url, seed=seed)

    def sample() -> Any:
        n = next(_pushes)
        data = {"orderId": order_id(seed, 1), "orderStatus": 4, "updateTime": 1_700_000_000_000 + n}
        return push_request(f"/webhooks/xiaohongshu/{account['id']}",
                            [{"msgTag": "msg_fulfillment_status_change", "sellerId": seller_id(seed), "data": data}])

    if people is not None:  # the shop lets the hub read receivers' phones (the sandbox's daily quota)
        account = {**account, "phone_decrypt_calls_per_day": 10}
    return SandboxSpec(app=make_app(fans, seed=seed, people=people), account=account, sample_webhook=sample)
