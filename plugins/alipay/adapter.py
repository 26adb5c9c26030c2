"""The Alipay (支付宝开放平台) adapter: 商家会员卡 opened from the activation form, the unified
balance pushed to them, card holders read back, and asynchronous notifies.

Every call is a signed ``gateway.do`` method (:mod:`plugins.alipay.auth`); every answer's
signature is verified with Alipay's public key in :meth:`AlipayAdapter.error_code`, which the
hub's client calls for every response before the adapter reads it, so an answer that does not
verify is an error and never trusted.

Opening a card (the documented flow), in three steps that never keep the shopper waiting on
Alipay:

1. Alipay sends the shopper's browser to our activation callback, ``GET
   /webhooks/alipay/<account>?auth_code=…&request_id=…``.  :meth:`parse_webhook` calls nothing:
   it stores the code (sealed) as the callback's follow-up, keyed by the code's hash, and answers
   a page.
2. :meth:`complete_webhook` (after the answer; retried while Alipay is down) exchanges the code
   (``alipay.system.oauth.token``, once however often it runs: the user's token is kept in the
   token store), reads the form (``activateform.query``, for the phone) and returns one fan: keyed
   by ``open_id``, with the phone (kept as its keyed hash) and an active card still to be opened
   (``open-pending:<open_id>``).  The hub stitches the fan with the same person's WeCom and Douyin
   fans, makes the card the member's and queues the member's unified balance for it in the same
   transaction.
3. :meth:`push_card` of a pending card opens it (``card.open`` with the user's token,
   ``external_card_no`` = the member id, ``point`` and ``level`` = the member's) and returns its
   ``biz_card_no``, which the hub records on the member card.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import httpx
from pydantic import Field, SecretStr, field_validator

import hub
from plugins.alipay.auth import AlipaySigner, AppAuthToken, UserTokens, code_key, open_code, seal_code, user_token
from plugins.alipay.mapping import (
    CardHolder,
    activation_fan,
    card_holder,
    card_info,
    card_user_info,
    form_values,
    open_ext_info,
    out_serial_no,
    pending_holder,
    uid_user,
    user_key,
)
from plugins.alipay.webhooks import ACTIVATION, parse_activation, parse_notify
from plugins.alipay.wire import (
    ERROR_CODES,
    METHODS,
    TIMESTAMP_FORMAT,
    GatewayReply,
    MalformedResponse,
    SignatureMismatch,
    biz_json,
    error_key,
    load_private_key,
    load_public_key,
    read_response,
    shanghai_timestamp,
)
from schemas import Account, MemberCard, Record

__all__ = ["AlipayAdapter"]

log = logging.getLogger("siyu.alipay")
SPENT_TOKEN = frozenset({"aop.invalid-auth-token", "aop.auth-token-time-out"})
"""Sub_codes of a user's token that is used up or expired: refreshed once when it can be."""
REFUSED_CODE_GRACE = 600
"""Seconds after the callback during which a refused ``auth_code`` keeps it pending rather than
ending it: a copy of the follow-up running at the same time (another process) may have exchanged
the code, and the next attempt then finds the token it stored."""


