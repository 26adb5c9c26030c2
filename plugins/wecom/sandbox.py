"""The WeCom sandbox: an ASGI app speaking the platform's protocol, written from its docs.

Protocol (``shared/platforms/wecom-douyin.md`` part A)
    ``GET /cgi-bin/gettoken?corpid=&corpsecret=`` → ``access_token``, ``expires_in``; a repeat call
    inside the validity returns the same token.  Every other call needs ``?access_token=``:
    missing 41001, unknown 40014, expired 42001.  Wrong corp id 40013, wrong secret 40001.
    ``externalcontact/get_follow_user_list``, ``batch/get_by_user`` (``userid_list`` ≤ 100,
    ``limit`` default 50, clamped to 100, ``next_cursor`` empty at the end), ``get`` (follow_user
    paged by ``cursor`` past ``detail_page`` = 500; 40096 unknown customer, 84061 no relation),
    ``get_corp_tag_list``, ``add_msg_template`` (``msgid`` + ``fail_list``) and
    ``send_welcome_msg``.  Each API allows ``per_minute`` calls per ``minute_seconds`` (10,000 per
    60 s documented; scale both for tests); going over answers 45009 and blocks that API for one
    window.  Every answer is HTTP 200 with ``errcode``/``errmsg``.

Callbacks
    ``POST /_admin/callback`` ``{"change", "userid", "external_userid", "url"?, "repeat"?}`` changes
    the corp (an add creates the relation, a delete removes it), then delivers the
    ``change_external_contact`` event to ``url`` (default: the ``callback_url`` given at start)
    signed and encrypted as WeCom does, and reports the receiver's answers.  ``POST
    /_admin/verify`` runs the URL-verification GET.  Faults: ``POST /_admin/faults``
    ``{"busy": p, "revoke_every": n}`` (errcode -1 with probability p; revoke every token after n
    data calls).  ``GET /_admin/stats`` counts calls; ``GET /_admin/tasks`` lists mass-send tasks.

公众号 member card (research file A5), served on the same app
    ``GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`` → ``access_token``,
    ``expires_in`` (``mp_token_ttl``); a wrong grant_type, appid or secret answers 40001 (the
    sandbox's choice: the research file names no code for it).  These tokens are kept apart from
    the corp's: ``POST card/membercard/updateuser`` accepts only a 公众号 token (a corp token, or an
    unknown one, answers 40001 "invalid credential"; an expired one 42001).  ``bonus`` sets the
    card's total, else ``add_bonus`` changes it; a wrong ``card_id`` or a non-integer bonus answers
    40058 (the sandbox's choice).  The answer carries ``result_bonus``, ``result_balance`` and
    ``openid``.  ``GET /_admin/cards`` shows ``{code: {"bonus", "updates", "record_bonus"}}``;
    the ``mp_revoke_every`` fault revokes the 公众号 tokens every n updates.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plugins.wecom.crypto import MsgCrypt
from plugins.wecom.sandbox_data import Corp
from plugins.wecom.xmlmsg import envelope, message_xml

__all__ = ["Settings", "make_app", "make_sandbox", "sample_callback"]

P = "/cgi-bin/externalcontact/"


@dataclass
class Settings:
    """The sandbox corp's credentials and knobs (deterministic from the seed)."""

    seed: int = 0
    corp_id: str = "wwsandbox0000001"
    secret: str = "sandbox-secret-0123456789abcdef"
    agent_id: int = 1000002
    token: str = "SandboxTok3n"
    encoding_aes_key: str = ""
    token_ttl: int = 7200
    per_minute: int = 10_000
    minute_seconds: float = 60.0
    detail_page: int = 500
    welcome_ttl: float = 20.0
    callback_url: str | None = None
    mp_app_id: str = "wxsandboxmp000001"
    mp_app_secret: str = "sandbox-mp-secret-0123456789ab"
    card_id: str = "pSBXmembercard0000000000001"
    mp_token_ttl: int = 7200

    def __post_init__(self) -> None:
        if not self.encoding_aes_key:
            # 43 characters of [A-Za-z0-9], as the platform requires
            self.encoding_aes_key = hashlib.sha256(f"wecom-sandbox-{self.seed}".encode()).hexdigest()[:43]


