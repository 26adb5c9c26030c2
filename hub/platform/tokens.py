"""Tokens and where they are kept: in memory, or in the ``tokens`` table so that every process
shares them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa

from schemas.tables import TokenRow, utcnow

__all__ = ["DatabaseTokenStore", "MemoryTokenStore", "Token", "TokenStore", "expires_in"]


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


def expires_in(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


