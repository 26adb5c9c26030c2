"""The Kuaishou sandbox: an ASGI app speaking the parts of 快手电商开放平台 the hub uses.

Written from the platform's documentation, independently of the adapter (it shares only the push
cipher of :mod:`plugins.kuaishou.wire`), so that the two cannot share one mistake.

Protocol
    ``POST /oauth2/refresh_token`` (form ``grant_type=refresh_token``, ``refresh_token``, ``app_id``,
    ``app_secret``) → ``{"result":1, access_token, expires_in, refresh_token,
    refresh_token_expires_in, …}``: a new access token (48 h) and a new refresh token that keeps the
    old one's expiry; the old refresh token dies 5 minutes later.  An unknown, dead or expired
    refresh token answers ``{"result":100200102,"error":"access_denied"}``.
    ``GET|POST /open/order/cursor/list`` (form or query: ``appkey, method, version, param,
    access_token, timestamp, signMethod, sign``): the signature is checked by the documented rule
    for both ``MD5`` and ``HMAC_SHA256`` (``验签失败`` otherwise); an expired access token answers
    ``TOKEN过期``; ``param`` must name ``orderViewStatus``, ``pageSize`` ≤ 50, ``beginTime`` within
    the last 90 days, ``endTime`` at most 7 days later and ``cursor`` (``""`` first); orders
    updated in ``[beginTime, endTime]`` come sorted by update time, ``cursor`` is ``"nomore"`` on
    the last page.  More than ``qps`` calls in a second answer
    ``Exceed qps limit, KEY [apiId:…;appkey:…], MAX_QPS [300.0]``.
    ``POST /open/security/instant/decrypt/batch`` → ``data``: ``[{encryptedData, decryptedData,
    errorCode}]`` for ≤ 100 ciphertexts.

Admin (not Kuaishou): ``POST /_admin/clock`` (``{"advance": seconds}``), ``/_admin/faults``
(``{"qps": n}``), ``/_admin/refund`` and ``/_admin/order`` (change the shop), ``/_admin/push``
(encrypt an event and POST it to a URL, answering what the URL said and how long it took);
``GET /_admin/stats``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import hub
from plugins.kuaishou.sandbox_data import DAY_MS, Shop, buyer_id, generate
from plugins.kuaishou.wire import encrypt_push

__all__ = ["APP_KEY", "MESSAGE_KEY", "SIGN_SECRET", "State", "account_settings", "make_app", "make_sandbox",
           "push_body", "sample_push"]

APP_KEY = "ks699000000000000001"
APP_SECRET = "sandbox-app-secret-0123456789"
SIGN_SECRET = "sandbox-sign-secret-0123456789"
MESSAGE_KEY = base64.b64encode(hashlib.sha256(b"kuaishou-sandbox-message-key").digest()).decode()
ACCESS_TTL = 172_800
REFRESH_TTL = 180 * 86_400
OLD_REFRESH_GRACE = 300
SELLER_ID = 1_000_000_001
MAX_PAGE = 50
MAX_WINDOW_MS = 7 * DAY_MS
MAX_AGE_MS = 90 * DAY_MS


@dataclass
class Grant:
    expires: float
    dies: float | None = None
    """When a rotated-away refresh token stops working."""


@dataclass
class State:
    """What one sandbox knows: the shop, the tokens, its clock, its faults and counters."""

    shop: Shop
    seed: int
    qps: int = 0
    offset: float = 0.0
    access: dict[str, float] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    recent: list[float] = field(default_factory=list)

    def now(self) -> float:
        return time.time() + self.offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1


def _state(request: Request) -> State:
    return request.app.state.kuaishou  # type: ignore[no-any-return]


def _fail(result: int, message: str) -> JSONResponse:
    return JSONResponse({"result": result, "error_msg": message, "requestId": secrets.token_hex(8)})


def _ok(data: Any) -> JSONResponse:
    return JSONResponse({"result": 1, "error_msg": "", "data": data, "requestId": secrets.token_hex(8)})


async def _params(request: Request) -> dict[str, str]:
    params = dict(request.query_params)
    if request.method == "POST":
        params.update(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    return params


# -- OAuth ---------------------------------------------------------------------------------------

async def refresh_token(request: Request) -> Response:
    state = _state(request)
    form = dict(parse_qsl((await request.body()).decode("utf-8")))
    state.count("refresh_requests")
    if form.get("app_id") != APP_KEY or form.get("app_secret") != APP_SECRET:
        return JSONResponse({"result": 100200101, "error": "unauthorized_client"})
    if form.get("grant_type") != "refresh_token":
        return JSONResponse({"result": 100200104, "error": "unsupported_grant_type"})
    old = form.get("refresh_token", "")
    grant = state.grants.get(old)
    now = state.now()
    if grant is None or grant.expires <= now or (grant.dies is not None and grant.dies <= now):
        state.count("refresh_refused")
        return JSONResponse({"result": 100200102, "error": "access_denied",
                             "error_msg": "refreshToken.discarded"})
    if grant.dies is None:
        grant.dies = now + OLD_REFRESH_GRACE
    access, refresh = f"ks-at-{secrets.token_hex(10)}", f"ks-rt-{secrets.token_hex(10)}"
    state.access[access] = now + ACCESS_TTL
    state.grants[refresh] = Grant(grant.expires)  # the new refresh token inherits the old expiry
    return JSONResponse({"result": 1, "access_token": access, "expires_in": ACCESS_TTL, "refresh_token": refresh,
                         "refresh_token_expires_in": int(grant.expires - now), "open_id": f"seller-{state.seed}",
                         "scopes": ["merchant_order", "merchant_user"]})


# -- signed API calls ----------------------------------------------------------------------------

def _expected_sign(params: dict[str, str]) -> str | None:
    text = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign") + f"&signSecret={SIGN_SECRET}"
    method = params.get("signMethod", "MD5")
    if method == "MD5":
        return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - the platform's algorithm
    if method == "HMAC_SHA256":
        return base64.b64encode(hmac.new(SIGN_SECRET.encode(), text.encode(), hashlib.sha256).digest()).decode()
    return None


def _refusal(state: State, params: dict[str, str], method: str) -> Response | None:
    """The answer to a call that fails the gateway's checks, if it does."""
    if params.get("method") != method or params.get("appkey") != APP_KEY or params.get("version") != "1":
        return _fail(400, "参数错误")
    if not params.get("timestamp", "").isdigit():
        return _fail(400, "timestamp 参数错误")
    expected = _expected_sign(params)
    if expected is None or not hmac.compare_digest(params.get("sign", ""), expected):
        state.count("bad_signatures")
        return _fail(40003, "验签失败")
    expiry = state.access.get(params.get("access_token", ""))
    if expiry is None or expiry <= state.now():
        state.count("token_expired")
        return _fail(40004, "TOKEN过期")
    if state.qps:
        now = time.monotonic()
        state.recent = [t for t in state.recent if now - t < 1.0]
        if len(state.recent) >= state.qps:
            state.count("qps_limited")
            return _fail(40005, f"Exceed qps limit, KEY [apiId:1001;appkey:{APP_KEY}], MAX_QPS [{state.qps}.0]")
        state.recent.append(now)
    return None