@dataclass
class _State:
    settings: Settings
    corp: Corp
    rng: random.Random
    tokens: dict[str, float] = field(default_factory=dict)
    calls: dict[str, deque[float]] = field(default_factory=dict)
    blocked: dict[str, float] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    faults: dict[str, float] = field(default_factory=lambda: {"busy": 0.0, "revoke_every": 0, "mp_revoke_every": 0})
    tasks: list[dict[str, Any]] = field(default_factory=list)
    welcome_codes: dict[str, float] = field(default_factory=dict)
    data_calls: int = 0
    mp_tokens: dict[str, float] = field(default_factory=dict)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    mp_updates: int = 0

    def count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1


def _err(code: int, message: str) -> JSONResponse:
    return JSONResponse({"errcode": code, "errmsg": message})


def _ok(**body: Any) -> JSONResponse:
    return JSONResponse({"errcode": 0, "errmsg": "ok", **body})


def make_app(customers: int = 1000, *, settings: Settings | None = None) -> Starlette:
    """The sandbox app for a corp of ``customers`` customers."""
    s = settings or Settings()
    state = _State(s, Corp(customers, s.seed), random.Random(s.seed))
    crypt = MsgCrypt(s.token, s.encoding_aes_key, s.corp_id)

    async def gettoken(request: Request) -> Response:
        state.count("gettoken")
        q = request.query_params
        if q.get("corpid") != s.corp_id:
            return _err(40013, "invalid corpid")
        if q.get("corpsecret") != s.secret:
            return _err(40001, "invalid secret")
        now = time.monotonic()
        for value, expiry in state.tokens.items():
            if expiry > now:
                return _ok(access_token=value, expires_in=int(expiry - now))
        value = f"SBX{state.rng.getrandbits(128):032x}"
        state.tokens[value] = now + s.token_ttl
        return _ok(access_token=value, expires_in=s.token_ttl)

    def gate(request: Request, name: str) -> Response | None:
        state.count(name)
        value = request.query_params.get("access_token")
        if not value:
            return _err(41001, "access_token missing")
        expiry = state.tokens.get(value)
        if expiry is None:
            return _err(40014, "invalid access_token")
        now = time.monotonic()
        if expiry <= now:
            return _err(42001, "access_token expired")
        if state.blocked.get(name, 0.0) > now:
            return _err(45009, "api freq out of limit")
        window = state.calls.setdefault(name, deque())
        while window and now - window[0] >= s.minute_seconds:
            window.popleft()
        if len(window) >= s.per_minute:
            state.blocked[name] = now + s.minute_seconds
            state.count("freq_limited")
            return _err(45009, "api freq out of limit")
        window.append(now)
        state.data_calls += 1
        every = int(state.faults.get("revoke_every") or 0)
        if every and state.data_calls % every == 0:
            state.tokens.clear()
            state.count("revoked")
        if state.rng.random() < float(state.faults.get("busy") or 0.0):
            state.count("busy")
            return _err(-1, "system busy")
        return None

    async def json_body(request: Request) -> dict[str, Any] | None:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def follow_users(request: Request) -> Response:
        return gate(request, "get_follow_user_list") or _ok(follow_user=list(state.corp.staff))

    async def batch(request: Request) -> Response:
        denied = gate(request, "batch_get_by_user")
        body = await json_body(request)
        if denied or body is None:
            return denied or _err(40058, "invalid json")
        users = body.get("userid_list")
        if not isinstance(users, list) or not 1 <= len(users) <= 100:
            return _err(40058, "userid_list must hold 1 to 100 userids")
        limit = body.get("limit") or 50
        limit = min(int(limit), 100) if isinstance(limit, int) and limit > 0 else 50
        pairs = [pair for user in users for pair in state.corp.pairs_of(user)]
        cursor = body.get("cursor") or ""
        offset = _read_cursor(cursor, users)
        if offset is None or offset > len(pairs):
            return _err(40058, "invalid cursor")
        page = pairs[offset:offset + limit]
        end = offset + len(page)
        items = [{"external_contact": state.corp.contacts[uid], "follow_info": state.corp.follow_info((uid, staff))}
                 for uid, staff in page]
        return _ok(external_contact_list=items, next_cursor=_make_cursor(end, users) if end < len(pairs) else "")

    async def detail(request: Request) -> Response:
        denied = gate(request, "get")
        if denied:
            return denied
        uid = request.query_params.get("external_userid", "")
        if uid not in state.corp.contacts:
            return _err(40096, "invalid external userid")
        followers = state.corp.followers_of(uid)
        if not followers:
            return _err(84061, "not external contact")
        offset = int(request.query_params.get("cursor") or 0)
        page = followers[offset:offset + s.detail_page]
        end = offset + len(page)
        return _ok(external_contact=state.corp.contacts[uid],
                   follow_user=[state.corp.follow_user((uid, staff)) for staff in page],
                   next_cursor=str(end) if end < len(followers) else "")

    async def tags(request: Request) -> Response:
        return gate(request, "get_corp_tag_list") or _ok(tag_group=state.corp.tag_groups())

    async def mass_send(request: Request) -> Response:
        denied = gate(request, "add_msg_template")
        body = await json_body(request)
        if denied or body is None:
            return denied or _err(40058, "invalid json")
        targets = body.get("external_userid") or []
        if not targets or not (body.get("text") or body.get("attachments")):
            return _err(40058, "external_userid and content are required")
        fail = [t for t in targets if not state.corp.followers_of(t)]
        msgid = f"msgSBX{len(state.tasks) + 1:06d}"
        state.tasks.append({"msgid": msgid, "body": body, "confirmed": False})
        return _ok(fail_list=fail, msgid=msgid)

    async def welcome(request: Request) -> Response:
        denied = gate(request, "send_welcome_msg")
        body = await json_body(request)
        if denied or body is None:
            return denied or _err(40058, "invalid json")
        issued = state.welcome_codes.pop(str(body.get("welcome_code")), None)
        if issued is None or time.monotonic() - issued > s.welcome_ttl:
            return _err(40058, "invalid or expired welcome_code")  # sandbox's choice of code
        state.tasks.append({"welcome": True, "body": body})
        return _ok()

    async def callback(request: Request) -> Response:
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
        query, body = sample_callback(crypt, s, event)
        answers = []
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(int(spec.get("repeat", 1))):
                answer = await client.post(url, params=query, content=body,
                                           headers={"Content-Type": "text/xml"})
                answers.append({"status": answer.status_code, "body": answer.text})
        return JSONResponse({"event": event, "answers": answers})

    async def verify(request: Request) -> Response:
        spec = await json_body(request) or {}
        echo = str(spec.get("echo", "sandbox-echo-1234567890"))
        timestamp, nonce = str(int(time.time())), str(state.rng.randrange(10**9))
        echostr = crypt.encrypt(echo.encode())
        params = {"msg_signature": crypt.sign(timestamp, nonce, echostr), "timestamp": timestamp,
                  "nonce": nonce, "echostr": echostr}
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(spec.get("url") or s.callback_url or "", params=params)
        return JSONResponse({"expected": echo, "status": answer.status_code, "body": answer.text})

    async def mp_token(request: Request) -> Response:
        state.count("mp_token")
        q = request.query_params
        if (q.get("grant_type"), q.get("appid"), q.get("secret")) != ("client_credential", s.mp_app_id,
                                                                       s.mp_app_secret):
            return _err(40001, "invalid credential")
        value = f"MPSBX{state.rng.getrandbits(128):032x}"
        state.mp_tokens[value] = time.monotonic() + s.mp_token_ttl
        return JSONResponse({"access_token": value, "expires_in": s.mp_token_ttl})

    async def update_card(request: Request) -> Response:
        state.count("membercard_updateuser")
        expiry = state.mp_tokens.get(request.query_params.get("access_token") or "")
        if expiry is None:
            return _err(40001, "invalid credential, access_token is invalid or not latest")
        if expiry <= time.monotonic():
            return _err(42001, "access_token expired")
        body = await json_body(request)
        if body is None or body.get("card_id") != s.card_id or not body.get("code"):
            return _err(40058, "invalid card_id or code")
        bonus, add = body.get("bonus"), body.get("add_bonus", 0)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (add, bonus if "bonus" in body else 0)):
            return _err(40058, "bonus and add_bonus must be integers")
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
        return _ok(result_bonus=card["bonus"], result_balance=0, openid=openid)

    async def card_states(request: Request) -> Response:
        return JSONResponse(state.cards)

    async def set_faults(request: Request) -> Response:
        state.faults.update(await json_body(request) or {})
        return JSONResponse(state.faults)

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats)

    async def tasks(request: Request) -> Response:
        return JSONResponse(state.tasks)

    app = Starlette(routes=[
        Route("/cgi-bin/gettoken", gettoken),
        Route(P + "get_follow_user_list", follow_users),
        Route(P + "batch/get_by_user", batch, methods=["POST"]),
        Route(P + "get", detail),
        Route(P + "get_corp_tag_list", tags, methods=["POST"]),
        Route(P + "add_msg_template", mass_send, methods=["POST"]),
        Route(P + "send_welcome_msg", welcome, methods=["POST"]),
        Route("/cgi-bin/token", mp_token),
        Route("/card/membercard/updateuser", update_card, methods=["POST"]),
        Route("/_admin/cards", card_states),
        Route("/_admin/callback", callback, methods=["POST"]),
        Route("/_admin/verify", verify, methods=["POST"]),
        Route("/_admin/faults", set_faults, methods=["POST"]),
        Route("/_admin/stats", stats),
        Route("/_admin/tasks", tasks),
    ])
    app.state.sandbox = state
    return app


