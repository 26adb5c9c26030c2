"""The respx rig of the Douyin HTTP tests: an adapter and its client over a router, tokens in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import respx

from hub.platform.client import build_client
from hub.platform.retry import RetryPolicy
from hub.platform.tokens import MemoryTokenStore
from plugins.douyin import DouyinAdapter
from plugins.douyin.auth import DouyinAuth
from schemas import Account

BASE = "https://open.douyin.com"
ACCOUNT = Account(platform="douyin", account_id="ent")
NOW = datetime.now(UTC)
OK = {"error_code": 0, "description": ""}


def ok(data=None, **top):
    return {"data": {**(data or {}), **OK}, "extra": {"error_code": 0, "sub_error_code": 0, "logid": "LOG1"}, **top}


def failed(code, description="nope"):
    return {"data": {"error_code": code, "description": description},
            "extra": {"error_code": code, "description": description, "sub_error_code": 0}}


class Rig:
    """A Douyin adapter whose client answers from ``router``; ``overrides`` are account options."""

    def __init__(self, retry=None, **overrides):
        options = {"client_key": "awkey", "client_secret": "s3cret-value", "open_id": "ent-open",
                   "access_token": "act.configured", "refresh_token": "rft.configured",
                   "access_token_expires_at": NOW + timedelta(days=10),
                   "refresh_token_expires_at": NOW + timedelta(days=29), "life_account_id": "7001",
                   **overrides}
        self.router = respx.Router(base_url=BASE, assert_all_called=True)
        self.client = build_client(DouyinAdapter, "ent", base_url=BASE, retry=retry or RetryPolicy(attempts=1),
                                   transport=httpx.MockTransport(self.router.async_handler))
        self.adapter = DouyinAdapter(config=DouyinAdapter.Config(**options), client=self.client)
        self.client.adapter = self.adapter
        self.store = MemoryTokenStore()
        self.adapter.account_id, self.adapter.token_store = "ent", self.store  # as the hub sets them
        self.client.auth = DouyinAuth(self.adapter, self.store, "ent")

    def token(self, key="ent"):
        return self.store.load("douyin", key)


def form(request: httpx.Request) -> dict[str, str]:
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    return {k: v[0] for k, v in parse_qs(request.content.decode(), keep_blank_values=True).items()}


FAN = {"open_id": "fan-1", "union_id": "u-1", "nickname": "张伟", "avatar": "https://x/1.jpeg", "city": "上海",
       "province": "上海", "country": "中国", "gender": "1"}
