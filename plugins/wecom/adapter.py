"""The WeCom adapter: customers (external contacts), mass-send and welcome messages, callbacks,
and member-card push-back to a 公众号.

Wire facts and their sources: ``shared/platforms/wecom-douyin.md`` part A and
``docs/platforms/wecom.md``; the protocol as data is :mod:`plugins.wecom.wire`, the tokens
:mod:`plugins.wecom.auth`, the records :mod:`plugins.wecom.mapping`, the callbacks
:mod:`plugins.wecom.webhooks`.  The methods here make the HTTP calls and hand the answers on.

**Fans.**  ``get_follow_user_list`` → chunks of ≤100 staff → ``batch/get_by_user`` (≤100
relations a call) until ``next_cursor`` is empty.  A full pass costs one call per 100 relations
plus a token, the staff list and the tag list: about 10 calls per 1,000 customers.  A page holds
one item per (customer, staff member); the hub merges a customer's relations across pages by
``staff_id``.  ``complete_follows = true`` reads each customer on a page whole with
``externalcontact/get`` instead (one more call per customer), for fans whose every field
(``tags``, ``followed_at``) is written at once.

**Member cards.**  WeCom has no points or membership API (research file A5), so a brand whose
member card lives in a 公众号 configures that 公众号 (``mp_app_id``, ``mp_app_secret``, ``card_id``).
The push sends ``bonus`` (the new total the card shows) with ``add_bonus = 0`` (used only in the
notification text), so sending the same card twice leaves it as the first send did.  The
公众号 token is the account's second credential ``"mp"`` (:class:`plugins.wecom.auth.WeComMpAuth`).
"""

from __future__ import annotations

import asyncio
import bisect
import json
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

import hub
from hub import response_json
from plugins.wecom import webhooks
from plugins.wecom.auth import MP_KEYS, WeComAuth, WeComMpAuth, missing_mp_error, missing_mp_keys, mp_url
from plugins.wecom.mapping import TagNames, fan_from_contact, fan_from_page, group_pairs
from plugins.wecom.wire import ERROR_CODES, PATHS, PER_CORP_PER_MINUTE, corp_error, is_aes_key
from schemas import Account, Fan, MemberCard, Message, Record

__all__ = ["ADD_BONUS", "WeComAdapter"]

ADD_BONUS = 0
"""The hub's card carries only the new total, so the delta is not known honestly: 0.  The
research file says ``add_bonus`` only feeds the notification text; ``bonus`` sets the total."""

Customer = tuple[Mapping[str, Any], list[Mapping[str, Any]]]


def _cursor(start: str, platform_cursor: str) -> str:
    return json.dumps({"u": start, "c": platform_cursor}, ensure_ascii=False, separators=(",", ":"))


def _equals(value: Any, expected: int) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return int(value) == expected
    except (TypeError, ValueError):
        return False


