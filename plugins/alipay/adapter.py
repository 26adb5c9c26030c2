"""The Alipay (支付宝开放平台) adapter: 商家会员卡 opened from the activation form, the unified
balance pushed to them, card holders read back, and asynchronous notifies.

Every call is a signed ``gateway.do`` method (:mod:`plugins.alipay.auth`); every answer's
signature is verified with Alipay's public key in :meth:`AlipayAdapter.error_code`, which the
hub's client calls for every response before the adapter reads it, so an answer that does not
verify is an error and never trusted.

Opening a card (the documented flow): Alipay sends the shopper's browser to our activation
callback, ``GET /webhooks/alipay/<account>?auth_code=…&request_id=…``.  :meth:`parse_webhook`
exchanges the code (``alipay.system.oauth.token``), reads the form (``activateform.query``, for
the phone), opens the card (``card.open``) and returns one fan: keyed by ``open_id``, with the
phone (kept as its keyed hash) and the card's ``biz_card_no``.  The hub stitches that fan with the
same person's WeCom and Douyin fans, makes the card the member's and queues the member's unified
balance for it in the same transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx
from pydantic import Field, SecretStr, field_validator

import hub
from plugins.alipay.auth import AlipaySigner, AppAuthToken
from plugins.alipay.mapping import (
    CardHolder,
    activation_fan,
    card_holder,
    card_info,
    card_user_info,
    external_card_no,
    form_values,
    out_serial_no,
    user_key,
)
from plugins.alipay.webhooks import activation_page, parse_notify
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
from schemas import Account, MemberCard

__all__ = ["AlipayAdapter"]

REMEMBERED_ACTIVATIONS = 1024
"""Activations (by auth_code) whose result is kept, so that a replay in this process opens nothing."""


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
        self._activations: OrderedDict[str, asyncio.Future[hub.WebhookResult]] = OrderedDict()

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
        card again sends the same totals, so it changes nothing."""
        if not card.card_no:
            return hub.PushResult(accepted=False, detail="the card has no biz_card_no (card_no)")
        biz: dict[str, Any] = {"target_card_no": card.card_no, "target_card_no_type": "BIZ_CARD",
                               "occur_time": shanghai_timestamp(), "card_info": card_info(card, self.config.level_names)}
        if self.config.notify_point_update:
            biz["notify_messages"] = [{"message_type": "POINT_UPDATE", "change_reason": self.config.point_change_reason}]
        node = await self.gateway(METHODS["update"], biz)
        return hub.PushResult(accepted=True, reference=card.card_no, detail=str(node.get("result_code") or "") or None)

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
        if request.method.upper() == "GET":
            return await self._activation(account, request)
        c = self.config
        return parse_notify(account.account_id, request, public_key=self.public_key, app_id=c.app_id,
                            versions=c.notify_versions, v2_kinds=c.notify_v2_kinds,
                            open_kinds=c.card_open_notify_kinds, delete_kinds=c.card_delete_notify_kinds)

    async def _activation(self, account: Account, request: hub.WebhookRequest) -> hub.WebhookResult:
        """The activation callback; one activation per ``auth_code`` in this process, and Alipay
        itself lets a code be exchanged once, so a replay opens nothing twice."""
        query = request.query
        code, request_id = query.get("auth_code") or "", query.get("request_id") or ""
        if not code:
            raise hub.WebhookRejected("activation callback without auth_code", status_code=400)
        if not request_id and self.config.read_form:
            raise hub.WebhookRejected("activation callback without request_id", status_code=400)
        if query.get("app_id") and query.get("app_id") != self.config.app_id:
            raise hub.WebhookRejected("activation callback for another app_id", status_code=403)
        key = hashlib.sha256(code.encode()).hexdigest()
        task = self._activations.get(key)
        if task is None:
            task = asyncio.ensure_future(self._open_card(account, code, request_id, key))
            self._activations[key] = task
            while len(self._activations) > REMEMBERED_ACTIVATIONS:
                self._activations.popitem(last=False)
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and self._activations.get(key) is task:
                del self._activations[key]  # a failed activation is not remembered
            raise

    async def _open_card(self, account: Account, code: str, request_id: str, key: str) -> hub.WebhookResult:
        config = self.config
        try:
            user = await self.gateway(METHODS["token"], text={"grant_type": "authorization_code", "code": code})
            token = str(user.get("access_token") or "")
            uid = user_key(user)
            if not token or uid is None:
                raise hub.PermanentError("the token answer has no access_token or user", platform=self.platform,
                                         account_id=account.account_id, endpoint=METHODS["token"])
            form: dict[str, str] = {}
            if config.read_form:
                node = await self.gateway(METHODS["form"], {"biz_type": "MEMBER_CARD", "template_id":
                                                            config.card_template_id, "request_id": request_id},
                                          auth_token=token)
                form = form_values(node.get("infos"))
            biz_card_no = await self._open(account, user, uid, token, out_serial_no(request_id, code))
        except hub.PlatformError as exc:
            raise hub.WebhookRejected(f"card activation failed: {exc}", status_code=400) from None
        fan = activation_fan(account.account_id, user, form, biz_card_no, phone_field=config.phone_field)
        page = activation_page("会员卡已开通", "积分将在稍后显示在会员卡上。", link=config.activation_done_url)
        return hub.WebhookResult(events=[fan], dedupe_key=f"activation:{key[:40]}", body=page,
                                 media_type="text/html")

    async def _open(self, account: Account, user: dict[str, Any], uid: str, token: str, serial: str) -> str:
        """``card.open``; when Alipay refuses it because the user holds the card already (a retried
        open whose first answer was lost), the user's card is read instead."""
        biz = {"card_template_id": self.config.card_template_id, "card_user_info": card_user_info(user),
               "out_serial_no": serial,
               "card_ext_info": {"external_card_no": external_card_no(account.account_id, uid),
                                 "open_date": shanghai_timestamp(), "valid_date": self.config.valid_date}}
        try:
            node = await self.gateway(METHODS["open"], biz, auth_token=token)
        except hub.PlatformConfigError:
            raise
        except hub.PermanentError:
            existing = await self._held_card(user)
            if existing is None:
                raise
            return existing
        info = node.get("card_info") if isinstance(node.get("card_info"), dict) else {}
        if not info.get("biz_card_no"):
            raise hub.PermanentError("card.open answered without biz_card_no", platform=self.platform,
                                     account_id=account.account_id, endpoint=METHODS["open"])
        return str(info["biz_card_no"])

    async def _held_card(self, user: dict[str, Any]) -> str | None:
        try:
            node = await self.gateway(METHODS["query"], {"target_card_no_type": "BIZ_CARD",
                                                         "card_user_info": card_user_info(user)})
        except hub.PermanentError:
            return None
        info = node.get("card_info") if isinstance(node.get("card_info"), dict) else {}
        return str(info["biz_card_no"]) if info.get("biz_card_no") else None
