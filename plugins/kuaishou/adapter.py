"""The Kuaishou 快手小店 adapter: orders, their buyers, and message pushes.

Kuaishou's merchant API has no fan list and no member or points API: a shop's private domain
reaches the hub as its buyers and their orders, and the ledger's earning rule turns paid orders
into points (and takes them back on refund).  Both paged streams read the same API,
``open.order.cursor.list`` by update time:

* ``orders`` yields each order as a :class:`schemas.Order`;
* ``fans`` yields each page's distinct buyers as :class:`schemas.Fan` (nickname, avatar and, where
  the shop allows decryption, the receiver's phone as an identity key).

A pass covers the last ``order_lookback_days`` (at most 90, the API's limit) in windows of
``window_days`` (at most 7), each paged with Kuaishou's cursor until ``"nomore"``.  Our cursor
(the stream's checkpoint) is ``[begin, end, until, kuaishou cursor]`` in epoch milliseconds, so a
pass interrupted at any page resumes where it was.

Every call is ``<method with / for .>`` with the form parameters of
:func:`KuaishouAdapter.api_params`; :class:`plugins.kuaishou.auth.KuaishouAuth` adds the access
token and the signature.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import AwareDatetime, Field, SecretStr, field_validator

import hub
from hub import response_json
from plugins.kuaishou.auth import KuaishouAuth
from plugins.kuaishou.mapping import AmountBasis, buyers, order_fields, phone_or_none
from plugins.kuaishou.webhooks import parse_push
from plugins.kuaishou.wire import (
    API_VERSION,
    DECRYPT_METHOD,
    ERROR_CODES,
    NOMORE,
    ORDER_LIST_METHOD,
    PATHS,
    SignMethod,
    encode_param,
    envelope_error,
    message_key_bytes,
    method_path,
)
from schemas import Account, Fan, Order

__all__ = ["DAY_MS", "MAX_LOOKBACK_DAYS", "KuaishouAdapter", "OrderCursor"]

log = logging.getLogger("siyu.kuaishou")

DAY_MS = 86_400_000
MAX_LOOKBACK_DAYS = 90
"""``open.order.cursor.list`` reaches back 90 days at most."""
FLOOR_MARGIN_MS = 60_000
PUSH_WINDOW_MARGIN_MS = 5 * 60_000
"""A push's follow-up reads orders updated from this long before the change it reports, and a pass
starts this long before the last one ended (clocks differ; an order read twice is unchanged)."""
"""A pass starts this long after the 90-day limit, so clocks a little apart do not refuse it."""
DECRYPT_BATCH = 100


def _result_list(data: Any) -> list[Any]:
    """The decryption results: ``data`` is documented as a list; accept it wrapped in an object."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        return next((v for v in data.values() if isinstance(v, list)), [])
    return []


@dataclass(frozen=True)
class OrderCursor:
    """Where a pass over the order list is: the window ``[begin, end)``, the pass's end and
    Kuaishou's cursor inside the window (``""`` at its start)."""

    begin: int
    end: int
    until: int
    cursor: str = ""

    def encode(self) -> str:
        return json.dumps([self.begin, self.end, self.until, self.cursor], separators=(",", ":"))

    @classmethod
    def decode(cls, text: str, account_id: str | None = None) -> OrderCursor:
        try:
            begin, end, until, cursor = json.loads(text)
            return cls(int(begin), int(end), int(until), str(cursor))
        except (ValueError, TypeError):
            raise hub.PermanentError("orders: the stored cursor is not ours; sync again with --full",
                                     platform="kuaishou", account_id=account_id) from None