class WeComAdapter(hub.Adapter):
    """A corp's customers (external contacts) as fans, messages to them, callbacks, member cards."""

    platform = "wecom"
    default_base_url = "https://qyapi.weixin.qq.com"
    capabilities = frozenset({hub.Capability.FANS, hub.Capability.MESSAGES, hub.Capability.WEBHOOKS,
                              hub.Capability.CARDS})
    """``cards`` means the adapter *can* push; an account needs the 公众号 keys to do it."""
    error_codes = ERROR_CODES
    rate_limits = {path: (PER_CORP_PER_MINUTE, 60.0) for key, path in PATHS.items() if key != "token"}
    auth_class = WeComAuth
    credentials = {"mp": WeComMpAuth}
    sandbox = "plugins.wecom.sandbox:make_sandbox"

    class Config(hub.AdapterConfig):
        """One corp + self-built app (with 客户联系 rights), its callback settings and, optionally,
        the 公众号 that holds the brand's member card."""

        corp_id: str = Field(min_length=1)
        secret: SecretStr
        agent_id: int | None = None
        token: SecretStr | None = Field(default=None, description="callback Token")
        encoding_aes_key: SecretStr | None = Field(default=None, description="callback EncodingAESKey (43 chars)")
        chunk_size: int = Field(default=100, ge=1, le=100, description="userids per batch/get_by_user call")
        page_size: int = Field(default=100, ge=1, le=100, description="batch/get_by_user `limit`")
        complete_follows: bool = Field(
            default=False,
            description="read each customer on a page whole with externalcontact/get (one more call per "
                        "customer), so that fields summing up every relation (tags, followed_at) are written")
        detail_concurrency: int = Field(default=8, ge=1, le=64)
        callback_max_age: int = Field(default=300, ge=0, description="reject callbacks older than this (s); 0: off")
        mp_app_id: str | None = Field(default=None, min_length=1, description="the 公众号's AppID")
        mp_app_secret: SecretStr | None = Field(default=None, description="the 公众号's AppSecret")
        card_id: str | None = Field(default=None, min_length=1, description="the member card's card_id")
        mp_base_url: str = Field(default="https://api.weixin.qq.com", min_length=1)
        record_bonus: str = Field(default="积分同步", min_length=1, max_length=14,
                                  description="the bonus record shown to the member (≤14 characters)")

        @field_validator("encoding_aes_key")
        @classmethod
        def _aes_key_format(cls, value: SecretStr | None) -> SecretStr | None:
            if value is not None and not is_aes_key(value.get_secret_value()):
                raise ValueError("encoding_aes_key must be the 43 base64 characters (A-Z a-z 0-9 + /) "
                                 "the admin console shows")
            return value

        @model_validator(mode="after")
        def _mp_keys_together(self) -> WeComAdapter.Config:
            missing = missing_mp_keys(self)
            if 0 < len(missing) < len(MP_KEYS):
                raise ValueError(f"member-card push-back needs {', '.join(MP_KEYS)} together; "
                                 f"missing {', '.join(missing)}")
            return self

    def __init__(self, *, config: hub.AdapterConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config=config, client=client)
        self._staff: list[str] | None = None
        self._tags: dict[str, str] | None = None

    # -- plumbing --------------------------------------------------------------------------

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None:
        return corp_error(response, self.platform)

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

    async def customer(self, external_userid: str) -> Customer:
        """``externalcontact/get``: the customer and every staff relation (paged past 500)."""
        contact: Mapping[str, Any] = {}
        follows: list[Mapping[str, Any]] = []
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
        whole = self.config.complete_follows
        names = await self.tag_names(refresh=fresh) if whole else {}
        state = json.loads(cursor) if cursor else {"u": staff[0] if staff else "", "c": ""}
        start = bisect.bisect_left(staff, state["u"])
        chunk = staff[start:start + self.config.chunk_size]
        if not chunk:
            return hub.Page(items=[], next_cursor=None)
        body = await self._post("batch", {"userid_list": chunk, "cursor": state["c"], "limit": self.config.page_size})
        grouped = group_pairs(body.get("external_contact_list") or [])
        if whole:
            read = await self._complete(grouped)
            fans = [fan_from_contact(account.account_id, contact, follows, names, platform=self.platform)
                    for contact, follows in read.values()]
        else:
            fans = Fan.many(fan_from_page(account.account_id, contact, follows, platform=self.platform)
                            for contact, follows in grouped.values())
        platform_cursor = body.get("next_cursor") or ""
        if platform_cursor:
            following: str | None = _cursor(chunk[0], platform_cursor)
        elif start + len(chunk) < len(staff):
            following = _cursor(staff[start + len(chunk)], "")
        else:
            following = None
        return hub.Page(items=fans, next_cursor=following)

    async def _complete(self, grouped: dict[str, Customer]) -> dict[str, Customer]:
        gate = asyncio.Semaphore(self.config.detail_concurrency)

        async def one(uid: str) -> Customer:
            async with gate:
                try:
                    contact, follows = await self.customer(uid)
                except hub.PermanentError as exc:
                    if exc.code in webhooks.GONE:  # gone since the batch call: keep what it said
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
        """Set the 公众号 member card's ``bonus`` to ``card.balance`` (see the module docstring).

        :raises hub.PlatformConfigError: the account lacks ``mp_app_id``/``mp_app_secret``/``card_id``
            (nothing is sent).
        """
        config: Any = self.config
        missing = missing_mp_keys(config)
        if missing:
            raise missing_mp_error(missing, account.account_id)
        if not card.card_no:
            return hub.PushResult(accepted=False, detail="the member has no card code (card_no) on this account")
        body = {"code": card.card_no, "card_id": config.card_id, "bonus": card.balance, "add_bonus": ADD_BONUS,
                "record_bonus": config.record_bonus}
        response = await self.client.post(mp_url(config, "update"), json=body, auth=self.credential("mp"))
        answer = response_json(response, platform=self.platform, account_id=account.account_id)
        shown = answer.get("result_bonus") if isinstance(answer, dict) else None
        if not _equals(shown, card.balance):
            return hub.PushResult(accepted=False, detail=f"the 公众号 answered result_bonus={shown!r}, "
                                                         f"not the bonus sent ({card.balance})")
        return hub.PushResult(accepted=True, detail=f"the card shows {card.balance} points")

    # -- callbacks -------------------------------------------------------------------------

    async def parse_webhook(self, account: Account, request: hub.WebhookRequest) -> hub.WebhookResult:
        """Verify, decrypt and read a callback (no call out); see :mod:`plugins.wecom.webhooks`."""
        return await webhooks.parse(self.config, account, request, platform=self.platform)

    async def complete_webhook(self, account: Account, follow_up: Mapping[str, Any]) -> list[Record]:
        """Read the customer a stored contact change names (``externalcontact/get``)."""
        return await webhooks.complete(account, follow_up, read_customer=self.customer, tag_names=self.tag_names,
                                       platform=self.platform)
