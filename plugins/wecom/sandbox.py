"""The WeCom sandbox: an ASGI app speaking the platform's protocol, written from its docs.

Protocol (``shared/platforms/wecom-douyin.md`` part A)
    ``GET /cgi-bin/gettoken?corpid=&corpsecret=`` → ``access_token``, ``expires_in``; a repeat call
    inside the validity returns the same token.  Every other call needs ``?access_token=``:
    missing 41001, unknown 40014, expired 42001.  Wrong corp id 40013, wrong secret 40001.
    ``get_follow_user_list``, ``batch/get_by_user`` (``userid_list`` ≤ 100, ``limit`` default 50,
    clamped to 100), ``get`` (paged past ``detail_page`` = 500; 40096, 84061), ``get_corp_tag_list``,
    ``add_msg_template``, ``send_welcome_msg``.  Each API allows ``per_minute`` calls per
    ``minute_seconds`` (45009 beyond, and a one-window block).

Faults
    ``POST /_admin/faults`` (or :class:`Settings`): ``rate`` makes every corp request, tokens
    included, fail at random with that probability, as one of ``kinds`` (``freq``: errcode 45009,
    ``busy``: errcode -1, ``http500``: HTTP 500), drawn from a generator seeded with
    ``fault_seed``; ``latency`` delays each corp API answer; ``token_ttl`` sets the life of the
    tokens issued next (42001 once it is over); ``busy`` alone (errcode -1 with
    probability p), ``revoke_every`` (revoke every token after n data calls) and
    ``mp_revoke_every`` (公众号 tokens after n updates).  The 公众号 endpoints are not faulted.
    ``GET /_admin/stats`` counts calls per endpoint and faults per kind (``fault_45009``,
    ``fault_-1``, ``fault_500``; ``token_expired`` for 42001 answers); ``GET /_admin/pages`` lists
    every ``batch/get_by_user`` page answered successfully, by (userid chunk, cursor), with how
    many times.

Callbacks
    ``POST /_admin/callback`` ``{"change", "userid", "external_userid", "url"?, "repeat"?}`` changes
    the corp (an add creates the relation, a delete removes it), then delivers the
    ``change_external_contact`` event to ``url`` (default: the ``callback_url`` given at start)
    signed and encrypted as WeCom does, and reports the receiver's answers.  ``POST
    /_admin/verify`` runs the URL-verification GET.  ``GET /_admin/tasks`` lists mass-send tasks.

公众号 member card (research file A5), served on the same app
    ``GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`` → ``access_token``,
    ``expires_in`` (``mp_token_ttl``); a wrong grant_type, appid or secret answers 40001 (the
    sandbox's choice).  ``POST card/membercard/updateuser`` accepts only a 公众号 token (a corp or
    unknown token answers 40001 "invalid credential"; an expired one 42001).  ``bonus`` sets the
    card's total, else ``add_bonus`` changes it; a wrong ``card_id`` or a non-integer bonus answers
    40058 (the sandbox's choice).  The answer carries ``result_bonus``, ``result_balance`` and
    ``openid``.  ``GET /_admin/cards`` shows ``{code: {"bonus", "updates", "record_bonus"}}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub import Population, SandboxSpec, WebhookRequest
from plugins.wecom.sandbox_data import FAULT_KINDS, Corp, Settings, account_settings, sample_callback
from plugins.wecom.wire import MsgCrypt

__all__ = ["Sandbox", "Settings", "account_settings", "make_app", "make_sandbox", "sample_callback"]


def err(code: int, message: str) -> JSONResponse:
    return JSONResponse({"errcode": code, "errmsg": message})


def ok(**body: Any) -> JSONResponse:
    return JSONResponse({"errcode": 0, "errmsg": "ok", **body})


class Sandbox:
    """The sandbox's state: the corp, its tokens, limits, faults and what it counted."""

    def __init__(self, customers: int, settings: Settings, people: Population | None = None) -> None:
        self.settings = settings
        self.corp = Corp(customers, settings.seed, people)
        self.rng = random.Random(settings.seed)
        self.fault_rng = random.Random(settings.seed if settings.fault_seed is None else settings.fault_seed)
        self.crypt = MsgCrypt(settings.token, settings.encoding_aes_key, settings.corp_id)
        self.tokens: dict[str, float] = {}
        self.windows: dict[str, list[float]] = {}
        self.blocked: dict[str, float] = {}
        self.stats: dict[str, int] = {}
        self.faults: dict[str, Any] = {"busy": 0.0, "revoke_every": 0, "mp_revoke_every": 0,
                                       "rate": settings.fault_rate, "kinds": list(settings.fault_kinds),
                                       "latency": settings.latency, "token_ttl": settings.token_ttl}
        self.tasks: list[dict[str, Any]] = []
        self.welcome_codes: dict[str, float] = {}
        self.data_calls = 0
        self.mp_tokens: dict[str, float] = {}
        self.cards: dict[str, dict[str, Any]] = {}
        self.mp_updates = 0
        self.answered: dict[tuple[str, str], int] = {}

    def count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def fault(self) -> Response | None:
        """A random fault of fault mode, or ``None``."""
        rate = float(self.faults.get("rate") or 0.0)
        if not rate or self.fault_rng.random() >= rate:
            return None
        kind = self.fault_rng.choice(list(self.faults.get("kinds") or FAULT_KINDS))
        if kind == "http500":
            self.count("fault_500")
            return Response("internal error", status_code=500)
        if kind == "freq":
            self.count("fault_45009")
            return err(45009, "api freq out of limit")
        self.count("fault_-1")
        return err(-1, "system busy")

    async def gate(self, request: Request, name: str) -> Response | None:
        """Count a corp API call, then the answer it gets instead of data, if any."""
        self.count(name)
        if self.faults.get("latency"):
            await asyncio.sleep(float(self.faults["latency"]))
        faulted = self.fault()
        if faulted is not None:
            return faulted
        value = request.query_params.get("access_token")
        if not value:
            return err(41001, "access_token missing")
        expiry = self.tokens.get(value)
        if expiry is None:
            return err(40014, "invalid access_token")
        now = time.monotonic()
        if expiry <= now:
            self.count("token_expired")
            return err(42001, "access_token expired")
        return self._limit(name, now)

    def _limit(self, name: str, now: float) -> Response | None:
        s = self.settings
        if self.blocked.get(name, 0.0) > now:
            return err(45009, "api freq out of limit")
        window = [t for t in self.windows.get(name, []) if now - t < s.minute_seconds]
        self.windows[name] = window
        if len(window) >= s.per_minute:
            self.blocked[name] = now + s.minute_seconds
            self.count("freq_limited")
            return err(45009, "api freq out of limit")
        window.append(now)
        self.data_calls += 1
        every = int(self.faults.get("revoke_every") or 0)
        if every and self.data_calls % every == 0:
            self.tokens.clear()
            self.count("revoked")
        if self.rng.random() < float(self.faults.get("busy") or 0.0):
            self.count("busy")
            return err(-1, "system busy")
        return None