def _make_cursor(offset: int, users: list[str]) -> str:
    digest = hashlib.sha1("|".join(users).encode()).hexdigest()[:8]
    return base64.urlsafe_b64encode(f"{offset}:{digest}".encode()).decode()


def _read_cursor(cursor: str, users: list[str]) -> int | None:
    if not cursor:
        return 0
    try:
        offset, digest = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        expected = hashlib.sha1("|".join(users).encode()).hexdigest()[:8]
        return int(offset) if digest == expected else None
    except (ValueError, UnicodeDecodeError):
        return None


def sample_callback(crypt: MsgCrypt, settings: Settings, event: dict[str, str | int]) -> tuple[dict[str, str], bytes]:
    """``(query, body)`` of one event as WeCom delivers it: encrypted, enveloped and signed."""
    encrypted = crypt.encrypt(message_xml(event))
    timestamp = str(int(time.time()))
    nonce = str(random.randrange(10**9))
    query = {"msg_signature": crypt.sign(timestamp, nonce, encrypted), "timestamp": timestamp, "nonce": nonce}
    return query, envelope(settings.corp_id, encrypted, settings.agent_id)


def account_settings(base_url: str, settings: Settings, account_id: str = "sandbox") -> dict[str, Any]:
    """The ``[[accounts]]`` entry for a sandbox at ``base_url``, its client limits matching the sandbox's."""
    from plugins.wecom.adapter import PATHS

    limit = [float(settings.per_minute), float(settings.minute_seconds)]
    return {"platform": "wecom", "id": account_id, "base_url": base_url, "corp_id": settings.corp_id,
            "secret": settings.secret, "agent_id": settings.agent_id, "token": settings.token,
            "encoding_aes_key": settings.encoding_aes_key,
            "mp_app_id": settings.mp_app_id, "mp_app_secret": settings.mp_app_secret, "card_id": settings.card_id,
            "mp_base_url": base_url,
            "rate_limits": {path: limit for key, path in PATHS.items() if key != "token"}}


