"""The WeCom adapter: customers (external contacts), mass-send and welcome messages, callbacks.

Wire facts and their sources: ``shared/platforms/wecom-douyin.md`` part A and
``docs/platforms/wecom.md``.  Every call carries ``access_token`` in the query string; every
answer carries ``errcode`` (0 = OK) and ``errmsg``, checked even on HTTP 200.

Member-card push-back goes to a 公众号 with its own token: see :mod:`plugins.wecom.cards`.
"""

from __future__ import annotations

import asyncio
import bisect
import json
from collections.abc import Mapping
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from pydantic import Field, SecretStr, model_validator

import hub
from hub import Token, TokenAuth, TokenStore, expires_in
from hub import check_response, response_json
from plugins.wecom import callbacks, cards
from plugins.wecom.errors import CAUSES, ERROR_CODES, MP_CAUSE, MP_TOKEN_CAUSE, mp_key
from plugins.wecom.mapping import TagNames, fan_from_contact
from schemas import Account, Fan, MemberCard, Message

__all__ = ["PATHS", "WeComAdapter", "WeComAuth"]

PATHS = {
    "token": "/cgi-bin/gettoken",
    "follow_users": "/cgi-bin/externalcontact/get_follow_user_list",
    "batch": "/cgi-bin/externalcontact/batch/get_by_user",
    "detail": "/cgi-bin/externalcontact/get",
    "tags": "/cgi-bin/externalcontact/get_corp_tag_list",
    "mass_send": "/cgi-bin/externalcontact/add_msg_template",
    "welcome": "/cgi-bin/externalcontact/send_welcome_msg",
}
"""Every path the adapter calls, relative to the base URL."""

PER_CORP_PER_MINUTE = 10_000.0
"""Doc 90454 (2023-08-28): each API, per corp, 10,000 calls a minute (and 150,000 an hour)."""


class WeComAuth(TokenAuth):
    """``GET /cgi-bin/gettoken?corpid=&corpsecret=`` → ``access_token`` (normally 7200 s).

    Requests to the account's 公众号 endpoints (member cards) are handed to a second flow,
    :class:`plugins.wecom.cards.WeComMpAuth` (``self.mp``), with its own token, lock and store key;
    the two tokens never meet.
    """

    def __init__(self, adapter: hub.Adapter, store: TokenStore, account_id: str) -> None:
        super().__init__(adapter, store, account_id)
        self.mp = cards.WeComMpAuth(adapter, store, account_id)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if cards.mp_endpoint(self.adapter.config, request.url) is None:
            flow = super().async_auth_flow(request)
        else:
            flow = self.mp.async_auth_flow(request)
        try:  # relay every request and response between httpx and the chosen flow
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        finally:
            await flow.aclose()  # releases the flow's refresh lock if httpx stops early

    def build_token_request(self, current: Token | None) -> httpx.Request:
        config = self.adapter.config
        return self.adapter.client.build_request("GET", PATHS["token"], params={
            "corpid": config.corp_id, "corpsecret": config.secret.get_secret_value()})

    def parse_token(self, response: httpx.Response, current: Token | None) -> Token:
        check_response(self.adapter, response, account_id=self.account_id)
        body = response_json(response, platform=self.adapter.platform, account_id=self.account_id)
        try:
            return Token(access_token=body["access_token"], expires_at=expires_in(int(body["expires_in"])))
        except (KeyError, TypeError, ValueError):
            raise hub.PermanentError("gettoken answered without access_token/expires_in", platform="wecom",
                                     account_id=self.account_id, endpoint=PATHS["token"]) from None

    def apply(self, request: httpx.Request, token: Token) -> None:
        request.url = request.url.copy_merge_params({"access_token": token.access_token})


def _cursor(start: str, platform_cursor: str) -> str:
    return json.dumps({"u": start, "c": platform_cursor}, ensure_ascii=False, separators=(",", ":"))


