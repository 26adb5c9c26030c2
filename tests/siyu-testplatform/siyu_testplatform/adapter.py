"""The testplat adapter: what a real platform plugin looks like, minus a real platform."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import Field, SecretStr

import hub
from schemas import Account, Fan, MemberCard, Order
from siyu_testplatform import webhooks
from siyu_testplatform.auth import TestplatAuth
from siyu_testplatform.mapping import fans_from, orders_from
from siyu_testplatform.wire import ERROR_CODES, PATHS, body_error

__all__ = ["TestplatAdapter"]


class TestplatAdapter(hub.Adapter):
    """Fans and orders of the test platform."""

    __test__ = False  # not a pytest test class, despite its name

    platform = "testplat"
    default_base_url = "http://127.0.0.1:9"
    capabilities = frozenset({hub.Capability.FANS, hub.Capability.ORDERS, hub.Capability.CARDS,
                              hub.Capability.WEBHOOKS})
    error_codes = ERROR_CODES
    rate_limits = {"*": (1000.0, 1.0)}
    auth_class = TestplatAuth
    sandbox = "siyu_testplatform.sandbox:make_sandbox"

    class Config(hub.AdapterConfig):
        client_id: str
        client_secret: SecretStr
        page_size: int = 100
        fan_out: bool = Field(
            default=False,
            description="read every fan of a page again with a request of its own (a page of N fans "
                        "is N + 1 requests), as platforms whose lists carry only ids make a client do")

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None:
        return body_error(response, self.platform)

    async def _data(self, path: str, **params: Any) -> Any:
        response = await self.client.get(path, params=params)
        return hub.response_json(response, platform=self.platform)["data"]

    async def fetch_fans(self, account: Account, cursor: str | None) -> hub.Page[Fan]:
        data = await self._data(PATHS["fans"], cursor=cursor or "", count=self.config.page_size)
        items = data["fans"]
        if self.config.fan_out:  # each request retried on its own by the hub's client
            items = await asyncio.gather(*(self._data(PATHS["fan"].format(uid=item["uid"])) for item in items))
        return hub.Page(items=fans_from(account.account_id, items), next_cursor=data["next_cursor"] or None)

    async def fetch_orders(self, account: Account, cursor: str | None) -> hub.Page[Order]:
        data = await self._data(PATHS["orders"], cursor=cursor or "", count=self.config.page_size)
        return hub.Page(items=orders_from(account.account_id, data["orders"]), next_cursor=data["next_cursor"] or None)

    async def push_card(self, account: Account, card: MemberCard) -> hub.PushResult:
        # absolute values: sending the same card twice leaves the platform in the same state
        response = await self.client.post(PATHS["cards"], json={"card_no": card.card_no, "balance": card.balance,
                                                                "level": card.level})
        body = hub.response_json(response, platform=self.platform)
        return hub.PushResult(accepted=True, reference=str(body.get("revision")))

    async def parse_webhook(self, account: Account, request: hub.WebhookRequest) -> hub.WebhookResult:
        return webhooks.parse(self.config.client_secret.get_secret_value(), account, request)
