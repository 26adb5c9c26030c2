"""The Douyin (抖音开放平台) adapter: fans, private messages, callbacks and 来客 member points.

Every call carries the business account's user token in the ``access-token`` header (the 来客
member API takes the app's ``client_token`` instead, see :class:`Config.member_token`) and, for
user-scoped APIs, the account's ``open_id`` in the query string.  Every answer passes through
:func:`plugins.douyin.wire.envelope_error` before the adapter reads it.  Capability methods stay
thin: the HTTP call, then :mod:`plugins.douyin.mapping` builds the records (or the request body).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import AwareDatetime, Field, SecretStr

import hub
from hub import response_json
from plugins.douyin.auth import ClientTokenAuth, DouyinAuth
from plugins.douyin.mapping import fans, member_update, message_content
from plugins.douyin.webhooks import parse_callback
from plugins.douyin.wire import (
    ERROR_CODES,
    FANS_CAP,
    MEMBER_BATCH,
    PATHS,
    RENEWAL_LIMIT,
    as_bool,
    as_int,
    cause,
    envelope_error,
)
from schemas import Account, Fan, MemberCard, Message

__all__ = ["DouyinAdapter"]


def _split_cursor(cursor: str | None) -> tuple[int, int]:
    """Our cursor is ``"<Douyin cursor>:<fans read so far>"``; ``None`` starts at Douyin's 0."""
    if not cursor:
        return 0, 0
    head, _, seen = cursor.partition(":")
    return as_int(head), as_int(seen)