class KuaishouAdapter(hub.Adapter):
    """Kuaishou 快手小店: buyers and orders from the order list, and message pushes."""

    platform = "kuaishou"
    default_base_url = "https://openapi.kwaixiaodian.com"
    capabilities = frozenset({hub.Capability.FANS, hub.Capability.ORDERS, hub.Capability.WEBHOOKS})
    error_codes = ERROR_CODES
    rate_limits = {PATHS["order_list"]: (300.0, 1.0), PATHS["decrypt"]: (100.0, 1.0)}
    auth_class = KuaishouAuth
    sandbox = "plugins.kuaishou.sandbox:make_sandbox"

    class Config(hub.GrantConfig):
        """A shop (快手小店) that authorised the app (its tokens: ``access_token``, ``refresh_token``)."""

        app_key: str = Field(min_length=1, description="appKey (= app_id / client_id)")
        app_secret: SecretStr = Field(description="appSecret, for the OAuth endpoints")
        sign_secret: SecretStr = Field(description="signSecret, for request signatures")
        message_key: SecretStr = Field(description="the message-push AES key (Base64), for pushes")
        sign_method: SignMethod = "HMAC_SHA256"
        refresh_token_expires_at: AwareDatetime | None = Field(
            default=None, description="when the configured refresh token expires (about 180 days after the "
                                      "authorisation); learnt from the first refresh otherwise")
        refresh_warn_days: float = Field(default=14.0, ge=0, description="warn this long before it expires")
        page_size: int = Field(default=50, ge=1, le=50)
        order_lookback_days: float = Field(default=MAX_LOOKBACK_DAYS, gt=0, le=MAX_LOOKBACK_DAYS)
        window_days: float = Field(default=7.0, gt=0, le=7)
        order_view_status: int = Field(default=1, ge=1, le=7, description="1 = all orders")
        amount_basis: AmountBasis = "total_fee"
        decrypt_phones: bool = Field(default=False, description="decrypt receivers' phones (the shop must allow it)")
        decrypt_method: str = DECRYPT_METHOD
        phone_cipher_field: str = Field(default="encryptedMobile",
                                        description="the orderAddress field that holds the phone ciphertext")
        order_list_http_method: Literal["GET", "POST"] = "GET"

        @field_validator("message_key")
        @classmethod
        def _an_aes_key(cls, value: SecretStr) -> SecretStr:
            message_key_bytes(value.get_secret_value())  # a ValueError names no value
            return value

    # -- the envelope -------------------------------------------------------------------------

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None:
        body = response_json(response, platform=self.platform)  # not JSON on a 4xx/5xx: the status decides
        return envelope_error(body)

    def now_ms(self) -> int:
        """The time in epoch milliseconds (``timestamp`` and the order windows); a test seam."""
        return int(time.time() * 1000)

    def api_params(self, method: str, business: dict[str, Any]) -> dict[str, str]:
        """The form parameters of a call, before the token and signature are added."""
        return {"appkey": self.config.app_key, "method": method, "version": API_VERSION,
                "param": encode_param(business), "timestamp": str(self.now_ms()),
                "signMethod": self.config.sign_method}

    async def call(self, method: str, business: dict[str, Any], http_method: str = "GET") -> Any:
        """Call an API method and return its ``data`` (failures are raised by the hub's client)."""
        params = self.api_params(method, business)
        path = method_path(method)
        if http_method == "GET":
            response = await self.client.get(path, params=params)
        else:
            response = await self.client.post(path, data=params)
        return response_json(response, platform=self.platform).get("data")

    # -- the order list -----------------------------------------------------------------------

    def _start(self, cursor: str | None) -> OrderCursor:
        config = self.config
        now = self.now_ms()
        floor = now - MAX_LOOKBACK_DAYS * DAY_MS + FLOOR_MARGIN_MS
        window = int(config.window_days * DAY_MS)
        if not cursor:
            begin = max(now - int(config.order_lookback_days * DAY_MS), floor)
            return OrderCursor(begin, min(begin + window, now), now)
        state = OrderCursor.decode(cursor, self.account_id)
        if state.until == 0:  # the high-water mark of the last pass: a new pass from there to now
            begin = max(state.begin, floor)
            return OrderCursor(begin, min(begin + window, now), now)
        if state.begin < floor:  # a pass resumed after its window slid past the 90 days: restart there
            begin = min(floor, state.until)
            state = OrderCursor(begin, min(begin + window, state.until), state.until)
        return state

    def _following(self, state: OrderCursor, returned: Any, count: int) -> str | None:
        following = "" if returned in (None, "", NOMORE) else str(returned)
        if following:
            if following == state.cursor and count == 0:
                raise hub.PermanentError("orders: a cursor that does not move", platform=self.platform,
                                         account_id=self.account_id, endpoint=method_path(ORDER_LIST_METHOD))
            return OrderCursor(state.begin, state.end, state.until, following).encode()
        if state.end >= state.until:
            return None
        window = int(self.config.window_days * DAY_MS)
        return OrderCursor(state.end, min(state.end + window, state.until), state.until).encode()

    async def _order_page(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        state = self._start(cursor)
        config = self.config
        business = {"orderViewStatus": config.order_view_status, "pageSize": config.page_size, "sort": 2,
                    "queryType": 2, "beginTime": state.begin, "endTime": state.end, "cpsType": 0,
                    "cursor": state.cursor}
        data = await self.call(ORDER_LIST_METHOD, business, config.order_list_http_method) or {}
        items = [item for item in data.get("orderList") or () if isinstance(item, dict)]
        return items, self._following(state, data.get("cursor"), len(items))

    def _resume(self, cursor: str | None, following: str | None) -> str | None:
        """On a pass's last page: the next pass starts a little before this one's end."""
        if following is not None:
            return None
        until = self._start(cursor).until
        return OrderCursor(until - PUSH_WINDOW_MARGIN_MS, 0, 0).encode()

    async def fetch_orders(self, account: Account, cursor: str | None) -> hub.Page[Order]:
        items, following = await self._order_page(cursor)
        basis = self.config.amount_basis
        orders = Order.many(order_fields(self.platform, account.account_id, item, amount_basis=basis)
                            for item in items)
        return hub.Page(items=orders, next_cursor=following, resume_cursor=self._resume(cursor, following))

    async def complete_webhook(self, account: Account, follow_up: Mapping[str, Any]) -> list[Order | Fan]:
        """An order push: read the order list from a little before the change it reports (by
        update time, every page of that one window) and return those orders and their buyers, as a
        sync would; the push itself carries no amount."""
        now = self.now_ms()
        since = int(follow_up.get("orders_updated_since") or 0) or now
        begin = max(since - PUSH_WINDOW_MARGIN_MS, now - MAX_LOOKBACK_DAYS * DAY_MS + FLOOR_MARGIN_MS)
        window = int(self.config.window_days * DAY_MS)  # the list's longest time range, as in a pass
        cursor: str | None = OrderCursor(begin, min(begin + window, now), now).encode()
        records: list[Order | Fan] = []
        while cursor is not None:
            items, cursor = await self._order_page(cursor)
            basis = self.config.amount_basis
            records += Order.many(order_fields(self.platform, account.account_id, item, amount_basis=basis)
                                  for item in items)
            records += Fan.many(buyers(self.platform, account.account_id, items))
        return records

    async def fetch_fans(self, account: Account, cursor: str | None) -> hub.Page[Fan]:
        items, following = await self._order_page(cursor)
        phones: dict[str, str] = {}
        notes: tuple[str, ...] = ()
        if self.config.decrypt_phones:
            try:
                phones = await self._phones(items)
            except (hub.PlatformConfigError, hub.PermanentError) as exc:  # not allowed: the buyers still count
                notes = (f"kuaishou {account.account_id}: receivers' phones were not decrypted ({exc})",)
        return hub.Page(items=Fan.many(buyers(self.platform, account.account_id, items, phones)),
                        next_cursor=following, notes=notes, resume_cursor=self._resume(cursor, following))

    # -- phones (only where the shop allows decryption) ---------------------------------------

    async def _phones(self, items: Sequence[dict[str, Any]]) -> dict[str, str]:
        """Order id → the receiver's decrypted phone; a number that fails to decrypt is skipped
        (never logged)."""
        field = self.config.phone_cipher_field
        ciphers: dict[str, str] = {}
        for item in items:
            address = item.get("orderAddress") or {}
            cipher = address.get(field) if isinstance(address, dict) else None
            if isinstance(cipher, str) and cipher:
                ciphers[str(item["orderBaseInfo"]["oid"])] = cipher
        plain: dict[str, str] = {}
        values = sorted(set(ciphers.values()))
        for start in range(0, len(values), DECRYPT_BATCH):
            batch = values[start:start + DECRYPT_BATCH]
            data = await self.call(self.config.decrypt_method,
                                   {"decryptDataList": [{"encryptedData": c} for c in batch]}, "POST")
            for result in _result_list(data):
                if isinstance(result, dict) and not result.get("errorCode"):
                    number = phone_or_none(result.get("decryptedData"))
                    if number and result.get("encryptedData"):
                        plain[str(result["encryptedData"])] = number
        skipped = sum(1 for c in ciphers.values() if c not in plain)
        if skipped:
            log.info("kuaishou %s: %d receiver phone(s) not decrypted", self.account_id, skipped)
        return {oid: plain[c] for oid, c in ciphers.items() if c in plain}

    # -- pushes -------------------------------------------------------------------------------

    async def parse_webhook(self, account: Account, request: hub.WebhookRequest) -> hub.WebhookResult:
        return parse_push(account, request, message_key=self.config.message_key.get_secret_value(),
                          app_key=self.config.app_key)
