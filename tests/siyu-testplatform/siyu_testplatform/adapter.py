"""The testplat adapter: what a real platform plugin looks like, minus a real platform."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from pydantic import SecretStr

import hub
from hub import Token, TokenAuth, expires_in
from hub import check_response, response_json
from schemas import Account, Fan, MemberCard, Order, from_epoch_millis, from_epoch_seconds

SIGNATURE_HEADER = "x-testplat-signature"
TIMESTAMP_HEADER = "x-testplat-timestamp"
FRESHNESS_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The callback signature: hex HMAC-SHA256 under the client secret of ``timestamp.body``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()

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

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None:
        body = response_json(response, platform=self.platform)
        code = body.get("code", 0) if isinstance(body, dict) else 0
        return None if code == 0 else (code, str(body.get("message", "")))

    async def fetch_fans(self, account: Account, cursor: str | None) -> hub.Page[Fan]:
        response = await self.client.get("/v1/fans", params={"cursor": cursor or "", "count": self.config.page_size})
        data = response_json(response, platform=self.platform)["data"]
        fans = Fan.many(
            {
                "platform": self.platform,
                "account_id": account.account_id,
                "platform_uid": item["uid"],
                "nickname": item["nickname"],
                "union_id": item.get("union_id"),
                "phone": item.get("mobile"),
                "follow_state": "following" if item["following"] else "unfollowed",
                "followed_at": from_epoch_seconds(item["follow_time"]),
                "interactions": {"messages": item["messages"]},
            }
            for item in data["fans"]
        )
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

    async def push_card(self, account: Account, card: MemberCard) -> hub.PushResult:
        # absolute values: sending the same card twice leaves the platform in the same state
        response = await self.client.post("/v1/cards", json={"card_no": card.card_no, "balance": card.balance,
                                                              "level": card.level})
        body = response_json(response, platform=self.platform)
        return hub.PushResult(accepted=True, reference=str(body.get("revision")))

    async def parse_webhook(self, account: Account, request: hub.WebhookRequest) -> hub.WebhookResult:
        headers = {k.lower(): v for k, v in request.headers.items()}
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        expected = sign(self.config.client_secret.get_secret_value(), timestamp, request.body)
        if not hmac.compare_digest(expected, headers.get(SIGNATURE_HEADER, "")):
            raise hub.WebhookRejected("bad signature", status_code=401)
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > FRESHNESS_SECONDS:
            raise hub.WebhookRejected("stale or missing timestamp", status_code=400)
        try:
            event = json.loads(request.body)
            fan = Fan(platform=self.platform, account_id=account.account_id, platform_uid=event["uid"],
                      follow_state="following" if event["type"] == "follow" else "unfollowed")
        except (ValueError, KeyError, TypeError) as exc:
            raise hub.WebhookRejected(f"malformed event ({type(exc).__name__})") from exc
        return hub.WebhookResult(events=[fan], dedupe_key=str(event["event_id"]), body=b'{"ok":true}',
                                 media_type="application/json")
