"""Opening an account: its adapter, its HTTP client and its token flow, ready to use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import sqlalchemy as sa

from hub.adapter import Adapter
from hub.platform.auth import DatabaseTokenStore, MemoryTokenStore, TokenStore
from hub.config import AccountSettings, Settings
from hub.platform.client import DEFAULT_TIMEOUT, HubClient, build_client
from hub.plugins import PluginHost
from hub.platform.retry import RetryCounter, RetryPolicy, retrying
from schemas import Account

__all__ = ["AccountHandle", "open_account"]


@dataclass
class AccountHandle:
    """An open account: call its adapter through :meth:`call` to get the hub's retries."""

    account: Account
    settings: AccountSettings
    adapter: Adapter
    client: HubClient
    retry: RetryPolicy
    retries: RetryCounter = field(default_factory=RetryCounter)

    async def call(self, method: str, *args: object) -> object:
        """Await ``adapter.<method>(account, *args)`` under the retry policy."""
        async for attempt in retrying(self.retry, self.retries):
            with attempt:
                return await getattr(self.adapter, method)(self.account, *args)
        raise AssertionError("unreachable")  # pragma: no cover


@asynccontextmanager
async def open_account(
    host: PluginHost,
    settings: Settings,
    account: AccountSettings,
    *,
    engine: sa.Engine | None = None,
    token_store: TokenStore | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
) -> AsyncIterator[AccountHandle]:
    """Build the adapter of ``account`` with its client and (if the platform needs one) token flow.

    Tokens are kept in the database when ``engine`` is given, else in memory.
    """
    adapter_class = host.adapter_class(account.platform)
    client = build_client(adapter_class, account.id, base_url=account.base_url,
                          rate_limits=account.rate_limits, timeout=timeout, transport=transport)
    async with client:
        adapter = adapter_class(config=account.options, client=client)
        client.adapter = adapter
        if adapter_class.auth_class is not None:
            store = token_store or (DatabaseTokenStore(engine) if engine is not None else MemoryTokenStore())
            client.auth = adapter_class.auth_class(adapter, store, account.id)
        yield AccountHandle(
            account=Account(platform=account.platform, account_id=account.id, name=account.name),
            settings=account,
            adapter=adapter,
            client=client,
            retry=settings.retry,
        )