def make_sandbox(seed: int, fans: int, base_url: str) -> Any:
    """The ``sandbox`` factory: per-minute limits scaled to one second, so demos run fast."""
    from hub import WebhookRequest
    from hub import SandboxSpec

    settings = Settings(seed=seed, minute_seconds=1.0)
    app = make_app(fans, settings=settings)
    crypt = MsgCrypt(settings.token, settings.encoding_aes_key, settings.corp_id)
    corp: Corp = app.state.sandbox.corp
    counter = iter(range(1, 10**9))

    def sample() -> WebhookRequest:
        uid = next(iter(corp.contacts))
        staff = corp.followers_of(uid)[0] if corp.followers_of(uid) else corp.staff[0]
        event: dict[str, str | int] = {
            "ToUserName": settings.corp_id, "FromUserName": "sys", "CreateTime": int(time.time()) - next(counter),
            "MsgType": "event", "Event": "change_external_contact", "ChangeType": "edit_external_contact",
            "UserID": staff, "ExternalUserID": uid}
        query, body = sample_callback(crypt, settings, event)
        return WebhookRequest(method="POST", path="/", query=query, headers={"content-type": "text/xml"}, body=body)

    return SandboxSpec(app=app, account=account_settings(base_url, settings), sample_webhook=sample)
