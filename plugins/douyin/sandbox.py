"""The Douyin sandbox: an ASGI app speaking the parts of 抖音开放平台 the hub uses.

It is written from the platform's documentation, independently of the adapter, so that the two
cannot share one mistake (tests also pin the adapter to the documented facts); it shares with the
plugin only the signature primitive (:func:`plugins.douyin.wire.sign_body`).

Protocol
    ``POST /oauth/refresh_token/`` (form) → a new ``act.`` token and the grant's
    ``refresh_expires_in``; the refresh token's expiry stays.
    ``POST /oauth/renew_refresh_token/`` (form) → a new ``rft.`` token for ``refresh_ttl``; the old
    one dies; the sixth renewal of a grant answers 10020.  An unknown or expired refresh token
    answers 10010.  ``POST /oauth/client_token/`` (JSON) → a ``clt.`` token; the two newest live.
    ``GET /fans/list/?open_id&cursor&count`` (``access-token`` header) pages through the population
    but never past the 5,000th fan, with ``has_more`` and the next ``cursor``.
    ``POST /im/send/msg/?open_id`` records a private message.
    ``POST /goodlife/v1/member/user/update/`` (``clt.`` token) records ≤ 5 member updates.
    Answers are ``{"data": {…, "error_code", "description"}, "extra": {…}}``, with codes and
    lifetimes sent as strings (as Douyin sometimes does).  An expired user token answers 28001008,
    an unknown one 2190002, a burst over ``limit_per_second`` 28003018, a fault 28001005.

Faults on demand (:class:`Faults`, ``POST /_admin/faults``): ``limit_per_second``, ``busy`` (a
share of calls), ``refuse_messages``, and ``refuse_renewal``: ``"scope"`` answers a renewal with
10004 权限不足 (an app without the ``renew_refresh_token`` scope), ``"404"`` with HTTP 404 (an
endpoint that is not there).

Admin (not Douyin): ``POST /_admin/faults``, ``POST /_admin/clock`` (``{"advance": seconds}``),
``GET /_admin/stats``, ``/_admin/members``, ``/_admin/messages``, ``/_admin/grants``, and
``POST /_admin/deliver`` / ``/_admin/verify`` which sign a callback (or a ``verify_webhook``
challenge) and POST it to a URL, answering what that URL said.  With shared people,
``POST /_admin/joins`` (``{"url": …}``) delivers the ``life_member_join`` of every follower who
joined the 来客 membership (``douyin_member``) and not delivered yet, answering how many and the
statuses the URL answered.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import hub
from plugins.douyin.sandbox_data import (
    CLIENT_KEY,
    CLIENT_SECRET,
    LIFE_ACCOUNT_ID,
    OPEN_ID,
    event_body,
    fan,
    member_join,
    person_fan,
    sample_message,
    signed_headers,
)

__all__ = [
    "CLIENT_KEY",
    "CLIENT_SECRET",
    "LIFE_ACCOUNT_ID",
    "OPEN_ID",
    "Faults",
    "account_settings",
    "event_body",
    "make_app",
    "make_sandbox",
    "sample_message",
    "signed_headers",
]

LIST_CAP = 5000
DAY = 86400.0
RENEWALS = 5
REFUSALS = ("", "scope", "404")


@dataclass
class Faults:
    """Faults on demand; ``POST /_admin/faults`` replaces them all."""

    limit_per_second: int = 0
    busy: float = 0.0
    refuse_messages: bool = False
    refuse_renewal: str = ""
    """``""``: renew; ``"scope"``: answer 10004 (no ``renew_refresh_token`` scope); ``"404"``: HTTP 404."""

    def __post_init__(self) -> None:
        if self.refuse_renewal not in REFUSALS:
            raise ValueError(f"refuse_renewal is one of {', '.join(map(repr, REFUSALS))}")


@dataclass
class Grant:
    expires: float
    renewals: int = 0


@dataclass
class State:
    """Everything one sandbox knows: tokens, grants, what it received, its clock and faults."""

    fans: int
    seed: int
    faults: Faults
    access_ttl: float
    refresh_ttl: float
    offset: float = 0.0
    access: dict[str, float] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    clients: list[tuple[str, float]] = field(default_factory=list)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    member_updates: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    recent: list[float] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    followers: list[dict[str, Any]] | None = None
    """The fans drawn from shared people (``None``: the sandbox's own ``fans`` fans)."""
    joins: list[dict[str, Any]] = field(default_factory=list)
    """The ``life_member_join`` contents of shared people who joined the 来客 membership, not yet delivered."""

    def fan(self, i: int) -> dict[str, Any]:
        """The ``i``-th fan of the list."""
        return fan(self.seed, i) if self.followers is None else self.followers[i]

    def now(self) -> float:
        return time.time() + self.offset

    def count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def throttled(self) -> Response | None:
        """The frequency-limit or busy answer due now, if any."""
        if self.faults.limit_per_second:
            now = time.monotonic()
            self.recent = [t for t in self.recent if now - t < 1.0]
            if len(self.recent) >= self.faults.limit_per_second:
                self.count("rate_limited")
                return _failure(28003018, "请求频率过高")
            self.recent.append(now)
        if self.faults.busy and self.rng.random() < self.faults.busy:
            self.count("busy")
            return _failure(28001005, "系统繁忙,此时请开发者稍候再试")
        return None

    def user_token(self, request: Request) -> Response | None:
        """The refusal of a user-token call (unknown, expired, another open_id, throttled), if any."""
        expiry = self.access.get(request.headers.get("access-token", ""))
        if expiry is None:
            self.count("token_unknown")
            return _failure(2190002, "access_token无效")
        if expiry <= self.now():
            self.count("token_expired")
            return _failure(28001008, "access_token过期,请刷新或重新授权")
        if request.query_params.get("open_id") != OPEN_ID:
            return _failure(28001015, "请求参数 access_token 和 openId不匹配")
        return self.throttled()

    def client_token(self, request: Request) -> bool:
        token = request.headers.get("access-token", "")
        return any(t == token and expiry > self.now() for t, expiry in self.clients)


# -- envelopes ---------------------------------------------------------------------------------

def _failure(code: int, description: str) -> JSONResponse:
    return JSONResponse({"data": {"error_code": code, "description": description},
                         "extra": {"error_code": str(code), "description": description, "sub_error_code": "0",
                                   "sub_description": "", "logid": secrets.token_hex(8)}})


def _oauth(data: dict[str, Any], code: int = 0, description: str = "") -> JSONResponse:
    return JSONResponse({"data": {**data, "error_code": code, "description": description},
                         "message": "success" if code == 0 else "error"})


def _ok(data: dict[str, Any], **top: Any) -> JSONResponse:
    return JSONResponse({"data": {**data, "error_code": "0", "description": ""},
                         "extra": {"error_code": "0", "description": "", "sub_error_code": 0, "sub_description": "",
                                   "logid": secrets.token_hex(8), "now": int(time.time() * 1000)}, **top})


async def _form(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}


def _state(request: Request) -> State:
    return request.app.state.douyin  # type: ignore[no-any-return]


# -- OAuth -------------------------------------------------------------------------------------

async def refresh_token(request: Request) -> Response:
    state, form = _state(request), await _form(request)
    state.count("refresh_requests")
    if form.get("client_key") != CLIENT_KEY or form.get("grant_type") != "refresh_token":
        return _oauth({}, 10002, "参数错误")
    grant = state.grants.get(form.get("refresh_token", ""))
    if grant is None or grant.expires <= state.now():
        return _oauth({}, 10010, "refresh_token过期")
    token = f"act.{secrets.token_hex(12)}"
    state.access[token] = state.now() + state.access_ttl
    return _oauth({"access_token": token, "expires_in": str(int(state.access_ttl)), "open_id": OPEN_ID,
                   "refresh_expires_in": str(int(grant.expires - state.now())),
                   "refresh_token": form["refresh_token"], "scope": "fans.list,im.direct_message"})


async def renew_refresh_token(request: Request) -> Response:
    state, form = _state(request), await _form(request)
    state.count("renew_requests")
    if state.faults.refuse_renewal == "404":
        return PlainTextResponse("404 page not found", status_code=404)
    if form.get("client_key") != CLIENT_KEY:
        return _oauth({}, 10003, "client_key不存在")
    if state.faults.refuse_renewal == "scope":
        return _oauth({}, 10004, "权限不足")
    old = form.get("refresh_token", "")
    grant = state.grants.get(old)
    if grant is None or grant.expires <= state.now():
        return _oauth({}, 10010, "refresh_token过期")
    if grant.renewals >= RENEWALS:
        return _oauth({}, 10020, "超过刷新次数限制")
    del state.grants[old]
    new = f"rft.{secrets.token_hex(12)}"
    state.grants[new] = Grant(state.now() + state.refresh_ttl, grant.renewals + 1)
    return _oauth({"refresh_token": new, "expires_in": str(int(state.refresh_ttl))})


async def client_token(request: Request) -> Response:
    state, body = _state(request), json.loads(await request.body() or b"{}")
    state.count("client_token_requests")
    if body.get("client_key") != CLIENT_KEY or body.get("client_secret") != CLIENT_SECRET:
        return _oauth({}, 10013, "client_key或client_secret错误")
    if body.get("grant_type") != "client_credential":
        return _oauth({}, 10002, "参数错误")
    token = f"clt.{secrets.token_hex(12)}"
    state.clients = [*state.clients[-1:], (token, state.now() + 7200)]
    return _oauth({"access_token": token, "expires_in": 7200})


# -- OpenAPI -----------------------------------------------------------------------------------

async def fans_list(request: Request) -> Response:
    state = _state(request)
    state.count("fans_requests")
    denied = state.user_token(request)
    if denied is not None:
        return denied
    try:
        cursor = int(request.query_params.get("cursor") or 0)
        count = int(request.query_params["count"])
    except (KeyError, ValueError):
        return _failure(28001007, "参数不合法")
    if cursor < 0 or count < 1:
        return _failure(28001007, "参数不合法")
    visible = min(state.fans, LIST_CAP)
    end = min(visible, cursor + count)
    state.count("fans_pages")
    return _ok({"list": [state.fan(i) for i in range(cursor, end)], "total": state.fans,
                "cursor": end, "has_more": end < visible})


async def send_message(request: Request) -> Response:
    state = _state(request)
    state.count("message_requests")
    denied = state.user_token(request)
    if denied is not None:
        return denied
    body = json.loads(await request.body())
    content = body.get("content") or {}
    scene = body.get("scene") or "im_reply_msg"
    if (state.faults.refuse_messages or not body.get("to_user_id") or not body.get("conversation_id")
            or content.get("msg_type") not in (1, 2, 3, 8, 9, 10, 11, 12)
            or (scene == "im_reply_msg" and not body.get("msg_id"))):
        return _failure(28001007, "参数不合法")
    msg_id = f"sent-{len(state.messages) + 1}"
    state.messages.append({**body, "open_id": request.query_params["open_id"], "server_msg_id": msg_id})
    return _ok({}, msg_id=msg_id)


def _valid_member(m: Any) -> bool:
    return (isinstance(m, dict) and bool(m.get("open_id")) and isinstance(m.get("points_amount_cent"), int)
            and isinstance(m.get("update_time"), int) and 1 <= int(m.get("user_level", 0)) <= 10)


async def member_update(request: Request) -> Response:
    state = _state(request)
    state.count("member_requests")
    if not state.client_token(request):
        return _failure(28001008, "access_token过期,请刷新或重新授权")
    denied = state.throttled()
    if denied is not None:
        return denied
    body = json.loads(await request.body())
    members = body.get("members")
    if (body.get("account_id") != LIFE_ACCOUNT_ID or not isinstance(members, list) or not 1 <= len(members) <= 5
            or not all(_valid_member(m) for m in members)):
        return _failure(28001007, "参数不合法")
    for m in members:
        state.members[m["open_id"]] = {"points_amount_cent": m["points_amount_cent"], "user_level": m["user_level"]}
        state.member_updates.append(m)
    return _ok({})


# -- admin -------------------------------------------------------------------------------------

async def admin_faults(request: Request) -> Response:
    state = _state(request)
    try:
        state.faults = Faults(**json.loads(await request.body()))
    except (TypeError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(asdict(state.faults))


async def admin_clock(request: Request) -> Response:
    state = _state(request)
    state.offset += float(json.loads(await request.body()).get("advance", 0))
    return JSONResponse({"offset": state.offset})


async def admin_deliver(request: Request) -> Response:
    state, order = _state(request), json.loads(await request.body())
    body = event_body(order["event"], order.get("content") or {}, from_user_id=order.get("from_user_id", ""),
                      to_user_id=order.get("to_user_id", OPEN_ID))
    headers = signed_headers(body, msg_id=order.get("msg_id") or secrets.token_hex(16))
    async with httpx.AsyncClient(timeout=5.0) as client:
        answer = await client.post(order["url"], content=body, headers=headers)
    state.count("deliveries")
    return JSONResponse({"status": answer.status_code, "body": answer.text, "msg_id": headers["Msg-Id"]})


async def admin_joins(request: Request) -> Response:
    state, order = _state(request), json.loads(await request.body())
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=10.0) as client:
        while state.joins:
            content = state.joins[0]
            body = event_body("life_member_join", content, from_user_id=content["open_id"])
            answer = await client.post(order["url"], content=body, headers=signed_headers(body, msg_id=secrets.token_hex(16)))
            statuses[str(answer.status_code)] = statuses.get(str(answer.status_code), 0) + 1
            if answer.status_code != 200:
                break  # kept for the next call
            state.joins.pop(0)
            state.count("deliveries")
    return JSONResponse({"delivered": statuses.get("200", 0), "left": len(state.joins), "statuses": statuses})


async def admin_verify(request: Request) -> Response:
    state, order = _state(request), json.loads(await request.body())
    challenge = int(order.get("challenge", state.rng.randrange(10**5, 10**6)))
    body = json.dumps({"event": "verify_webhook", "client_key": "", "content": {"challenge": challenge}}).encode()
    async with httpx.AsyncClient(timeout=5.0) as client:
        answer = await client.post(order["url"], content=body, headers=signed_headers(body, msg_id=None))
    try:
        echoed = answer.json() == {"challenge": challenge}
    except ValueError:
        echoed = False
    return JSONResponse({"ok": answer.status_code == 200 and echoed, "status": answer.status_code})


async def admin_stats(request: Request) -> Response:
    return JSONResponse(_state(request).stats)


async def admin_members(request: Request) -> Response:
    state = _state(request)
    return JSONResponse({"members": state.members, "updates": state.member_updates})


async def admin_messages(request: Request) -> Response:
    return JSONResponse(_state(request).messages)


async def admin_grants(request: Request) -> Response:
    return JSONResponse({t[:8]: asdict(g) for t, g in _state(request).grants.items()})


ROUTES = [
    Route("/oauth/refresh_token/", refresh_token, methods=["POST"]),
    Route("/oauth/renew_refresh_token/", renew_refresh_token, methods=["POST"]),
    Route("/oauth/client_token/", client_token, methods=["POST"]),
    Route("/fans/list/", fans_list),
    Route("/im/send/msg/", send_message, methods=["POST"]),
    Route("/goodlife/v1/member/user/update/", member_update, methods=["POST"]),
    Route("/_admin/faults", admin_faults, methods=["POST"]),
    Route("/_admin/clock", admin_clock, methods=["POST"]),
    Route("/_admin/deliver", admin_deliver, methods=["POST"]),
    Route("/_admin/verify", admin_verify, methods=["POST"]),
    Route("/_admin/joins", admin_joins, methods=["POST"]),
    Route("/_admin/stats", admin_stats),
    Route("/_admin/members", admin_members),
    Route("/_admin/messages", admin_messages),
    Route("/_admin/grants", admin_grants),
]


def make_app(fans: int = 1000, *, seed: int = 0, faults: Faults | None = None, access_ttl: float = 15 * DAY,
             refresh_ttl: float = 30 * DAY, refresh_left: float | None = None,
             people: hub.Population | None = None) -> Starlette:
    """The sandbox app, with the tokens :func:`account_settings` hands the hub already issued.

    :param fans: how many fans the account has (the list shows at most 5,000).
    :param people: shared people: the fans are those of them who follow the 企业号 (``fans`` is
        then ignored).
    :param seed: makes the population and the pre-issued tokens (``act.sandbox-<seed>``).
    :param faults: faults from the start (:class:`Faults`).
    :param access_ttl: lifetime of an access token, seconds (Douyin: 15 days).
    :param refresh_ttl: lifetime of a renewed refresh token (Douyin: 30 days).
    :param refresh_left: what is left of the pre-issued refresh token's life (default: ``refresh_ttl``),
        e.g. less than the hub's renewal window.
    """
    followers = None if people is None else [person_fan(seed, p) for p in people if p.douyin_follower]
    state = State(fans if followers is None else len(followers), seed, faults or Faults(), access_ttl, refresh_ttl,
                  rng=random.Random(seed), followers=followers,
                  joins=[member_join(seed, p) for p in people or () if p.douyin_member])
    state.access[f"act.sandbox-{seed}"] = state.now() + access_ttl
    state.grants[f"rft.sandbox-{seed}"] = Grant(state.now() + (refresh_ttl if refresh_left is None else refresh_left))
    app = Starlette(routes=ROUTES)
    app.state.douyin = state
    return app


# -- the hub's account -------------------------------------------------------------------------

def account_settings(base_url: str, account_id: str = "ent", seed: int = 0) -> dict[str, Any]:
    """The ``[[accounts]]`` entry that points the hub at a sandbox listening on ``base_url``."""
    return {"platform": "douyin", "id": account_id, "base_url": base_url, "client_key": CLIENT_KEY,
            "client_secret": CLIENT_SECRET, "open_id": OPEN_ID, "access_token": f"act.sandbox-{seed}",
            "refresh_token": f"rft.sandbox-{seed}", "life_account_id": LIFE_ACCOUNT_ID}


def make_sandbox(seed: int, fans: int, base_url: str, *, people: hub.Population | None = None) -> hub.SandboxSpec:
    """The ``siyu sandbox douyin`` factory; with shared ``people``, the fans are those of them who
    follow the 企业号."""
    app = make_app(fans, seed=seed, people=people)
    state: State = app.state.douyin
    first = state.followers[0]["open_id"] if state.followers else f"fan-{seed}-000001"
    return hub.SandboxSpec(app=app, account=account_settings(base_url, seed=seed),
                           sample_webhook=lambda: sample_message(first))