def _window(state: State, param: dict[str, Any]) -> tuple[int, int, int, str] | str:
    try:
        size, begin, end = int(param["pageSize"]), int(param["beginTime"]), int(param["endTime"])
        cursor, view = str(param["cursor"]), int(param["orderViewStatus"])
    except (KeyError, TypeError, ValueError):
        return "参数错误: orderViewStatus, pageSize, beginTime, endTime and cursor are required"
    if not 1 <= size <= MAX_PAGE or not 0 <= view <= 7:
        return "参数错误: pageSize"
    if not begin < end or end - begin > MAX_WINDOW_MS or begin < state.now_ms() - MAX_AGE_MS:
        return "参数错误: 时间范围"
    return size, begin, end, cursor


async def order_list(request: Request) -> Response:
    state = _state(request)
    state.count("order_requests")
    params = await _params(request)
    refused = _refusal(state, params, "open.order.cursor.list")
    if refused is not None:
        return refused
    try:
        param = json.loads(params.get("param") or "{}")
    except ValueError:
        return _fail(400, "param 不是 JSON")
    window = _window(state, param)
    if isinstance(window, str):
        return _fail(400, window)
    size, begin, end, cursor = window
    by_update = param.get("queryType", 1) == 2
    key = "updateTime" if by_update else "createTime"
    found = sorted((o for o in state.shop.orders.values() if begin <= o["orderBaseInfo"][key] <= end),
                   key=lambda o: (o["orderBaseInfo"][key], o["orderBaseInfo"]["oid"]),
                   reverse=param.get("sort", 1) != 2)
    try:
        start = int(cursor[1:]) if cursor else 0
    except ValueError:
        return _fail(400, "cursor 参数错误")
    page = found[start:start + size]
    following = start + len(page)
    state.count("order_pages")
    return _ok({"pageSize": size, "beginTime": begin, "endTime": end, "orderList": page,
                "cursor": f"c{following}" if following < len(found) else "nomore"})


