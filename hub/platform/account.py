"""Opening an account: its adapter, its HTTP client and its token flows, ready to use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import sqlalchemy as sa

from hub.adapter import Adapter
from hub.config import AccountSettings, Settings
from hub.platform.tokens import MemoryTokenStore, TokenStore
from hub.storage.tokens import DatabaseTokenStore
from hub.platform.client import DEFAULT_TIMEOUT, HubClient, build_client
from hub.platform.retry import RetryCounter
from hub.plugins import PluginHost
from schemas import Account

__all__ = ["AccountHandle", "open_account"]


@dataclass
class AccountHandle:
    """An open account.  Its client retries every HTTP request on its own (per request, never per
    page), so :meth:`call` just awaits the adapter."""

    account: Account
    settings: AccountSettings
    adapter: Adapter
    client: HubClient

    @property
    def retries(self) -> RetryCounter:
        """Retries of this account's requests so far, by reason."""
        return self.client.retries

    @retries.setter
    def retries(self, counter: RetryCounter) -> None:
        self.client.retries = counter

    @property
    def calls(self) -> int:
        """Requests this account put on the wire so far (token requests and retries included)."""
        return self.client.calls

    async def call(self, method: str, *args: object) -> object:
        """Await ``adapter.<method>(account, *args)``."""
        return await getattr(self.adapter, method)(self.account, *args)


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
    """Build the adapter of ``account`` with its client and (if the platform needs them) token flows.

    Tokens are kept in the database when ``engine`` is given (encrypted at rest when
    ``security.phone_encryption_key`` is configured), else in memory.
    """
    adapter_class = host.adapter_class(account.platform)
    client = build_client(adapter_class, account.id, base_url=account.base_url, rate_limits=account.rate_limits,
                          retry=settings.retry, timeout=timeout, transport=transport)
    store = token_store or (DatabaseTokenStore(engine, settings.phones) if engine is not None else MemoryTokenStore())
    async with client:
        adapter = adapter_class(config=account.options, client=client)
        adapter.account_id, adapter.token_store = account.id, store
        client.adapter = adapter
        if adapter_class.auth_class is not None:
            client.auth = adapter_class.auth_class(adapter, store, account.id)
        yield AccountHandle(
            account=Account(platform=account.platform, account_id=account.id, name=account.name),
            settings=account,
            adapter=adapter,
            client=client,
        )
