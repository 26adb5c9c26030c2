"""Tokens and where they are kept: in memory here, or in the database so that every process
shares them (:class:`hub.storage.tokens.DatabaseTokenStore`, encrypted at rest under the
deployment's ``security.phone_encryption_key`` when one is configured).  A :class:`TokenSlot`
holds one account's stored token exclusively across processes while it is refreshed, so that one
refresh (and one refresh-token rotation) happens at a time and the others read its result.
Store I/O in a token flow runs off the event loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


__all__ = ["Cipher", "MemoryTokenStore", "Token", "TokenSlot", "TokenStore", "expires_in"]


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


class TokenSlot(Protocol):
    """One account's stored token, held exclusively (across processes, for a database store)
    from :meth:`acquire` to :meth:`release`: while a process refreshes a token, every other
    process waits, then reads the new one instead of refreshing again."""

    async def acquire(self) -> None: ...

    async def load(self) -> Token | None: ...

    async def save(self, token: Token) -> None: ...

    async def release(self) -> None: ...


class TokenStore(Protocol):
    """Where tokens are kept, by ``(platform, key)``; ``key`` is the account id, or
    ``"<account_id>#<credential>"`` for a second credential."""

    def load(self, platform: str, account_id: str) -> Token | None: ...

    def save(self, platform: str, account_id: str, token: Token) -> None: ...

    def slot(self, platform: str, account_id: str) -> TokenSlot: ...

    def forget(self, platform: str, account_id: str) -> None:
        """Delete the token stored under ``(platform, key)``, if any (one no longer needed)."""
        ...


class Cipher(Protocol):
    """What encrypts tokens at rest (the deployment's :class:`hub.people.phones.PhoneVault`)."""

    @property
    def encrypts(self) -> bool: ...

    def encrypt(self, text: str) -> str | None: ...

    def decrypt(self, token: str) -> str: ...


class _MemorySlot:
    def __init__(self, store: MemoryTokenStore, platform: str, account_id: str) -> None:
        self.store, self.platform, self.account_id = store, platform, account_id

    async def acquire(self) -> None:
        """Nothing to take: one process, and its token flow holds its own lock."""

    async def load(self) -> Token | None:
        return self.store.load(self.platform, self.account_id)

    async def save(self, token: Token) -> None:
        self.store.save(self.platform, self.account_id, token)

    async def release(self) -> None:
        pass


class MemoryTokenStore:
    """Tokens in a dict (tests, one-off commands)."""

    def __init__(self) -> None:
        self.tokens: dict[tuple[str, str], Token] = {}

    def load(self, platform: str, account_id: str) -> Token | None:
        return self.tokens.get((platform, account_id))

    def save(self, platform: str, account_id: str, token: Token) -> None:
        self.tokens[(platform, account_id)] = token

    def slot(self, platform: str, account_id: str) -> TokenSlot:
        return _MemorySlot(self, platform, account_id)

    def forget(self, platform: str, account_id: str) -> None:
        self.tokens.pop((platform, account_id), None)


def expires_in(seconds: float) -> datetime:
    """The moment ``seconds`` from now (UTC), as a token's expiry."""
    return datetime.now(UTC) + timedelta(seconds=seconds)