async def decrypt_batch(request: Request) -> Response:
    state = _state(request)
    params = await _params(request)
    refused = _refusal(state, params, "open.security.instant.decrypt.batch")
    if refused is not None:
        return refused
    items = json.loads(params.get("param") or "{}").get("decryptDataList") or []
    if not isinstance(items, list) or len(items) > 100:
        return _fail(400, "decryptDataList 参数错误")
    state.count("decrypt_requests")
    out = []
    for item in items:
        cipher = str(item.get("encryptedData", ""))
        phone = state.shop.phones.get(cipher)
        out.append({"encryptedData": cipher, "decryptedData": phone or "", "errorCode": 0 if phone else 1,
                    "errorMsg": "" if phone else "解密失败"})
    return _ok(out)


# -- admin ---------------------------------------------------------------------------------------

async def admin_clock(request: Request) -> Response:
    state = _state(request)
    state.offset += float(json.loads(await request.body()).get("advance", 0))
    return JSONResponse({"offset": state.offset})


async def admin_faults(request: Request) -> Response:
    state = _state(request)
    state.qps = int(json.loads(await request.body()).get("qps", 0))
    return JSONResponse({"qps": state.qps})


async def admin_refund(request: Request) -> Response:
    """``{"oid": …}``: the order's refund succeeds now (退款成功)."""
    state = _state(request)
    order = state.shop.orders.get(int(json.loads(await request.body())["oid"]))
    if order is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    base = order["orderBaseInfo"]
    base["updateTime"] = base["refundTime"] = state.now_ms()
    order["orderRefundList"] = [{"refundId": base["oid"] * 10 + 2, "refundStatus": 60}]
    return JSONResponse(order)


async def admin_order(request: Request) -> Response:
    """``{"buyer": n, "totalFee": fen, "status": 30}``: a new order of buyer ``n``, placed now."""
    state, body = _state(request), json.loads(await request.body())
    now = state.now_ms()
    oid = state.shop.next_oid = state.shop.next_oid + 1
    status = int(body.get("status", 30))
    order = {"orderBaseInfo": {"oid": oid, "buyerOpenId": buyer_id(state.seed, int(body["buyer"])),
                               "buyerNick": f"快手买家{body['buyer']}", "status": status, "createTime": now - 60_000,
                               "payTime": now if status >= 30 else 0, "updateTime": now, "refundTime": 0,
                               "totalFee": int(body["totalFee"]), "expressFee": int(body.get("expressFee", 0))},
             "orderItemInfo": {"num": 1}, "orderRefundList": [], "orderAddress": {}}
    state.shop.orders[oid] = order
    return JSONResponse(order)


async def admin_push(request: Request) -> Response:
    """``{"url", "event", "info", "eventId"?, "key"?, "test"?}``: encrypt and POST a push."""
    order = json.loads(await request.body())
    if order.get("test"):
        body = b'{"test":true}'
    else:
        body = push_body(order["event"], order.get("info") or {}, event_id=order.get("eventId"),
                         key=order.get("key", MESSAGE_KEY))
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=3.0) as client:
        answer = await client.post(order["url"], content=body,
                                   headers={"Content-Type": "text/plain;charset=utf-8"})
    _state(request).count("pushes")
    return JSONResponse({"status": answer.status_code, "body": answer.text,
                         "ms": round((time.monotonic() - started) * 1000, 1)})


async def admin_stats(request: Request) -> Response:
    return JSONResponse(_state(request).stats)


ROUTES = [
    Route("/oauth2/refresh_token", refresh_token, methods=["POST"]),
    Route("/open/order/cursor/list", order_list, methods=["GET", "POST"]),
    Route("/open/security/instant/decrypt/batch", decrypt_batch, methods=["POST"]),
    Route("/_admin/clock", admin_clock, methods=["POST"]),
    Route("/_admin/faults", admin_faults, methods=["POST"]),
    Route("/_admin/refund", admin_refund, methods=["POST"]),
    Route("/_admin/order", admin_order, methods=["POST"]),
    Route("/_admin/push", admin_push, methods=["POST"]),
    Route("/_admin/stats", admin_stats),
]


