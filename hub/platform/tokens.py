"""Tokens and where they are kept: in memory, or in the ``tokens`` table so that every process
shares them (encrypted at rest under the deployment's ``security.phone_encryption_key`` when one is
configured).  A :class:`TokenSlot` holds one account's stored token exclusively across processes
while it is refreshed, so that one refresh (and one refresh-token rotation) happens at a time and
the others read its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa

from hub.errors import ConfigError
from schemas.tables import TokenRow, utcnow

__all__ = ["Cipher", "DatabaseTokenStore", "MemoryTokenStore", "Token", "TokenSlot", "TokenStore", "expires_in"]


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

    def acquire(self) -> None: ...

    def load(self) -> Token | None: ...

    def save(self, token: Token) -> None: ...

    def release(self) -> None: ...


class TokenStore(Protocol):
    """Where tokens are kept, by ``(platform, key)``; ``key`` is the account id, or
    ``"<account_id>#<credential>"`` for a second credential."""

    def load(self, platform: str, account_id: str) -> Token | None: ...

    def save(self, platform: str, account_id: str, token: Token) -> None: ...

    def slot(self, platform: str, account_id: str) -> TokenSlot: ...


class Cipher(Protocol):
    """What encrypts tokens at rest (the deployment's :class:`hub.people.phones.PhoneVault`)."""

    @property
    def encrypts(self) -> bool: ...

    def encrypt(self, text: str) -> str | None: ...

    def decrypt(self, token: str) -> str: ...


class _MemorySlot:
    def __init__(self, store: MemoryTokenStore, platform: str, account_id: str) -> None:
        self.store, self.platform, self.account_id = store, platform, account_id

    def acquire(self) -> None:
        """Nothing to take: one process, and its token flow holds its own lock."""

    def load(self) -> Token | None:
        return self.store.load(self.platform, self.account_id)

    def save(self, token: Token) -> None:
        self.store.save(self.platform, self.account_id, token)

    def release(self) -> None:
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


ENCRYPTED_PREFIX = "fernet:"
"""Marks a token stored encrypted (older rows, and deployments without a key, hold clear text)."""


class _DatabaseSlot:
    """The token row held by a write lock: ``BEGIN IMMEDIATE`` on SQLite (the database's one
    write lock), a transaction-scoped advisory lock on the account's key on PostgreSQL."""

    def __init__(self, store: DatabaseTokenStore, platform: str, account_id: str) -> None:
        self.store, self.platform, self.account_id = store, platform, account_id
        self.conn: sa.Connection | None = None

    def acquire(self) -> None:
        conn = self.store.engine.connect()
        try:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                             {"key": f"siyu-token:{self.platform}:{self.account_id}"})
        except BaseException:
            conn.close()
            raise
        self.conn = conn

    def load(self) -> Token | None:
        assert self.conn is not None, "acquire() first"
        return self.store.read(self.conn, self.platform, self.account_id)

    def save(self, token: Token) -> None:
        assert self.conn is not None, "acquire() first"
        self.store.write(self.conn, self.platform, self.account_id, token)

    def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.commit()
            finally:
                conn.close()


class DatabaseTokenStore:
    """Tokens in the ``tokens`` table, one row per account and credential, so every process
    shares them; encrypted at rest when a ``cipher`` that encrypts is given."""

    def __init__(self, engine: sa.Engine, cipher: Cipher | None = None) -> None:
        self.engine = engine
        self.table = TokenRow.__table__
        self.cipher = cipher if cipher is not None and cipher.encrypts else None

    def load(self, platform: str, account_id: str) -> Token | None:
        with self.engine.connect() as conn:
            return self.read(conn, platform, account_id)

    def save(self, platform: str, account_id: str, token: Token) -> None:
        with self.engine.begin() as conn:
            self.write(conn, platform, account_id, token)

    def slot(self, platform: str, account_id: str) -> TokenSlot:
        return _DatabaseSlot(self, platform, account_id)

    def read(self, conn: sa.Connection, platform: str, account_id: str) -> Token | None:
        """The stored token, through ``conn``."""
        t = self.table
        row = conn.execute(sa.select(t).where(t.c.platform == platform, t.c.account_id == account_id)).first()
        if row is None:
            return None
        refresh = self._open(row.refresh_token) if row.refresh_token is not None else None
        return Token(self._open(row.access_token), row.expires_at, refresh, row.refresh_expires_at, dict(row.extra))

    def write(self, conn: sa.Connection, platform: str, account_id: str, token: Token) -> None:
        """Store ``token`` through ``conn`` (in its transaction)."""
        t = self.table
        refresh = self._seal(token.refresh_token) if token.refresh_token is not None else None
        values = dict(access_token=self._seal(token.access_token), expires_at=token.expires_at,
                      refresh_token=refresh, refresh_expires_at=token.refresh_expires_at,
                      extra=token.extra, updated_at=utcnow())
        where = (t.c.platform == platform, t.c.account_id == account_id)
        if conn.execute(sa.update(t).where(*where).values(**values)).rowcount == 0:
            conn.execute(sa.insert(t).values(platform=platform, account_id=account_id, **values))

    def _seal(self, value: str) -> str:
        if self.cipher is None:
            return value
        return ENCRYPTED_PREFIX + (self.cipher.encrypt(value) or "")

    def _open(self, value: str) -> str:
        if not value.startswith(ENCRYPTED_PREFIX):
            return value
        if self.cipher is None:
            raise ConfigError("the stored tokens are encrypted: configure security.phone_encryption_key to read "
                              "them, or clear them (the platform issues new ones)")
        return self.cipher.decrypt(value[len(ENCRYPTED_PREFIX):])


def expires_in(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