class AlipayAdapter(hub.Adapter):
    """Alipay 商家会员卡: activation-form card opening, balance push-back, card notifies."""

    platform = "alipay"
    default_base_url = "https://openapi.alipay.com/gateway.do"
    capabilities = frozenset({hub.Capability.CARDS, hub.Capability.WEBHOOKS})
    error_codes = ERROR_CODES
    auth_class = AlipaySigner
    credentials = {"merchant": AppAuthToken}
    sandbox = "plugins.alipay.sandbox:make_sandbox"

    class Config(hub.AdapterConfig):
        """An Alipay app (自研 or a service provider's app acting for a merchant) and its card template."""

        app_id: str = Field(min_length=1)
        app_private_key: SecretStr = Field(description="RSA2 app private key: PEM (PKCS#1 or PKCS#8) or base64")
        alipay_public_key: str = Field(min_length=1, description="Alipay's public key (支付宝公钥), PEM or base64")
        card_template_id: str = Field(min_length=1)
        app_auth_token: SecretStr | None = Field(default=None, description="a merchant's token (service provider)")
        phone_field: str = "OPEN_FORM_FIELD_MOBILE"
        read_form: bool = Field(default=True, description="call activateform.query (the template asks for a phone)")
        level_names: list[str] = Field(default_factory=list, description="the template's level for hub level 0, 1, …")
        notify_point_update: bool = True
        point_change_reason: str = Field(default="会员积分同步", min_length=1, max_length=64)
        valid_date: str = Field(default="2099-12-31 23:59:59", description="card_ext_info.valid_date on open")
        activation_done_url: str | None = Field(default=None, description="a link on the page after activation")
        notify_versions: list[str] = Field(default_factory=lambda: ["1.0"])
        notify_v2_kinds: list[str] = Field(default_factory=list, description="kinds verified by rule V2")
        card_open_notify_kinds: list[str] = Field(default_factory=lambda: ["alipay.user.opencard.result.notify"])
        card_delete_notify_kinds: list[str] = Field(
            default_factory=lambda: ["alipay.marketing.card.delete.notify"])

        @field_validator("app_private_key")
        @classmethod
        def _private_key_parses(cls, value: SecretStr) -> SecretStr:
            load_private_key(value.get_secret_value())
            return value

        @field_validator("alipay_public_key")
        @classmethod
        def _public_key_parses(cls, value: str) -> str:
            load_public_key(value)
            return value

        @field_validator("valid_date")
        @classmethod
        def _valid_date_format(cls, value: str) -> str:
            datetime.strptime(value, TIMESTAMP_FORMAT)
            return value

    def __init__(self, *, config: hub.AdapterConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config=config, client=client)
        self.private_key = load_private_key(self.config.app_private_key.get_secret_value())
        self.public_key = load_public_key(self.config.alipay_public_key)
        self._exchanging: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @cached_property
    def _code_key(self) -> bytes:
        return code_key(self.private_key)

    @property
    def user_tokens(self) -> UserTokens:
        """The shoppers' tokens, in the account's token store."""
        return UserTokens(self.token_store, self.account_id)

    # -- the gateway --------------------------------------------------------------------------

    def _reply(self, response: httpx.Response) -> GatewayReply:
        cached = response.extensions.get("siyu.alipay")
        if cached is None:
            method = response.request.url.params.get("method", "")
            cached = response.extensions["siyu.alipay"] = read_response(response.content, method, self.public_key)
        return cached  # type: ignore[no-any-return]

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None:
        """Verify the answer's signature, then find its code (``None`` for ``10000``).

        :raises hub.PlatformConfigError: the signature does not verify with ``alipay_public_key``.
        :raises hub.PermanentError: a 2xx answer that is not the gateway's envelope.
        """
        endpoint = response.request.url.params.get("method", "")
        try:
            reply = self._reply(response)
        except SignatureMismatch:
            raise hub.PlatformConfigError("Alipay's answer does not verify with alipay_public_key (a wrong key, "
                                          "or not Alipay answering)", platform=self.platform,
                                          account_id=self.account_id, endpoint=endpoint) from None
        except MalformedResponse as exc:
            if response.status_code >= 400:
                return None  # an HTML error page: the HTTP status decides
            raise hub.PermanentError(f"not a gateway answer ({exc})", platform=self.platform,
                                     account_id=self.account_id, endpoint=endpoint) from None
        return None if reply.ok else (error_key(reply), f"{endpoint}: {reply.describe()}")

    def _auth(self) -> Any:
        return self.credential("merchant") if self.config.app_auth_token else httpx.USE_CLIENT_DEFAULT

    async def gateway(self, method: str, biz: dict[str, Any] | None = None, *, text: dict[str, str] | None = None,
                      auth_token: str | None = None) -> dict[str, Any]:
        """Call a gateway method and return its verified ``…_response`` object.

        :param method: e.g. ``alipay.marketing.card.query``.
        :param biz: the ``biz_content`` object (sent as the exact text it is signed as).
        :param text: the method's top-level text parameters (``alipay.system.oauth.token``).
        :param auth_token: a user's token, for the methods the user authorised.
        """
        params = {"app_id": self.config.app_id, "method": method, "format": "json", "charset": "utf-8",
                  "sign_type": "RSA2", "version": "1.0"}
        if auth_token:
            params["auth_token"] = auth_token
        form = dict(text or {})
        if biz is not None:
            form["biz_content"] = biz_json(biz)
        url = str(self.client.base_url).rstrip("/")  # gateway.do itself, not a path under it
        response = await self.client.post(url, params=params, data=form, auth=self._auth())
        return self._reply(response).node

    # -- cards ----------------------------------------------------------------------------------

    async def push_card(self, account: Account, card: MemberCard) -> hub.PushResult:
        """``card.update`` with the unified balance as ``point`` and the level; sending the same
        card again sends the same totals, so it changes nothing.  A card still to be opened
        (``open-pending:<user>``, from an activation) is opened instead, showing the balance."""
        if not card.card_no:
            return hub.PushResult(accepted=False, detail="the card has no biz_card_no (card_no)")
        uid = pending_holder(card.card_no)
        if uid is not None:
            return await self._open_pending(account, card, uid)
        detail = await self._update(card.card_no, card)
        return hub.PushResult(accepted=True, reference=card.card_no, detail=detail)

    async def _update(self, biz_card_no: str, card: MemberCard) -> str | None:
        biz: dict[str, Any] = {"target_card_no": biz_card_no, "target_card_no_type": "BIZ_CARD",
                               "occur_time": shanghai_timestamp(), "card_info": card_info(card, self.config.level_names)}
        if self.config.notify_point_update:
            biz["notify_messages"] = [{"message_type": "POINT_UPDATE", "change_reason": self.config.point_change_reason}]
        node = await self.gateway(METHODS["update"], biz)
        return str(node.get("result_code") or "") or None

    async def _open_pending(self, account: Account, card: MemberCard, uid: str) -> hub.PushResult:
        """Open the card of ``uid`` for ``card``'s member with the token the activation left, or,
        when Alipay says the user holds it already (a retried open whose answer was lost), update
        the card the user holds; either way the answer names the card's ``biz_card_no``."""
        tokens = self.user_tokens
        token = await tokens.load(tokens.holder_key(uid))
        user = uid_user(uid, token.extra if token else None)
        refused: hub.PlatformError | None = None
        if token is not None and token.access_token:
            try:
                biz_card_no = await self._open(account, card, user, uid, token)
            except hub.PermanentError as exc:
                refused = exc
            else:
                await tokens.release(uid, token)
                return hub.PushResult(accepted=True, reference=biz_card_no, card_no=biz_card_no, detail="opened")
        held = await self._held_card(user)
        if held is None:
            if refused is not None:
                raise refused
            return hub.PushResult(accepted=False, detail="no authorisation left to open this user's card: the shopper "
                                                         "opens it again from the activation form")
        detail = await self._update(held, card)
        await tokens.release(uid, token)
        return hub.PushResult(accepted=True, reference=held, card_no=held, detail=detail)

    async def _open(self, account: Account, card: MemberCard, user: dict[str, str], uid: str,
                    token: hub.Token) -> str:
        """``card.open`` with the user's token (refreshed when it expired or is used up)."""
        if token.expires_at <= datetime.now(UTC) and token.refresh_token:
            token = await self._refresh(uid, token)
        biz = {"card_template_id": self.config.card_template_id, "card_user_info": card_user_info(user),
               "out_serial_no": out_serial_no(card.member_id, uid),
               "card_ext_info": open_ext_info(card, self.config.level_names, open_date=shanghai_timestamp(),
                                              valid_date=self.config.valid_date)}
        try:
            node = await self.gateway(METHODS["open"], biz, auth_token=token.access_token)
        except hub.PermanentError as exc:
            if exc.code not in SPENT_TOKEN or not token.refresh_token:
                raise
            token = await self._refresh(uid, token)
            node = await self.gateway(METHODS["open"], biz, auth_token=token.access_token)
        info = node.get("card_info") if isinstance(node.get("card_info"), dict) else {}
        if not info.get("biz_card_no"):
            raise hub.PermanentError("card.open answered without biz_card_no", platform=self.platform,
                                     account_id=account.account_id, endpoint=METHODS["open"])
        return str(info["biz_card_no"])

    async def _refresh(self, uid: str, token: hub.Token) -> hub.Token:
        node = await self.gateway(METHODS["token"], text={"grant_type": "refresh_token",
                                                          "refresh_token": token.refresh_token or ""})
        fresh = user_token(node)
        fresh = hub.Token(fresh.access_token, fresh.expires_at, fresh.refresh_token or token.refresh_token,
                          fresh.refresh_expires_at or token.refresh_expires_at, {**token.extra, **fresh.extra})
        await self.user_tokens.renew(uid, fresh)
        return fresh

    async def _held_card(self, user: Mapping[str, Any]) -> str | None:
        """The ``biz_card_no`` of the card ``user`` holds (``card.query`` by ``card_user_info``)."""
        try:
            node = await self.gateway(METHODS["query"], {"target_card_no_type": "BIZ_CARD",
                                                         "card_user_info": card_user_info(user)})
        except hub.PermanentError:
            return None
        info = node.get("card_info") if isinstance(node.get("card_info"), dict) else {}
        return str(info["biz_card_no"]) if info.get("biz_card_no") else None

    async def query_card(self, account: Account, biz_card_no: str) -> CardHolder:
        """One card as Alipay shows it (``card.query``), to compare its balance with the ledger."""
        node = await self.gateway(METHODS["query"], {"target_card_no": biz_card_no, "target_card_no_type": "BIZ_CARD"})
        return card_holder(biz_card_no, node)

    async def card_holders(self, account: Account, card_nos: Sequence[str]) -> list[CardHolder]:
        """The cards ``card_nos`` (the hub's member cards on this account) as Alipay shows them.

        Alipay has no API that lists a template's card holders, so this is a read of known cards,
        not a sync stream.
        """
        return [await self.query_card(account, no) for no in card_nos]

    async def activate_url(self, callback: str, *, out_string: str | None = None) -> str:
        """``activateurl.apply``: the card's activation URL, with ``callback`` (our
        ``/webhooks/alipay/<account>``) where Alipay sends the shopper after the form."""
        biz = {"template_id": self.config.card_template_id, "callback": callback}
        if out_string:
            biz["out_string"] = out_string
        node = await self.gateway(METHODS["activate_url"], biz)
        return str(node.get("apply_card_url") or "")

    # -- callbacks ------------------------------------------------------------------------------

    async def parse_webhook(self, account: Account, request: hub.WebhookRequest) -> hub.WebhookResult:
        c = self.config
        if request.method.upper() == "GET":
            return parse_activation(request, app_id=c.app_id, read_form=c.read_form, done_url=c.activation_done_url,
                                    seal=lambda code: seal_code(code, self._code_key, account.account_id))
        return parse_notify(account.account_id, request, public_key=self.public_key, app_id=c.app_id,
                            versions=c.notify_versions, v2_kinds=c.notify_v2_kinds,
                            open_kinds=c.card_open_notify_kinds, delete_kinds=c.card_delete_notify_kinds)

    async def complete_webhook(self, account: Account, follow_up: Mapping[str, Any]) -> list[Record]:
        """An activation's calls out: exchange the code (once, however often this runs), read the
        form, and return the fan with a card to open.  Returns nothing when Alipay refuses the code
        (made up, expired or used elsewhere) and the callback is older than
        :data:`REFUSED_CODE_GRACE`: there is no one to open a card for.

        :raises hub.TransientError: Alipay is unavailable; the callback stays pending and is tried again.
        :raises hub.PermanentError: Alipay refused the code within the grace; tried again too.
        """
        if follow_up.get("kind") != ACTIVATION:
            raise ValueError(f"not an Alipay follow-up: {str(follow_up.get('kind'))[:40]!r}")
        try:
            code = open_code(str(follow_up.get("code") or ""), self._code_key, account.account_id)
        except ValueError:
            log.warning("activation on %s: the code was sealed under another app key; nothing to open",
                        account.account_id)
            return []
        key = self.user_tokens.activation_key(code)
        try:
            token = await self._exchange(account, key, code)
        except hub.PermanentError as exc:
            if exc.code and time.time() - float(follow_up.get("received_at") or 0) < REFUSED_CODE_GRACE:
                raise  # kept pending: see REFUSED_CODE_GRACE
            log.warning("activation on %s: Alipay refused the auth_code (%s); nothing to open",
                        account.account_id, exc.code)
            return []
        form: dict[str, str] = {}
        if self.config.read_form:
            try:
                node = await self.gateway(METHODS["form"], {"biz_type": "MEMBER_CARD", "template_id":
                                                            self.config.card_template_id,
                                                            "request_id": str(follow_up.get("request_id") or "")},
                                          auth_token=token.access_token)
                form = form_values(node.get("infos"))
            except hub.PermanentError as exc:  # the card still opens; the phone stays unknown
                log.warning("activation on %s: the form could not be read (%s); no phone", account.account_id,
                            exc.code)
        fan = activation_fan(account.account_id, token.extra, form, phone_field=self.config.phone_field)
        await self.user_tokens.hold(fan.platform_uid, token, key)
        return [fan]

    async def _exchange(self, account: Account, key: str, code: str) -> hub.Token:
        """The user's token for ``code``: the one stored under ``key`` by an earlier attempt, or a
        new exchange (``alipay.system.oauth.token``) stored there before anything else happens.
        Copies running at once, in this process or another, exchange the code once."""
        lock = self._exchanging.setdefault(key, asyncio.Lock())
        async with lock:
            return await self._exchange_held(account, key, code)

    async def _exchange_held(self, account: Account, key: str, code: str) -> hub.Token:
        slot = self.user_tokens.slot(key)
        await slot.acquire()
        try:
            token = await slot.load()
            if token is not None:
                return token  # type: ignore[no-any-return]
            node = await self.gateway(METHODS["token"], text={"grant_type": "authorization_code", "code": code})
            token = user_token(node)
            if not token.access_token or user_key(token.extra) is None:
                raise hub.PermanentError("the token answer has no access_token or user", platform=self.platform,
                                         account_id=account.account_id, endpoint=METHODS["token"])
            await slot.save(token)
            return token  # type: ignore[no-any-return]
        finally:
            await slot.release()
