"""Access tokens as an ``httpx.Auth`` flow, cached in the database per account.

A plugin subclasses :class:`TokenAuth` and overrides three small methods:

- :meth:`TokenAuth.build_token_request` — the request that obtains (or refreshes) a token;
- :meth:`TokenAuth.parse_token` — the :class:`Token` in the platform's answer;
- :meth:`TokenAuth.apply` — put the token on a request (a header by default; WeCom wants a query
  parameter).

The flow refreshes a token ahead of its expiry, refreshes exactly once however many requests
wait on an expired token (an ``asyncio.Lock`` and a version check), persists a rotated refresh
token before the new access token is used, and when the platform rejects a token mid-flight
(a :class:`hub.TokenExpired` code in the body) refreshes once and re-sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import sqlalchemy as sa

from hub.platform.errormap import check_response
from hub.errors import PlatformError, TokenExpired
from schemas.tables import TokenRow, utcnow

if TYPE_CHECKING:
    from hub.adapter import Adapter

__all__ = ["DatabaseTokenStore", "MemoryTokenStore", "Token", "TokenAuth", "TokenStore", "expires_in"]


@dataclass(frozen=True)
class Token:
    """An access token and what is known of its life."""

    access_token: str
    expires_at: datetime
    refresh_token: str | None = None
    refresh_expires_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Token(expires_at={self.expires_at.isoformat()})"


class TokenStore(Protocol):
    def load(self, platform: str, account_id: str) -> Token | None: ...

    def save(self, platform: str, account_id: str, token: Token) -> None: ...


class MemoryTokenStore:
    """Tokens in a dict (tests, one-off commands)."""

    def __init__(self) -> None:
        self.tokens: dict[tuple[str, str], Token] = {}

    def load(self, platform: str, account_id: str) -> Token | None:
        return self.tokens.get((platform, account_id))

    def save(self, platform: str, account_id: str, token: Token) -> None:
        self.tokens[(platform, account_id)] = token


class DatabaseTokenStore:
    """Tokens in the ``tokens`` table, one row per account, so every process shares them."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.table = TokenRow.__table__

    def load(self, platform: str, account_id: str) -> Token | None:
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.platform == platform, t.c.account_id == account_id)).first()
        if row is None:
            return None
        return Token(row.access_token, row.expires_at, row.refresh_token, row.refresh_expires_at, dict(row.extra))

    def save(self, platform: str, account_id: str, token: Token) -> None:
        t = self.table
        values = dict(access_token=token.access_token, expires_at=token.expires_at,
                      refresh_token=token.refresh_token, refresh_expires_at=token.refresh_expires_at,
                      extra=token.extra, updated_at=utcnow())
        with self.engine.begin() as conn:
            where = (t.c.platform == platform, t.c.account_id == account_id)
            if conn.execute(sa.update(t).where(*where).values(**values)).rowcount == 0:
                conn.execute(sa.insert(t).values(platform=platform, account_id=account_id, **values))


class TokenAuth(httpx.Auth):
    """The token flow; see the module docstring for what a plugin overrides."""

    requires_response_body = True
    refresh_margin = timedelta(minutes=5)
    """Refresh this long before the token expires."""

    def __init__(self, adapter: Adapter, store: TokenStore, account_id: str) -> None:
        self.adapter = adapter
        self.store = store
        self.account_id = account_id
        self._lock = asyncio.Lock()
        self._token: Token | None = None
        self.refreshes = 0

    # -- override points -----------------------------------------------------------------

    def build_token_request(self, current: Token | None) -> httpx.Request:
        """The request that obtains a token; ``current`` is the old one (for refresh tokens)."""
        raise NotImplementedError

    def parse_token(self, response: httpx.Response, current: Token | None) -> Token:
        """The token in the platform's answer; raise a hub error when there is none."""
        raise NotImplementedError

    def apply(self, request: httpx.Request, token: Token) -> None:
        """Put the token on ``request``."""
        request.headers["Authorization"] = f"Bearer {token.access_token}"

    def initial_token(self) -> Token | None:
        """A token known before any is fetched (e.g. one an operator configured)."""
        return None

    # -- the flow ------------------------------------------------------------------------

    def _fresh(self, token: Token | None) -> bool:
        return token is not None and token.expires_at - self.refresh_margin > utcnow()

    def _rejects_token(self, response: httpx.Response) -> bool:
        try:
            check_response(self.adapter, response, account_id=self.account_id)
        except TokenExpired:
            return True
        except PlatformError:
            return False
        return False

    async def _current(self) -> Token | None:
        if self._token is None:
            self._token = self.store.load(self.adapter.platform, self.account_id) or self.initial_token()
        return self._token

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._current()
        if not self._fresh(token):
            async with self._lock:
                token = self._token
                if not self._fresh(token):
                    response = yield self.build_token_request(token)
                    await response.aread()
                    token = self._store(self.parse_token(response, token))
        assert token is not None
        self.apply(request, token)
        response = yield request
        await response.aread()
        if not self._rejects_token(response):
            return
        async with self._lock:
            if self._token is token:  # nobody refreshed it meanwhile
                refresh = yield self.build_token_request(token)
                await refresh.aread()
                self._store(self.parse_token(refresh, token))
            token = self._token
        assert token is not None
        self.apply(request, token)
        yield request

    def _store(self, token: Token) -> Token:
        self.store.save(self.adapter.platform, self.account_id, token)  # persisted before use
        self._token = token
        self.refreshes += 1
        return token

    def sync_auth_flow(self, request: httpx.Request) -> Any:  # pragma: no cover - the hub is async
        raise RuntimeError("TokenAuth works with httpx.AsyncClient only")


def expires_in(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