def make_app(buyers: int = 300, *, seed: int = 0, qps: int = 0, refresh_ttl: float = REFRESH_TTL,
             people: hub.Population | None = None) -> Starlette:
    """The sandbox app, with the authorisation :func:`account_settings` hands the hub already issued.

    :param buyers: how many buyers the shop has (one to three orders each).
    :param people: shared people: the buyers are those of them who bought in the Kuaishou shop
        (``buyers`` is then ignored).
    :param seed: makes the shop and the pre-issued tokens (``ks-at-sandbox-<seed>``).
    :param qps: calls per second allowed (0: unlimited).
    :param refresh_ttl: life of the pre-issued refresh token, seconds (Kuaishou: about 180 days).
    """
    today = int(time.time() * 1000) // DAY_MS * DAY_MS  # the same shop all day: a re-run changes nothing
    state = State(shop=generate(seed, buyers, today, people), seed=seed, qps=qps)
    state.access[f"ks-at-sandbox-{seed}"] = state.now() + ACCESS_TTL
    state.grants[f"ks-rt-sandbox-{seed}"] = Grant(state.now() + refresh_ttl)
    app = Starlette(routes=ROUTES)
    app.state.kuaishou = state
    return app


# -- pushes and the hub's account ----------------------------------------------------------------

_event_ids = itertools.count(1)


def push_body(event: str, info: dict[str, Any], *, event_id: str | None = None, key: str = MESSAGE_KEY,
              app_key: str = APP_KEY) -> bytes:
    """A push as Kuaishou sends it: the message (``info`` as a JSON string) encrypted, Base64."""
    now = int(time.time() * 1000)
    message = {"eventId": event_id or f"ev-{next(_event_ids)}-{secrets.token_hex(6)}", "bizId": info.get("oid", 0),
               "userId": SELLER_ID, "openId": f"seller-open-{SELLER_ID}", "appKey": app_key, "event": event,
               "info": json.dumps(info, ensure_ascii=False), "createTime": now, "test": False}
    return encrypt_push(json.dumps(message, ensure_ascii=False).encode("utf-8"), key)


def sample_push(seed: int = 0, buyer: int = 1) -> hub.WebhookRequest:
    """An encrypted ``kwaishop_order_paySuccess`` push with a fresh ``eventId``."""
    info = {"oid": 2_100_000_000_001 + seed * 10_000_000, "sellerId": SELLER_ID, "status": 30,
            "buyerOpenId": buyer_id(seed, buyer), "updateTime": int(time.time() * 1000)}
    return hub.WebhookRequest(method="POST", path="/", query={},
                              headers={"content-type": "text/plain;charset=utf-8"},
                              body=push_body("kwaishop_order_paySuccess", info))


def account_settings(base_url: str, account_id: str = "shop", seed: int = 0) -> dict[str, Any]:
    """The ``[[accounts]]`` entry that points the hub at a sandbox listening on ``base_url``."""
    return {"platform": "kuaishou", "id": account_id, "base_url": base_url, "app_key": APP_KEY,
            "app_secret": APP_SECRET, "sign_secret": SIGN_SECRET, "message_key": MESSAGE_KEY,
            "access_token": f"ks-at-sandbox-{seed}", "refresh_token": f"ks-rt-sandbox-{seed}"}


def make_sandbox(seed: int, fans: int, base_url: str, *, people: hub.Population | None = None) -> hub.SandboxSpec:
    """The ``siyu sandbox kuaishou`` factory: ``fans`` buyers, or the buyers among shared ``people``
    (then the shop lets the hub decrypt receivers' phones: ``decrypt_phones`` in the account)."""
    account = account_settings(base_url, seed=seed)
    if people is None:
        return hub.SandboxSpec(app=make_app(fans, seed=seed), account=account, sample_webhook=lambda: sample_push(seed))
    first = next((p.index + 1 for p in people if p.kuaishou_orders), 1)
    return hub.SandboxSpec(app=make_app(fans, seed=seed, people=people), account={**account, "decrypt_phones": True},
                           sample_webhook=lambda: sample_push(seed, first))
