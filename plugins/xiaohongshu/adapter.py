"""The Xiaohongshu (小红书电商开放平台, "ark") adapter: buyers and orders, and message pushes.

Every call is a signed JSON ``POST`` to the one gateway path (see :mod:`plugins.xiaohongshu.wire`;
:class:`plugins.xiaohongshu.auth.XiaohongshuAuth` signs and adds the token), and every answer
passes through :func:`plugins.xiaohongshu.wire.envelope_error` before the adapter reads it.

Both paged streams walk the same thing: ``order.getOrderList`` by **update time**
(``timeType=2``), in windows of at most 30 minutes from ``lookback_days`` ago to a minute ago,
each window read from its last page to its first as documented.  A cursor is
``"<start>:<end>:<page>"`` (page 0: the window is still to be probed for its ``maxPageNo``), so
a sync resumes inside a window.  For each listed order, ``order.getOrderDetail`` gives the buyer
(``userId``) and the amounts, and for an order with after-sales the after-sale APIs give what was
really refunded.  ``fetch_orders`` yields the orders; ``fetch_fans`` yields their buyers (and,
when the account allows it, a receiver's decrypted mobile as an identity key).  The 会员通 API
group is not implemented: its methods are not public.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, ValidationError

import hub
from hub import Token, response_json
from plugins.xiaohongshu.auth import XiaohongshuAuth, refresh_warning
from plugins.xiaohongshu.mapping import ENDED, buyer_fans, mainland_mobile, refunded_fen, to_orders
from plugins.xiaohongshu.webhooks import parse_push
from plugins.xiaohongshu.wire import (
    DECRYPT_QUOTA_CODES,
    ERROR_CODES,
    GATEWAY_PATH,
    METHODS,
    ORDER_BY_UPDATE_TIME,
    PAGE_NO_MAX,
    as_int,
    decode_cursor,
    encode_cursor,
    envelope_error,
    unwrap,
)
from schemas import SHANGHAI, Account, Fan, Order

__all__ = ["ERROR_KINDS", "XiaohongshuAdapter"]

log = logging.getLogger("siyu.xiaohongshu")

ERROR_KINDS: dict[str, Any] = {
    "token_expired": hub.TokenExpired,
    "rate_limited": hub.RateLimited,
    "transient": hub.TransientError,
    "config": hub.PlatformConfigError,
    "permanent": hub.PermanentError,
}
"""What an account's ``extra_error_codes`` may map a code to."""

AWAITING_SHIPMENT = 4
"""``orderStatus`` 4 待发货: the only state in which the receiver can be read."""

DECRYPT_DAILY_LIMIT = 10
"""``data.batchDecrypt``: a shop may call it this many times a day (店铺单日限额10次)."""

DECRYPT_BATCH = 100
"""``data.batchDecrypt`` takes at most this many cipher texts per call."""


RESUME_MARGIN_SECONDS = 300
"""A pass starts this long before the last one's horizon (the high-water mark), for clock skew."""