class WeComAdapter(hub.Adapter):
    """A corp's customers (external contacts) as fans, messages to them, and their callbacks."""

    platform = "wecom"
    default_base_url = "https://qyapi.weixin.qq.com"
    capabilities = frozenset({hub.Capability.FANS, hub.Capability.MESSAGES, hub.Capability.WEBHOOKS,
                              hub.Capability.CARDS})
    """``cards`` means the adapter *can* push; an account needs the 公众号 keys to do it."""
    error_codes = ERROR_CODES
    rate_limits = {path: (PER_CORP_PER_MINUTE, 60.0) for key, path in PATHS.items() if key != "token"}
    auth_class = WeComAuth
    sandbox = "plugins.wecom.sandbox:make_sandbox"

    class Config(hub.AdapterConfig):
        """One corp + self-built app (with 客户联系 rights) and its callback settings."""

        corp_id: str = Field(min_length=1)
        secret: SecretStr
        agent_id: int | None = None
        token: SecretStr | None = Field(default=None, description="callback Token")
        encoding_aes_key: SecretStr | None = Field(default=None, description="callback EncodingAESKey (43 chars)")
        chunk_size: int = Field(default=100, ge=1, le=100, description="userids per batch/get_by_user call")
        page_size: int = Field(default=100, ge=1, le=100, description="batch/get_by_user `limit`")
        complete_follows: bool = Field(
            default=True,
            description="fetch externalcontact/get for each customer on a page, so that a customer "
                        "followed by several staff is written with all its relations at once")
        detail_concurrency: int = Field(default=8, ge=1, le=64)
        callback_max_age: int = Field(default=300, ge=0, description="reject callbacks older than this (s); 0: off")
        # member-card push-back, optional: the 公众号 that holds the brand's member card
        mp_app_id: str | None = Field(default=None, min_length=1, description="the 公众号's AppID")
        mp_app_secret: SecretStr | None = Field(default=None, description="the 公众号's AppSecret")
        card_id: str | None = Field(default=None, min_length=1, description="the member card's card_id")
        mp_base_url: str = Field(default="https://api.weixin.qq.com", min_length=1)
        record_bonus: str = Field(default="积分同步", min_length=1, max_length=14,
                                  description="the bonus record shown to the member (≤14 characters)")

        @model_validator(mode="after")
        def _mp_keys_together(self) -> WeComAdapter.Config:
            missing = cards.missing_keys(self)
            if 0 < len(missing) < len(cards.MP_KEYS):
                raise ValueError(f"member-card push-back needs {', '.join(cards.MP_KEYS)} together; "
                                 f"missing {', '.join(missing)}")
            return self

    def __init__(self, *, config: hub.AdapterConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config=config, client=client)
        self._staff: list[str] | None = None
        self._tags: dict[str, str] | None = None

    # -- plumbing --------------------------------------------------------------------------

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None:
        body = response_json(response, platform=self.platform)
        if not isinstance(body, dict):
            return None
        code = body.get("errcode", 0)
        if code in (0, None):
            return None
        endpoint = cards.mp_endpoint(self.config, response.request.url)
        if endpoint is not None:  # a 公众号 code: its own table keys (plugins.wecom.errors)
            key = mp_key(code, token_endpoint=endpoint == "token")
            return key, CAUSES.get(key, MP_TOKEN_CAUSE if endpoint == "token" else MP_CAUSE)
        return code, CAUSES.get(code, "WeCom refused the call")

    async def _get(self, key: str, **params: Any) -> dict[str, Any]:
        response = await self.client.get(PATHS[key], params=params)
        return response_json(response, platform=self.platform)  # type: ignore[no-any-return]

    async def _post(self, key: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = await self.client.post(PATHS[key], json=body)
        return response_json(response, platform=self.platform)  # type: ignore[no-any-return]

    async def follow_users(self, *, refresh: bool = False) -> list[str]:
        """The staff with customer contact enabled, sorted (cached until a fresh pass)."""
        if self._staff is None or refresh:
            body = await self._get("follow_users")
            self._staff = sorted(set(body.get("follow_user") or []))
        return self._staff

    async def tag_names(self, *, refresh: bool = False) -> TagNames:
        """Corp tag id → name, from ``get_corp_tag_list`` (cached until a fresh pass)."""
        if self._tags is None or refresh:
            body = await self._post("tags", {})
            self._tags = {str(tag["id"]): tag.get("name", "")
                          for group in body.get("tag_group") or [] for tag in group.get("tag") or []}
        return self._tags

    async def customer(self, external_userid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``externalcontact/get``: the customer and every staff relation (paged past 500)."""
        contact: dict[str, Any] = {}
        follows: list[dict[str, Any]] = []
        cursor = ""
        while True:
            params = {"external_userid": external_userid}
            if cursor:
                params["cursor"] = cursor
            body = await self._get("detail", **params)
            contact = body.get("external_contact") or contact
            follows += body.get("follow_user") or []
            cursor = body.get("next_cursor") or ""
            if not cursor:
                return contact, follows

    # -- fans ------------------------------------------------------------------------------

    async def fetch_fans(self, account: Account, cursor: str | None) -> hub.Page[Fan]:
        """One ``batch/get_by_user`` page for one chunk of ≤100 staff; the cursor names the chunk
        by its first userid and carries the platform's ``next_cursor`` inside it."""
        fresh = cursor is None
        staff = await self.follow_users(refresh=fresh)
        names = await self.tag_names(refresh=fresh)
        state = json.loads(cursor) if cursor else {"u": staff[0] if staff else "", "c": ""}
        start = bisect.bisect_left(staff, state["u"])
        chunk = staff[start:start + self.config.chunk_size]
        if not chunk:
            return hub.Page(items=[], next_cursor=None)
        body = await self._post("batch", {"userid_list": chunk, "cursor": state["c"], "limit": self.config.page_size})
        grouped: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        for entry in body.get("external_contact_list") or []:
            contact = entry["external_contact"]
            grouped.setdefault(contact["external_userid"], (contact, []))[1].append(entry["follow_info"])
        if self.config.complete_follows:
            grouped = await self._complete(grouped)
        fans = [fan_from_contact(account.account_id, contact, follows, names)
                for contact, follows in grouped.values()]
        platform_cursor = body.get("next_cursor") or ""
        if platform_cursor:
            following: str | None = _cursor(chunk[0], platform_cursor)
        elif start + len(chunk) < len(staff):
            following = _cursor(staff[start + len(chunk)], "")
        else:
            following = None
        return hub.Page(items=fans, next_cursor=following)

    async def _complete(
        self, grouped: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]
    ) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
        gate = asyncio.Semaphore(self.config.detail_concurrency)

        async def one(uid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            async with gate:
                try:
                    contact, follows = await self.customer(uid)
                except hub.PermanentError as exc:
                    if exc.code in (84061, 40096):  # gone since the batch call: keep what it said
                        return grouped[uid]
                    raise
            return (contact or grouped[uid][0]), follows

        results = await asyncio.gather(*(one(uid) for uid in grouped))
        return {uid: result for uid, result in zip(grouped, results, strict=True) if result[1]}

    # -- messages --------------------------------------------------------------------------

    async def send_message(self, account: Account, message: Message) -> hub.PushResult:
        """A welcome message (``body["welcome_code"]`` from an add event) or a mass-send task.

        ``body``: ``content`` (text), optional ``sender`` (a staff userid), ``attachments``
        (WeCom's own attachment objects) and ``welcome_code``.

        A mass send (``add_msg_template``) does **not** send anything: it creates a task that
        each sender confirms in the WeCom client.  The result says so, with the task's msgid.
        """
        body = message.body
        text = {"content": str(body.get("content", ""))}
        attachments = list(body.get("attachments") or [])
        if body.get("welcome_code"):
            payload: dict[str, Any] = {"welcome_code": body["welcome_code"], "text": text}
            if attachments:
                payload["attachments"] = attachments
            await self._post("welcome", payload)
            return hub.PushResult(accepted=True, detail="welcome message sent")
        if not message.fan_uid:
            raise hub.PermanentError("a mass send needs the customer's external_userid (fan_uid)",
                                     platform=self.platform, account_id=account.account_id)
        payload = {"chat_type": "single", "external_userid": [message.fan_uid], "text": text}
        if body.get("sender"):
            payload["sender"] = body["sender"]
        if attachments:
            payload["attachments"] = attachments
        answer = await self._post("mass_send", payload)
        failed = list(answer.get("fail_list") or [])
        msgid = answer.get("msgid")
        detail = (f"mass-send task {msgid} created: nothing is sent until each sender confirms it in the "
                  f"WeCom client; {len(failed)} recipient(s) in fail_list")
        return hub.PushResult(accepted=message.fan_uid not in failed, reference=msgid, detail=detail)

    # -- member cards ----------------------------------------------------------------------

    async def push_card(self, account: Account, card: MemberCard) -> hub.PushResult:
        """Show ``card.balance`` as the 公众号 member card's bonus; see :mod:`plugins.wecom.cards`."""
        return await cards.push_card(self, account, card)

    # -- callbacks -------------------------------------------------------------------------

    async def parse_webhook(self, account: Account, request: hub.WebhookRequest) -> hub.WebhookResult:
        """Verify, decrypt and read a callback; see :mod:`plugins.wecom.callbacks`."""
        return await callbacks.parse(self, account, request)