class DouyinAdapter(hub.Adapter):
    """Douyin 企业号: fans list, private messages, webhooks and 来客 member cards."""

    platform = "douyin"
    default_base_url = "https://open.douyin.com"
    capabilities = frozenset({hub.Capability.FANS, hub.Capability.MESSAGES, hub.Capability.WEBHOOKS,
                              hub.Capability.CARDS})
    error_codes = ERROR_CODES
    auth_class = DouyinAuth
    credentials = {"client": ClientTokenAuth}
    sandbox = "plugins.douyin.sandbox:make_sandbox"

    class Config(hub.GrantConfig):
        """An enterprise account (企业号) authorised to a Douyin app."""

        client_key: str = Field(min_length=1)
        client_secret: SecretStr
        open_id: str = Field(min_length=1, description="the enterprise account's open_id")
        access_token: SecretStr = Field(description="the user token (act.…) from authorising the app")
        refresh_token: SecretStr = Field(description="the refresh token (rft.…) that came with it")
        refresh_token_expires_at: AwareDatetime | None = Field(
            default=None, description="when the configured refresh token expires; unknown: learnt from the "
                                      "first refresh answer (refresh_expires_in)")
        renewals_used: int = Field(default=0, ge=0, le=RENEWAL_LIMIT,
                                   description="renewals already spent on this authorisation")
        renew_within_days: float = Field(
            default=16.0, gt=0, lt=30, description="renew the refresh token only when it has less than this left")
        warn_renewals_left: int = Field(default=1, ge=0, le=RENEWAL_LIMIT)
        life_account_id: str | None = Field(default=None, description="the 来客 merchant id, for member cards")
        member_token: Literal["client", "user"] = "client"
        level_offset: int = Field(default=1, description="Douyin user_level = hub level + this, within 1..10")
        page_size: int = Field(default=20, ge=1, le=1000)
        reply_scene: str = "im_reply_msg"
        reply_window_hours: float | None = Field(default=24.0, gt=0)
        verify_challenge_signature: bool = True
        fans_list_path: str = PATHS["fans_list"]
        im_send_path: str = PATHS["im_send"]
        member_update_path: str = PATHS["member_update"]
        refresh_token_path: str = PATHS["refresh_token"]
        renew_refresh_token_path: str = PATHS["renew_refresh_token"]
        client_token_path: str = PATHS["client_token"]

    # -- envelope -----------------------------------------------------------------------------

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None:
        body = response_json(response, platform=self.platform)  # not JSON on a 4xx/5xx: the status decides
        found = envelope_error(body)
        return None if found is None else (found[0], cause(*found))

    def _data(self, response: httpx.Response) -> dict[str, Any]:
        body = response_json(response, platform=self.platform)
        data = body.get("data") if isinstance(body, dict) else None
        return data if isinstance(data, dict) else {}

    # -- fans ---------------------------------------------------------------------------------

    async def fetch_fans(self, account: Account, cursor: str | None) -> hub.Page[Fan]:
        config = self.config
        position, seen = _split_cursor(cursor)
        response = await self.client.get(
            config.fans_list_path, params={"open_id": config.open_id, "cursor": position, "count": config.page_size})
        data = self._data(response)
        page = fans(account, data.get("list") or ())
        seen += len(page)
        total = as_int(data.get("total"), default=-1)
        notes: tuple[str, ...] = ()
        if total > FANS_CAP or seen >= FANS_CAP:
            count = f"{total:,}" if total >= 0 else "more than 5,000"
            notes = (f"douyin {account.account_id}: Douyin lists at most {FANS_CAP:,} fans (this account has "
                     f"{count}); the others reach the hub only through follow, message and member webhooks",)
        if not as_bool(data.get("has_more")):
            return hub.Page(items=page, next_cursor=None, notes=notes)
        following = as_int(data.get("cursor"))
        if following == position and not page:
            raise hub.PermanentError("fans list: has_more without a new cursor", platform=self.platform,
                                     account_id=account.account_id, endpoint=config.fans_list_path)
        return hub.Page(items=page, next_cursor=f"{following}:{seen}", notes=notes)

    # -- private messages ---------------------------------------------------------------------

    def _refusal(self, message: Message) -> str | None:
        """Why the message cannot be sent as a reply, checked before calling Douyin."""
        if not message.fan_uid or not message.conversation_id:
            return "a Douyin reply needs the fan's open_id (fan_uid) and the conversation id"
        scene = message.body.get("scene") or self.config.reply_scene
        if scene.startswith("im_repl") and not message.body.get("reply_to"):
            return "a reply needs body.reply_to: the server_message_id of the fan's message"
        window, at = self.config.reply_window_hours, message.body.get("reply_to_at")
        if window is not None and at:
            received = datetime.fromisoformat(str(at))
            if received.tzinfo is None:
                return "body.reply_to_at must carry its time zone"
            if datetime.now(UTC) - received > timedelta(hours=window):
                return f"the fan wrote more than {window:g} h ago: outside the reply window"
        return None

    async def send_message(self, account: Account, message: Message) -> hub.PushResult:
        refusal = self._refusal(message)
        if refusal is None:
            try:
                content = message_content(message)
            except ValueError as exc:
                refusal = str(exc)
        if refusal is not None:
            return hub.PushResult(accepted=False, detail=refusal)
        payload = {"msg_id": str(message.body.get("reply_to") or ""), "conversation_id": message.conversation_id,
                   "to_user_id": message.fan_uid, "content": content,
                   "scene": message.body.get("scene") or self.config.reply_scene}
        try:
            response = await self.client.post(self.config.im_send_path, params={"open_id": self.config.open_id},
                                              json=payload)
        except hub.PermanentError as exc:  # Douyin looked at the message and said no
            return hub.PushResult(accepted=False, detail=f"Douyin refused the message: {exc}")
        body = response_json(response, platform=self.platform)
        reference = body.get("msg_id") or self._data(response).get("msg_id")
        return hub.PushResult(accepted=True, reference=str(reference) if reference else None)

    # -- 来客 member cards -----------------------------------------------------------------

    def _member_auth(self) -> Any:
        if self.config.member_token == "user":
            return httpx.USE_CLIENT_DEFAULT
        return self.credential("client")

    async def update_members(self, account: Account, cards: Sequence[MemberCard]) -> list[hub.PushResult]:
        """Push absolute balances and levels in batches of at most five; one result per card.

        Sending a card again sends the same totals, so a retry changes nothing on Douyin.

        :param account: the account whose 来客 merchant the members belong to.
        :param cards: the cards; ``card_no`` is the member's Douyin open_id.
        """
        merchant = self.config.life_account_id
        if not merchant:
            raise hub.PlatformConfigError("life_account_id is not configured: member cards cannot be updated",
                                          platform=self.platform, account_id=account.account_id)
        results: dict[int, hub.PushResult] = {}
        sendable = []
        for i, card in enumerate(cards):
            if card.card_no:
                sendable.append((i, card))
            else:
                results[i] = hub.PushResult(accepted=False, detail="the card has no Douyin open_id (card_no)")
        for start in range(0, len(sendable), MEMBER_BATCH):
            batch = sendable[start:start + MEMBER_BATCH]
            now = int(time.time())
            members = [member_update(card, level_offset=self.config.level_offset, now=now) for _, card in batch]
            body = {"account_id": merchant, "members": members}
            response = await self.client.post(self.config.member_update_path, json=body,
                                              auth=self._member_auth())
            reference = (response_json(response, platform=self.platform).get("extra") or {}).get("logid")
            for i, _ in batch:
                results[i] = hub.PushResult(accepted=True, reference=str(reference) if reference else None)
        return [results[i] for i in range(len(cards))]

    async def push_card(self, account: Account, card: MemberCard) -> hub.PushResult:
        [result] = await self.update_members(account, [card])
        return result

    # -- callbacks ----------------------------------------------------------------------------

    async def parse_webhook(self, account: Account, request: hub.WebhookRequest) -> hub.WebhookResult:
        return parse_callback(account, request, client_secret=self.config.client_secret.get_secret_value(),
                              own_open_id=self.config.open_id,
                              verify_challenge=self.config.verify_challenge_signature)