class XiaohongshuAdapter(hub.Adapter):
    """Xiaohongshu shop: buyers (fans) and orders from the order APIs, and message pushes."""

    platform = "xiaohongshu"
    default_base_url = "https://ark.xiaohongshu.com"
    capabilities = frozenset({hub.Capability.FANS, hub.Capability.ORDERS, hub.Capability.WEBHOOKS})
    error_codes = ERROR_CODES
    rate_limits = {"*": (100.0, 1.0)}
    """100 calls a second per app (doc 292); the 200 a second per method can never be reached
    under it, since every method shares the one gateway path.  See the platform docs."""
    auth_class = XiaohongshuAuth
    sandbox = "plugins.xiaohongshu.sandbox:make_sandbox"

    class Config(hub.GrantConfig):
        """A shop (店铺) that authorised the app (its tokens: ``access_token``, ``refresh_token``)."""

        app_id: str = Field(min_length=1, description="the app's appId (= app-key of pushes)")
        app_secret: SecretStr
        seller_id: str | None = Field(default=None, description="the shop's sellerId; learnt from tokens if unset")
        lookback_days: float = Field(default=7.0, gt=0, le=366,
                                     description="a sync reads orders updated this far back")
        settle_seconds: int = Field(default=60, ge=0, le=3600, description="the newest window ends this long ago")
        window_minutes: int = Field(default=30, ge=1, le=30)
        page_size: int = Field(default=100, ge=1, le=100)
        empty_windows_per_page: int = Field(default=48, ge=1, le=10_000,
                                            description="empty windows probed before a page is handed back")
        warn_refresh_days: float = Field(default=3.0, ge=0)
        phone_decrypt_calls_per_day: int = Field(default=0, ge=0, le=DECRYPT_DAILY_LIMIT,
                                                 description="data.batchDecrypt calls a day (0: never decrypt)")
        decrypt_action_type: str = Field(default="4", pattern="^[1-4]$")
        push_sign_path: str | None = Field(default=None, description="the path pushes are signed over")
        accept_unsigned_test_push: bool = True
        extra_error_codes: dict[int, Literal["token_expired", "rate_limited", "transient", "config", "permanent"]] = (
            Field(default_factory=dict, description="gateway codes seen in production, by what they mean"))

    def __init__(self, *, config: hub.AdapterConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config=config, client=client)
        extra = {code: ERROR_KINDS[kind] for code, kind in self.config.extra_error_codes.items()}
        self.error_codes = {**ERROR_CODES, **extra}  # the account's additions to the documented table
        self._warned = False

    # -- envelope -----------------------------------------------------------------------------

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None:
        body = response_json(response, platform=self.platform)  # not JSON on a 4xx/5xx: the status decides
        return envelope_error(body)

    async def _call(self, method: str, **params: Any) -> dict[str, Any]:
        response = await self.client.post(GATEWAY_PATH, json={"method": method, **params})
        return unwrap(response_json(response, platform=self.platform))

    # -- the order windows ----------------------------------------------------------------------

    async def _list(self, start: int, end: int, page: int) -> dict[str, Any]:
        return await self._call(METHODS["order_list"], startTime=start, endTime=end, timeType=ORDER_BY_UPDATE_TIME,
                                pageNo=page, pageSize=self.config.page_size)

    def _after(self, end: int, horizon: int) -> str | None:
        if end >= horizon:
            return None
        return encode_cursor(end, end + self.config.window_minutes * 60, 0)

    def _resume(self, following: str | None) -> str | None:
        """On a pass's last page: the next pass probes from a little before this one's horizon
        (a window it reads again costs one call, and its orders come back unchanged)."""
        if following is not None:
            return None
        start = int(time.time()) - self.config.settle_seconds - RESUME_MARGIN_SECONDS
        return encode_cursor(start, start + self.config.window_minutes * 60, 0)

    async def _orders_page(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of listed orders and the cursor after it (see the module docstring)."""
        config = self.config
        horizon = int(time.time()) - config.settle_seconds
        if cursor is None:
            start, end, page = horizon - int(config.lookback_days * 86400), 0, 0
        else:
            try:
                start, end, page = decode_cursor(cursor)
            except ValueError:
                raise hub.PermanentError("the stored cursor is not this plugin's; sync with --full",
                                         platform=self.platform, account_id=self.account_id) from None
        probed = 0
        while page == 0:
            if start >= horizon:
                return [], None
            end = min(start + config.window_minutes * 60, horizon)
            data = await self._list(start, end, 1)
            while as_int(data.get("maxPageNo"), default=1) > PAGE_NO_MAX and end - start > 1:
                end = start + (end - start) // 2  # over 10,000 orders: a narrower window
                data = await self._list(start, end, 1)
            last = min(as_int(data.get("maxPageNo"), default=1), PAGE_NO_MAX)
            if last > 1:
                page = last  # the documented order: from the last page to the first
                break
            items = list(data.get("orderList") or ())
            probed += 1
            if items or probed >= config.empty_windows_per_page:
                return items, self._after(end, horizon)
            start = end
        data = await self._list(start, end, page)
        following = encode_cursor(start, end, page - 1) if page > 1 else self._after(end, horizon)
        return list(data.get("orderList") or ()), following

    async def _gather(self, calls: Iterable[Any]) -> list[Any]:
        async with asyncio.TaskGroup() as group:  # one failure cancels the rest
            tasks = [group.create_task(call) for call in calls]
        return [task.result() for task in tasks]

    async def _details(self, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = list(dict.fromkeys(str(item["orderId"]) for item in listed))
        return await self._gather(self._call(METHODS["order_detail"], orderId=i) for i in ids)

    async def _refunded(self, order_id: str) -> int:
        found = await self._call(METHODS["after_sale_list"], orderId=order_id, pageNo=1, pageSize=100)
        returns = [str(r["returnsId"]) for r in found.get("afterSaleBasicInfos") or () if r.get("returnsId")]
        infos = await self._gather(self._call(METHODS["after_sale_info"], returnsId=r, needNegotiateRecord=False)
                                   for r in returns)
        return refunded_fen(info.get("afterSaleInfo") or {} for info in infos)

    def _notes(self, skipped: list[str]) -> tuple[str, ...]:
        """The page's notes: orders skipped, and a refresh token close to its end (logged once)."""
        notes = [f"xiaohongshu {self.account_id}: order {order_id} has an undocumented orderStatus; "
                 "skipped until the plugin knows it" for order_id in skipped]
        token = self.token_store.load(self.platform, self.account_id)
        warning = refresh_warning(token, self.config.warn_refresh_days, self.account_id) if token else None
        if warning:
            if not self._warned:
                log.warning(warning)
                self._warned = True
            notes.append(warning)
        return tuple(notes)

    def _mapped(self, build: Any, *args: Any) -> Any:
        try:
            return build(self.platform, self.account_id, *args)
        except ValidationError:
            raise  # the hub names the record and field
        except (ValueError, KeyError, TypeError) as exc:
            raise hub.PermanentError(f"unexpected order data ({type(exc).__name__}: {exc})", platform=self.platform,
                                     account_id=self.account_id) from None

    # -- streams -----------------------------------------------------------------------------

    async def fetch_orders(self, account: Account, cursor: str | None) -> hub.Page[Order]:
        listed, following = await self._orders_page(cursor)
        orders, skipped = await self._orders_of(await self._details(listed))
        return hub.Page(items=orders, next_cursor=following, notes=self._notes(skipped),
                        resume_cursor=self._resume(following))

    async def _orders_of(self, details: list[dict[str, Any]]) -> tuple[list[Order], list[str]]:
        with_after_sales = [str(d["orderId"]) for d in details
                            if as_int(d.get("orderAfterSalesStatus"), default=1) not in (0, 1)
                            and as_int(d.get("orderStatus")) not in ENDED]  # refunded in full anyway
        refunds = dict(zip(with_after_sales, await self._gather(self._refunded(i) for i in with_after_sales),
                           strict=True))
        return self._mapped(to_orders, details, refunds)  # type: ignore[no-any-return]

    async def fetch_fans(self, account: Account, cursor: str | None) -> hub.Page[Fan]:
        listed, following = await self._orders_page(cursor)
        details = await self._details(listed)
        phones = await self._receiver_phones(details) if self.config.phone_decrypt_calls_per_day else {}
        return hub.Page(items=self._mapped(buyer_fans, details, phones), next_cursor=following, notes=self._notes([]),
                        resume_cursor=self._resume(following))

    # -- receiver phones (identity keys), within the daily decrypt quota -------------------------

    def _quota_key(self) -> str:
        return f"{self.account_id}#decrypt-quota"

    def _decrypt_calls_today(self) -> int:
        today = datetime.now(SHANGHAI).date().isoformat()
        kept = self.token_store.load(self.platform, self._quota_key())
        return int(kept.extra.get("calls", 0)) if kept is not None and kept.extra.get("day") == today else 0

    def _count_decrypt_call(self, *, spent: bool = False) -> None:
        now = datetime.now(SHANGHAI)
        calls = DECRYPT_DAILY_LIMIT if spent else self._decrypt_calls_today() + 1
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), SHANGHAI)
        self.token_store.save(self.platform, self._quota_key(), Token(
            access_token="-", expires_at=midnight, extra={"day": now.date().isoformat(), "calls": calls}))

    async def _receiver_phones(self, details: list[dict[str, Any]]) -> dict[str, str]:
        """Receiver mobiles by order id, for orders awaiting shipment, through
        ``order.getOrderReceiverInfo`` and ``data.batchDecrypt`` while today's quota lasts."""
        wanted = [{"orderId": str(d["orderId"]), "openAddressId": str(d["openAddressId"])} for d in details
                  if as_int(d.get("orderStatus")) == AWAITING_SHIPMENT and d.get("openAddressId")][:DECRYPT_BATCH]
        if not wanted or self._decrypt_calls_today() >= self.config.phone_decrypt_calls_per_day:
            return {}
        found = await self._call(METHODS["receiver_info"], receiverQueries=wanted, isReturn=False)
        phones: dict[str, str] = {}
        cipher: list[dict[str, str]] = []
        for info in found.get("receiverInfos") or ():
            value = info.get("receiverPhone")
            if not info.get("matched") or not isinstance(value, str) or not value:
                continue
            plain = mainland_mobile(value)
            if plain:
                phones[str(info["orderId"])] = plain
            else:
                cipher.append({"dataTag": str(info["orderId"]), "encryptedData": value})
        if not cipher:
            return phones
        self._count_decrypt_call()
        decrypted = await self._call(METHODS["decrypt"], baseInfos=cipher, actionType=self.config.decrypt_action_type,
                                     appUserId="siyu-hub")
        for item in decrypted.get("dataInfoList") or ():
            if as_int(item.get("errorCode"), default=0) in DECRYPT_QUOTA_CODES:
                self._count_decrypt_call(spent=True)  # the platform says today's quota is gone
                continue
            if item.get("virtualNumberFlag"):
                continue  # a privacy number identifies nobody
            phone = mainland_mobile(item.get("decryptedData"))
            if phone:
                phones[str(item.get("dataTag"))] = phone
        return phones

    # -- pushes ------------------------------------------------------------------------------

    def seller_ids(self) -> frozenset[str]:
        """The shop ids pushes may name: the configured one, else the one the token answer gave."""
        if self.config.seller_id:
            return frozenset({self.config.seller_id})
        token = self.token_store.load(self.platform, self.account_id)
        seller = token.extra.get("seller_id") if token is not None else None
        return frozenset({str(seller)}) if seller else frozenset()

    async def complete_webhook(self, account: Account, follow_up: Mapping[str, Any]) -> list[Order | Fan]:
        """An order push names the orders that changed: read each (``order.getOrderDetail``, and
        its after-sales when it has some) and return the orders and their buyers, as a sync would."""
        details = await self._details([{"orderId": order_id} for order_id in follow_up.get("orders") or ()])
        orders, _ = await self._orders_of(details)
        return [*orders, *self._mapped(buyer_fans, details, {})]

    async def parse_webhook(self, account: Account, request: hub.WebhookRequest) -> hub.WebhookResult:
        config = self.config
        return parse_push(request, app_key=config.app_id, app_secret=config.app_secret.get_secret_value(),
                          seller_ids=self.seller_ids(), sign_path=config.push_sign_path,
                          accept_unsigned_test=config.accept_unsigned_test_push)
