"""The Alipay sandbox: a ``gateway.do`` that speaks the member-card methods the hub uses.

Written from the platform's documentation, apart from the adapter (it imports none of it), so
that the two cannot share one mistake.

Gateway (``POST /gateway.do``, also ``/``; parameters in the query and/or the form body)
    Checks ``app_id``, ``sign_type=RSA2``, ``timestamp`` (``yyyy-MM-dd HH:mm:ss`` Asia/Shanghai,
    within 15 minutes: the sandbox's own tolerance) and the caller's RSA2 signature with the app
    public key it was given; such failures answer ``error_response``.  Answers are
    ``{"<method>_response": {…}, "sign": "…"}`` signed with the sandbox's own key pair; string
    values carry braces, quotes and escapes (user names, the form's ``infos``).

    ``alipay.system.oauth.token`` (``grant_type=authorization_code``, ``code``): a code works once;
    ``grant_type=refresh_token`` gives a new token for the same user.
    ``alipay.marketing.card.activateform.query`` / ``card.open`` need the user's ``auth_token``,
    good for two calls.  One card per user per template (``CARD_EXIST``, a sandbox sub_code);
    ``card.open`` keeps the ``external_card_no``, ``point`` and ``level`` of its ``card_ext_info``.
    ``card.query`` by ``target_card_no`` or ``card_user_info``; ``card.update`` checks ``point``
    (a number with at most two decimals), ``occur_time`` and ``notify_messages``; a card it never
    opened is adopted (as opened before the sandbox started) unless ``strict_cards`` is on.
    ``activateurl.apply`` answers an ``apply_card_url``.

Admin (not Alipay): ``POST /_admin/activate`` ``{url, phone?}`` plays a shopper who fills the
form: a user, a ``request_id`` and an ``auth_code``, then ``GET url?auth_code=…&request_id=…``;
``POST /_admin/form`` ``{phone?}`` fills a form without following the callback (the caller plays
the shopper's browser; the answer names ``auth_code``, ``request_id``, ``open_id``);
``POST /_admin/activate_all`` ``{url}`` activates every user who holds no card yet (the card
holders of shared people), answering how many callbacks answered 200 (``opened``, ``answered``)
and the statuses the URL answered;
``POST /_admin/notify`` ``{url, kind: open|delete, biz_card_no}`` sends a signed (V1) notify;
``GET /_admin/cards``, ``/_admin/stats``; ``POST /_admin/faults`` ``{busy, strict_cards}``.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import hub
from plugins.alipay.sandbox_data import (
    APP_ID,
    TEMPLATE_ID,
    KeyFiles,
    User,
    card_holders,
    generate_keys,
    make_user,
    population,
    signed_notify,
)

__all__ = ["APP_ID", "TEMPLATE_ID", "Sandbox", "make_app", "make_sandbox", "signed_notify"]

SHANGHAI = ZoneInfo("Asia/Shanghai")
STAMP = "%Y-%m-%d %H:%M:%S"
SKEW = timedelta(minutes=15)
POINT = re.compile(r"\d+(\.\d{1,2})?")
MESSAGES = {"POINT_UPDATE": "{}，您的积分有变动", "BALANCE_UPDATE": "{}，您的余额有变动", "LEVEL_UPDATE": ""}


class Refused(Exception):
    """An answer other than 10000: ``code``, ``msg``, ``sub_code``, ``sub_msg``."""

    def __init__(self, code: str, msg: str, sub_code: str = "", sub_msg: str = "") -> None:
        super().__init__(sub_code or code)
        self.node = {"code": code, "msg": msg, **({"sub_code": sub_code, "sub_msg": sub_msg} if sub_code else {})}


def _business(sub_code: str, sub_msg: str) -> Refused:
    return Refused("40004", "Business Failed", sub_code, sub_msg)


@dataclass
class Faults:
    busy: float = 0.0
    strict_cards: bool = False


@dataclass
class Sandbox:
    """The sandbox's state: users, codes, tokens, activation forms and cards."""

    seed: int
    keys: KeyFiles
    base_url: str
    users: list[User]
    faults: Faults = field(default_factory=Faults)
    codes: dict[str, tuple[int, bool]] = field(default_factory=dict)
    tokens: dict[str, list[int]] = field(default_factory=dict)
    refresh_tokens: dict[str, int] = field(default_factory=dict)
    forms: dict[str, int] = field(default_factory=dict)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    serial: itertools.count = field(default_factory=lambda: itertools.count(1))
    user_base: int = 0
    """Where the numbers of users added later start (past a shared population's indexes)."""

    def count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    # -- signing ---------------------------------------------------------------------------

    def sign(self, text: str) -> str:
        raw = self.keys.alipay_private_key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(raw).decode("ascii")

    def caller_signed(self, params: dict[str, str]) -> bool:
        """The request's signature over every parameter but ``sign`` and empty ones, sorted."""
        content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v != "")
        try:
            signature = base64.b64decode(params.get("sign", ""), validate=True)
            self.keys.app_public_key.verify(signature, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True

    def answer(self, name: str, node: dict[str, Any]) -> Response:
        text = json.dumps(node, ensure_ascii=False)
        body = f'{{"{name}":{text},"sign":"{self.sign(text)}"}}'
        return Response(body.encode("utf-8"), media_type="application/json;charset=utf-8")

    # -- the world ---------------------------------------------------------------------------

    def add_user(self, phone: str | None) -> int:
        self.users.append(make_user(self.seed, self.user_base + len(self.users), phone))
        return len(self.users) - 1

    def card_of(self, user: int) -> dict[str, Any] | None:
        return next((c for c in self.cards.values() if c["user"] == user and c["status"] == "ACTIVE"), None)

    def view(self, card: dict[str, Any]) -> dict[str, Any]:
        info = {k: card[k] for k in ("biz_card_no", "external_card_no", "open_date", "valid_date") if card.get(k)}
        info.update({k: card[k] for k in ("point", "level") if card.get(k) is not None})
        return info


def _user_token(s: Sandbox, params: dict[str, str]) -> int:
    grant = s.tokens.get(params.get("auth_token", ""))
    if grant is None or grant[1] <= 0:
        raise Refused("20001", "Insufficient Token Permissions", "aop.invalid-auth-token", "无效的访问令牌")
    grant[1] -= 1
    return grant[0]


def oauth_token(s: Sandbox, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
    if params.get("grant_type") == "refresh_token":
        who = s.refresh_tokens.get(params.get("refresh_token", ""))
        if who is None:
            raise Refused("40002", "Invalid Arguments", "isv.refresh-token-invalid", "刷新令牌无效")
    else:
        entry = s.codes.get(params.get("code", ""))
        if params.get("grant_type") != "authorization_code" or entry is None or entry[1]:
            raise Refused("40002", "Invalid Arguments", "isv.code-invalid", "授权码(auth_code)错误、状态不对或过期")
        s.codes[params["code"]] = (entry[0], True)
        who = entry[0]
    token, refresh = f"authusrB{secrets.token_hex(12)}", f"authusrR{secrets.token_hex(8)}"
    s.tokens[token], s.refresh_tokens[refresh] = [who, 2], who
    user = s.users[who]
    return {"access_token": token, "expires_in": 1296000, "refresh_token": refresh,
            "re_expires_in": 2592000, "auth_start": datetime.now(SHANGHAI).strftime(STAMP),
            "user_id": user.user_id, "open_id": user.open_id}


def activateform_query(s: Sandbox, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
    user = _user_token(s, params)
    if biz.get("biz_type") != "MEMBER_CARD" or biz.get("template_id") != TEMPLATE_ID:
        raise _business("INVALID_PARAMETER", "biz_type 或 template_id 不正确")
    if s.forms.get(str(biz.get("request_id"))) != user:
        raise _business("REQUEST_ID_INVALID", "request_id 不存在或不属于该用户")
    u = s.users[user]
    infos = [{"OPEN_FORM_FIELD_MOBILE": u.phone}, {"OPEN_FORM_FIELD_NAME": u.name}]
    return {"infos": json.dumps(infos, ensure_ascii=False)}


def _holder(s: Sandbox, info: Any) -> int:
    info = info if isinstance(info, dict) else {}
    for i, u in enumerate(s.users):
        if (info.get("open_id") and info["open_id"] == u.open_id) or (
                info.get("user_uni_id_type") == "UID" and info.get("user_uni_id") == u.user_id):
            return i
    raise _business("USER_NOT_EXIST", "card_user_info 不正确")


def card_open(s: Sandbox, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
    user = _user_token(s, params)
    ext = biz.get("card_ext_info") if isinstance(biz.get("card_ext_info"), dict) else {}
    if biz.get("card_template_id") != TEMPLATE_ID or not biz.get("out_serial_no"):
        raise _business("INVALID_PARAMETER", "card_template_id 或 out_serial_no 不正确")
    if _holder(s, biz.get("card_user_info")) != user:
        raise _business("USER_NOT_MATCH", "card_user_info 与授权用户不一致")
    external = str(ext.get("external_card_no") or "")
    if not 1 <= len(external) <= 64:
        raise _business("INVALID_PARAMETER", "external_card_no 必填")
    for key in ("open_date", "valid_date"):
        if ext.get(key):
            datetime.strptime(str(ext[key]), STAMP)
    point = ext.get("point")
    if point is not None and not (isinstance(point, str) and POINT.fullmatch(point)):
        raise _business("INVALID_PARAMETER", "积分必须为数字型（可为浮点型，带2位小数点）")
    if s.card_of(user) is not None:
        raise _business("CARD_EXIST", "用户已领取该会员卡")
    no = f"SBX{s.seed % 1000:03d}{next(s.serial):09d}"
    s.cards[no] = {"biz_card_no": no, "user": user, "external_card_no": external, "status": "ACTIVE",
                   "open_date": ext.get("open_date"), "valid_date": ext.get("valid_date"), "point": point,
                   "level": str(ext["level"]) if ext.get("level") is not None else None, "updates": 0,
                   "messages": []}
    return {"card_info": s.view(s.cards[no]), "open_card_channel": "", "open_card_channel_id": ""}


def _card(s: Sandbox, biz: dict[str, Any], *, adopt: bool = False) -> dict[str, Any]:
    if biz.get("target_card_no_type") != "BIZ_CARD":
        raise _business("INVALID_PARAMETER", "target_card_no_type 必须为 BIZ_CARD")
    no = str(biz.get("target_card_no") or "")
    if not no and biz.get("card_user_info"):
        card = s.card_of(_holder(s, biz["card_user_info"]))
        if card is not None:
            return card
    card = s.cards.get(no)
    if card is None and no and adopt and not s.faults.strict_cards:
        card = s.cards[no] = {"biz_card_no": no, "user": None, "external_card_no": None, "status": "ACTIVE",
                              "point": None, "level": None, "updates": 0, "messages": []}
    if card is None or card["status"] != "ACTIVE":
        raise _business("CARD_NOT_EXIST", "会员卡不存在")
    return card


def card_query(s: Sandbox, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
    card = _card(s, biz)
    return {"card_info": s.view(card), "schema_url": f"alipays://platformapi/startapp?appId=20000021&card={card['biz_card_no']}"}


def card_update(s: Sandbox, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
    datetime.strptime(str(biz.get("occur_time") or ""), STAMP)
    info = biz.get("card_info")
    if not isinstance(info, dict) or info.get("biz_card_no"):
        raise _business("INVALID_PARAMETER", "card_info 必填，且不传 biz_card_no")
    point = info.get("point")
    if point is not None and not (isinstance(point, str) and POINT.fullmatch(point)):
        raise _business("INVALID_PARAMETER", "积分必须为数字型（可为浮点型，带2位小数点）")
    messages = biz.get("notify_messages") or []
    for m in messages:
        kind = m.get("message_type") if isinstance(m, dict) else None
        if kind not in MESSAGES or (MESSAGES[kind] and not m.get("change_reason")):
            raise _business("INVALID_PARAMETER", "notify_messages 不正确")
    card = _card(s, biz, adopt=True)
    card.update({k: str(info[k]) for k in ("point", "level", "balance") if info.get(k) is not None})
    card["updates"] += 1
    card["messages"] += [MESSAGES[m["message_type"]].format(m.get("change_reason", "")) for m in messages]
    return {"result_code": "SUCCESS"}


def activateurl_apply(s: Sandbox, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
    if biz.get("template_id") != TEMPLATE_ID or not biz.get("callback"):
        raise _business("INVALID_PARAMETER", "template_id 或 callback 不正确")
    return {"apply_card_url": f"{s.base_url}/_card/apply?{urlencode({'template_id': TEMPLATE_ID})}"}


METHODS = {
    "alipay.system.oauth.token": oauth_token,
    "alipay.marketing.card.activateform.query": activateform_query,
    "alipay.marketing.card.open": card_open,
    "alipay.marketing.card.query": card_query,
    "alipay.marketing.card.update": card_update,
    "alipay.marketing.card.activateurl.apply": activateurl_apply,
}


def _fresh(stamp: str) -> bool:
    try:
        sent = datetime.strptime(stamp, STAMP).replace(tzinfo=SHANGHAI)
    except ValueError:
        return False
    return abs(datetime.now(SHANGHAI) - sent) <= SKEW


def _gateway_error(params: dict[str, str], s: Sandbox) -> Refused | None:
    """What the gateway refuses before it looks at the method."""
    if not params.get("method"):
        return Refused("40001", "Missing Required Arguments", "isv.missing-method", "缺少方法名参数")
    if params.get("app_id") != APP_ID:
        return Refused("40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数")
    if params.get("sign_type") != "RSA2":
        return Refused("40002", "Invalid Arguments", "isv.invalid-signature-type", "无效的签名类型")
    if not _fresh(params.get("timestamp", "")):
        return Refused("40002", "Invalid Arguments", "isv.invalid-timestamp", "非法的时间戳参数")
    if not s.caller_signed(params):
        return Refused("40002", "Invalid Arguments", "isv.invalid-signature", "验签出错")
    if params["method"] not in METHODS:
        return Refused("40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名")
    return None


def make_app(sandbox: Sandbox) -> Starlette:
    s = sandbox
    rng = random.Random(s.seed)

    async def gateway(request: Request) -> Response:
        params = dict(request.query_params)
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        s.count("calls")
        refused = _gateway_error(params, s)
        if refused is not None:
            s.count("refused")
            return s.answer("error_response", refused.node)
        method = params["method"]
        name = method.replace(".", "_") + "_response"
        try:
            if s.faults.busy and rng.random() < s.faults.busy:
                s.count("busy")
                raise Refused("20000", "Service Currently Unavailable", "isp.unknow-error", "系统繁忙")
            biz = json.loads(params.get("biz_content") or "{}")
            node = {"code": "10000", "msg": "Success", **METHODS[method](s, params, biz)}
        except Refused as exc:
            node = exc.node
        except (ValueError, TypeError, AttributeError):
            node = Refused("40004", "Business Failed", "INVALID_PARAMETER", "参数不合法").node
        s.count(method)
        return s.answer(name, node)

    def new_form(user: int) -> dict[str, Any]:
        request_id, code = secrets.token_hex(16), f"sbxauth{secrets.token_hex(12)}"
        s.forms[request_id], s.codes[code] = user, (user, False)
        return {"auth_code": code, "request_id": request_id, "app_id": APP_ID, "template_id": TEMPLATE_ID,
                "scope": "auth_base"}

    async def fill_form(client: httpx.AsyncClient, url: str, user: int) -> dict[str, Any]:
        query = new_form(user)
        answer = await client.get(url, params=query)
        return {"status": answer.status_code, "body": answer.text, "auth_code": query["auth_code"],
                "request_id": query["request_id"], "open_id": s.users[user].open_id}

    def user_of(order: dict[str, Any]) -> int:
        return s.add_user(order["phone"]) if order.get("phone") else int(order.get("user", 0))

    async def form(request: Request) -> Response:
        user = user_of(json.loads(await request.body() or b"{}"))
        query = new_form(user)
        return JSONResponse({"auth_code": query["auth_code"], "request_id": query["request_id"],
                             "open_id": s.users[user].open_id, "user_id": s.users[user].user_id})

    async def activate(request: Request) -> Response:
        order = json.loads(await request.body())
        user = user_of(order)
        async with httpx.AsyncClient(timeout=20) as client:
            return JSONResponse(await fill_form(client, order["url"], user))

    async def activate_all(request: Request) -> Response:
        order = json.loads(await request.body())
        statuses: dict[str, int] = {}
        async with httpx.AsyncClient(timeout=20) as client:
            for user in range(len(s.users)):
                if s.card_of(user) is None:
                    status = str((await fill_form(client, order["url"], user))["status"])
                    statuses[status] = statuses.get(status, 0) + 1
        answered = statuses.get("200", 0)
        return JSONResponse({"answered": answered, "statuses": statuses})

    async def notify(request: Request) -> Response:
        order = json.loads(await request.body())
        card = s.cards.get(str(order.get("biz_card_no")))
        if order.get("kind") == "delete" and card is not None:
            card["status"] = "DELETED"
        sent, notify_id = signed_notify(s.users, s.seed, s.sign, order.get("kind", "open"), card)
        async with httpx.AsyncClient(timeout=20) as client:
            answer = await client.post(order["url"], content=sent.body, headers=dict(sent.headers))
        return JSONResponse({"status": answer.status_code, "body": answer.text, "notify_id": notify_id})

    async def faults(request: Request) -> Response:
        s.faults = Faults(**json.loads(await request.body()))
        return JSONResponse(asdict(s.faults))

    async def cards(request: Request) -> Response:
        return JSONResponse(s.cards)

    async def stats(request: Request) -> Response:
        return JSONResponse(s.stats)

    app = Starlette(routes=[
        Route("/gateway.do", gateway, methods=["GET", "POST"]),
        Route("/", gateway, methods=["GET", "POST"]),
        Route("/_admin/activate", activate, methods=["POST"]),
        Route("/_admin/activate_all", activate_all, methods=["POST"]),
        Route("/_admin/form", form, methods=["POST"]),
        Route("/_admin/notify", notify, methods=["POST"]),
        Route("/_admin/faults", faults, methods=["POST"]),
        Route("/_admin/cards", cards),
        Route("/_admin/stats", stats),
    ])
    app.state.sandbox = s
    return app


def make_sandbox(seed: int, fans: int, base_url: str, *, people: hub.Population | None = None) -> hub.SandboxSpec:
    """The ``siyu sandbox alipay`` factory: fresh key pairs (written to files the account names),
    ``fans`` users ready to open the card, or the card holders among shared ``people`` (each opens
    the card through ``POST /_admin/activate {"url": …, "user": n}``, ``n`` their place in
    ``sandbox.users``; their form shows their phone)."""
    keys = generate_keys()
    if people is None:
        s = Sandbox(seed=seed, keys=keys, base_url=base_url, users=population(seed, max(1, fans)))
    else:
        holders = card_holders(seed, people) or [make_user(seed, len(people))]
        s = Sandbox(seed=seed, keys=keys, base_url=base_url, users=holders, user_base=len(people) + 1)
    account = {"platform": "alipay", "id": "brand", "base_url": f"{base_url}/gateway.do", "app_id": APP_ID,
               "app_private_key": f"file:{keys.app_private_key_file}",
               "alipay_public_key": f"file:{keys.alipay_public_key_file}", "card_template_id": TEMPLATE_ID}
    return hub.SandboxSpec(app=make_app(s), account=account, sample_webhook=lambda: signed_notify(s.users, s.seed, s.sign, "open", None)[0])