def state_of(request: Request) -> Sandbox:
    return request.app.state.sandbox  # type: ignore[no-any-return]


async def json_body(request: Request) -> dict[str, Any] | None:
    """The request's JSON object, or ``None`` when it is not one."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


# -- the corp API ------------------------------------------------------------------------------


async def gettoken(request: Request) -> Response:
    state, s = state_of(request), state_of(request).settings
    state.count("gettoken")
    faulted = state.fault()
    if faulted is not None:
        return faulted
    q = request.query_params
    if q.get("corpid") != s.corp_id:
        return err(40013, "invalid corpid")
    if q.get("corpsecret") != s.secret:
        return err(40001, "invalid secret")
    now = time.monotonic()
    for value, expiry in state.tokens.items():
        if expiry > now:
            return ok(access_token=value, expires_in=int(expiry - now))
    ttl = int(state.faults.get("token_ttl") or s.token_ttl)
    value = f"SBX{state.rng.getrandbits(128):032x}"
    state.tokens[value] = now + ttl
    return ok(access_token=value, expires_in=ttl)


async def follow_users(request: Request) -> Response:
    state = state_of(request)
    return await state.gate(request, "get_follow_user_list") or ok(follow_user=list(state.corp.staff))


async def batch(request: Request) -> Response:
    state = state_of(request)
    denied = await state.gate(request, "batch_get_by_user")
    body = await json_body(request)
    if denied or body is None:
        return denied or err(40058, "invalid json")
    users = body.get("userid_list")
    if not isinstance(users, list) or not 1 <= len(users) <= 100:
        return err(40058, "userid_list must hold 1 to 100 userids")
    limit = body.get("limit") or 50
    limit = min(int(limit), 100) if isinstance(limit, int) and limit > 0 else 50
    cursor = str(body.get("cursor") or "")
    page = state.corp.batch_page(users, cursor, limit)
    if page is None:
        return err(40058, "invalid cursor")
    key = (",".join(users), cursor)
    state.answered[key] = state.answered.get(key, 0) + 1
    items, next_cursor = page
    return ok(external_contact_list=items, next_cursor=next_cursor)


async def detail(request: Request) -> Response:
    state = state_of(request)
    denied = await state.gate(request, "get")
    if denied:
        return denied
    uid = request.query_params.get("external_userid", "")
    if uid not in state.corp.contacts:
        return err(40096, "invalid external userid")
    followers = state.corp.followers_of(uid)
    if not followers:
        return err(84061, "not external contact")
    offset = int(request.query_params.get("cursor") or 0)
    page = followers[offset:offset + state.settings.detail_page]
    end = offset + len(page)
    return ok(external_contact=state.corp.contacts[uid],
              follow_user=[state.corp.follow_user((uid, staff)) for staff in page],
              next_cursor=str(end) if end < len(followers) else "")


async def tags(request: Request) -> Response:
    state = state_of(request)
    return await state.gate(request, "get_corp_tag_list") or ok(tag_group=state.corp.tag_groups())


async def mass_send(request: Request) -> Response:
    state = state_of(request)
    denied = await state.gate(request, "add_msg_template")
    body = await json_body(request)
    if denied or body is None:
        return denied or err(40058, "invalid json")
    targets = body.get("external_userid") or []
    if not targets or not (body.get("text") or body.get("attachments")):
        return err(40058, "external_userid and content are required")
    fail = [t for t in targets if not state.corp.followers_of(t)]
    msgid = f"msgSBX{len(state.tasks) + 1:06d}"
    state.tasks.append({"msgid": msgid, "body": body, "confirmed": False})
    return ok(fail_list=fail, msgid=msgid)


async def welcome(request: Request) -> Response:
    state = state_of(request)
    denied = await state.gate(request, "send_welcome_msg")
    body = await json_body(request)
    if denied or body is None:
        return denied or err(40058, "invalid json")
    issued = state.welcome_codes.pop(str(body.get("welcome_code")), None)
    if issued is None or time.monotonic() - issued > state.settings.welcome_ttl:
        return err(40058, "invalid or expired welcome_code")  # sandbox's choice of code
    state.tasks.append({"welcome": True, "body": body})
    return ok()


# -- the 公众号 member card ----------------------------------------------------------------------


async def mp_token(request: Request) -> Response:
    state, s = state_of(request), state_of(request).settings
    state.count("mp_token")
    q = request.query_params
    if (q.get("grant_type"), q.get("appid"), q.get("secret")) != ("client_credential", s.mp_app_id,
                                                                   s.mp_app_secret):
        return err(40001, "invalid credential")
    value = f"MPSBX{state.rng.getrandbits(128):032x}"
    state.mp_tokens[value] = time.monotonic() + s.mp_token_ttl
    return JSONResponse({"access_token": value, "expires_in": s.mp_token_ttl})


async def update_card(request: Request) -> Response:
    state = state_of(request)
    state.count("membercard_updateuser")
    expiry = state.mp_tokens.get(request.query_params.get("access_token") or "")
    if expiry is None:
        return err(40001, "invalid credential, access_token is invalid or not latest")
    if expiry <= time.monotonic():
        return err(42001, "access_token expired")
    body = await json_body(request)
    if body is None or body.get("card_id") != state.settings.card_id or not body.get("code"):
        return err(40058, "invalid card_id or code")
    bonus, add = body.get("bonus"), body.get("add_bonus", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (add, bonus if "bonus" in body else 0)):
        return err(40058, "bonus and add_bonus must be integers")
    card = state.cards.setdefault(str(body["code"]), {"bonus": 0, "updates": 0, "record_bonus": ""})
    card["bonus"] = bonus if "bonus" in body else card["bonus"] + add
    card["updates"] += 1
    card["record_bonus"] = str(body.get("record_bonus", ""))
    state.mp_updates += 1
    every = int(state.faults.get("mp_revoke_every") or 0)
    if every and state.mp_updates % every == 0:
        state.mp_tokens.clear()
        state.count("mp_revoked")
    openid = "oSBX" + hashlib.sha1(str(body["code"]).encode()).hexdigest()[:24]
    return ok(result_bonus=card["bonus"], result_balance=0, openid=openid)


# -- administration (not WeCom's): callbacks, faults, what the sandbox saw ----------------------


async def deliver_callback(request: Request) -> Response:
    state, s = state_of(request), state_of(request).settings
    spec = await json_body(request) or {}
    change, staff, uid = spec.get("change", ""), spec.get("userid", ""), spec.get("external_userid", "")
    now = int(time.time())
    event: dict[str, str | int] = {"ToUserName": s.corp_id, "FromUserName": "sys", "CreateTime": now,
                                   "MsgType": "event", "Event": "change_external_contact",
                                   "ChangeType": change, "UserID": staff, "ExternalUserID": uid}
    if change in ("add_external_contact", "add_half_external_contact"):
        state.corp.add(uid, staff, now, spec.get("state", ""))
        code = f"WC{state.rng.getrandbits(64):016x}"
        state.welcome_codes[code] = time.monotonic()
        event.update(State=spec.get("state", ""), WelcomeCode=code)
    elif change in ("del_external_contact", "del_follow_user"):
        state.corp.remove(uid, staff)
        if change == "del_external_contact":
            event["Source"] = spec.get("source", "")
    elif change == "transfer_fail":
        event["FailReason"] = spec.get("fail_reason", "customer_refused")
    url = spec.get("url") or s.callback_url
    if not url:
        return JSONResponse({"error": "no callback url"}, status_code=400)
    query, body = sample_callback(state.crypt, s, event)
    answers = []
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(int(spec.get("repeat", 1))):
            answer = await client.post(url, params=query, content=body, headers={"Content-Type": "text/xml"})
            answers.append({"status": answer.status_code, "body": answer.text})
    return JSONResponse({"event": event, "answers": answers})


async def verify_url(request: Request) -> Response:
    state = state_of(request)
    spec = await json_body(request) or {}
    echo = str(spec.get("echo", "sandbox-echo-1234567890"))
    timestamp, nonce = str(int(time.time())), str(state.rng.randrange(10**9))
    echostr = state.crypt.encrypt(echo.encode())
    params = {"msg_signature": state.crypt.sign(timestamp, nonce, echostr), "timestamp": timestamp,
              "nonce": nonce, "echostr": echostr}
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(spec.get("url") or state.settings.callback_url or "", params=params)
    return JSONResponse({"expected": echo, "status": answer.status_code, "body": answer.text})


async def set_faults(request: Request) -> Response:
    state = state_of(request)
    state.faults.update(await json_body(request) or {})
    return JSONResponse(state.faults)


async def stats(request: Request) -> Response:
    return JSONResponse(state_of(request).stats)


async def pages(request: Request) -> Response:
    answered = state_of(request).answered
    return JSONResponse([{"userid_list": users.split(","), "cursor": cursor, "answers": n}
                         for (users, cursor), n in answered.items()])


async def tasks(request: Request) -> Response:
    return JSONResponse(state_of(request).tasks)


async def cards(request: Request) -> Response:
    return JSONResponse(state_of(request).cards)



P = "/cgi-bin/externalcontact/"
ROUTES = [
    Route("/cgi-bin/gettoken", gettoken),
    Route(P + "get_follow_user_list", follow_users),
    Route(P + "batch/get_by_user", batch, methods=["POST"]),
    Route(P + "get", detail),
    Route(P + "get_corp_tag_list", tags, methods=["POST"]),
    Route(P + "add_msg_template", mass_send, methods=["POST"]),
    Route(P + "send_welcome_msg", welcome, methods=["POST"]),
    Route("/cgi-bin/token", mp_token),
    Route("/card/membercard/updateuser", update_card, methods=["POST"]),
    Route("/_admin/callback", deliver_callback, methods=["POST"]),
    Route("/_admin/verify", verify_url, methods=["POST"]),
    Route("/_admin/faults", set_faults, methods=["POST"]),
    Route("/_admin/stats", stats),
    Route("/_admin/pages", pages),
    Route("/_admin/tasks", tasks),
    Route("/_admin/cards", cards),
]


def make_app(customers: int = 1000, *, settings: Settings | None = None, people: Population | None = None) -> Starlette:
    """The sandbox app for a corp of ``customers`` customers (or of the WeCom customers among
    shared ``people``)."""
    app = Starlette(routes=ROUTES)
    app.state.sandbox = Sandbox(customers, settings or Settings(), people)
    return app



def make_sandbox(seed: int, fans: int, base_url: str, *, settings: Settings | None = None,
                 people: Population | None = None) -> SandboxSpec:
    """The ``sandbox`` factory: per-minute limits scaled to one second, so demos run fast.

    :param settings: the corp's settings (default: seeded by ``seed``, a one-second window).
    :param people: shared people (``hub.population(seed, fans)``): the customers are those of them
        who are WeCom customers; without, ``fans`` customers of the sandbox's own.
    """
    settings = settings or Settings(seed=seed, minute_seconds=1.0)
    app = make_app(fans, settings=settings, people=people)
    state: Sandbox = app.state.sandbox
    counter = iter(range(1, 10**9))

    def sample() -> WebhookRequest:
        corp = state.corp
        uid = next(iter(corp.contacts))
        staff = corp.followers_of(uid)[0] if corp.followers_of(uid) else corp.staff[0]
        event: dict[str, str | int] = {
            "ToUserName": settings.corp_id, "FromUserName": "sys", "CreateTime": int(time.time()) - next(counter),
            "MsgType": "event", "Event": "change_external_contact", "ChangeType": "edit_external_contact",
            "UserID": staff, "ExternalUserID": uid}
        query, body = sample_callback(state.crypt, settings, event)
        return WebhookRequest(method="POST", path="/", query=query, headers={"content-type": "text/xml"}, body=body)

    return SandboxSpec(app=app, account=account_settings(base_url, settings), sample_webhook=sample)
