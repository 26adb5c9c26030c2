"""The testplat adapter: what a real platform plugin looks like, minus a real platform."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

import hub
from hub.auth import Token, TokenAuth, expires_in
from hub.errormap import check_response, response_json
from schemas import Account, Fan, Order, from_epoch_millis, from_epoch_seconds

ERROR_CODES: dict[int, Any] = {
    1001: hub.TokenExpired,
    1002: (hub.RateLimited, 1.0),
    2001: hub.TransientError,
    4001: hub.PermanentError,
    4003: hub.PlatformConfigError,
}


class TestplatAuth(TokenAuth):
    def build_token_request(self, current: Token | None) -> httpx.Request:
        config = self.adapter.config
        return self.adapter.client.build_request(
            "POST", "/oauth/token",
            data={"client_id": config.client_id, "client_secret": config.client_secret.get_secret_value()},
        )

    def parse_token(self, response: httpx.Response, current: Token | None) -> Token:
        check_response(self.adapter, response, account_id=self.account_id)
        body = response_json(response, platform="testplat")
        return Token(access_token=body["access_token"], expires_at=expires_in(body["expires_in"]))


class TestplatAdapter(hub.Adapter):
    """Fans and orders of the test platform."""

    __test__ = False  # not a pytest test class, despite its name

    platform = "testplat"
    default_base_url = "http://127.0.0.1:9"
    capabilities = frozenset({hub.Capability.FANS, hub.Capability.ORDERS})
    error_codes = ERROR_CODES
    rate_limits = {"*": (1000.0, 1.0)}
    auth_class = TestplatAuth
    sandbox = "siyu_testplatform.sandbox:make_sandbox"

    class Config(hub.AdapterConfig):
        client_id: str
        client_secret: SecretStr
        page_size: int = 100

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None:
        body = response_json(response, platform=self.platform)
        code = body.get("code", 0) if isinstance(body, dict) else 0
        return None if code == 0 else (code, str(body.get("message", "")))

    async def fetch_fans(self, account: Account, cursor: str | None) -> hub.Page[Fan]:
        response = await self.client.get("/v1/fans", params={"cursor": cursor or "", "count": self.config.page_size})
        data = response_json(response, platform=self.platform)["data"]
        fans = [
            Fan(
                platform=self.platform,
                account_id=account.account_id,
                platform_uid=item["uid"],
                nickname=item["nickname"],
                union_id=item.get("union_id"),
                phone=item.get("mobile"),
                follow_state="following" if item["following"] else "unfollowed",
                followed_at=from_epoch_seconds(item["follow_time"]),
                interactions={"messages": item["messages"]},
            )
            for item in data["fans"]
        ]
        return hub.Page(items=fans, next_cursor=data["next_cursor"] or None)

    async def fetch_orders(self, account: Account, cursor: str | None) -> hub.Page[Order]:
        response = await self.client.get("/v1/orders", params={"cursor": cursor or "", "count": self.config.page_size})
        data = response_json(response, platform=self.platform)["data"]
        orders = [
            Order(
                platform=self.platform,
                account_id=account.account_id,
                order_id=item["order_id"],
                buyer_uid=item["buyer_uid"],
                amount_fen=int(item["amount_fen"]),
                status=item["status"],
                paid_at=from_epoch_millis(item["paid_ms"]),
            )
            for item in data["orders"]
        ]
        return hub.Page(items=orders, next_cursor=data["next_cursor"] or None)
