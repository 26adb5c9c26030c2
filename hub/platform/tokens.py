"""Tokens and where they are kept: in memory, or in the ``tokens`` table so that every process
shares them (encrypted at rest under the deployment's ``security.phone_encryption_key`` when one is
configured).  A :class:`TokenSlot` holds one account's stored token exclusively across processes
while it is refreshed, so that one refresh (and one refresh-token rotation) happens at a time and
the others read its result.  Store I/O in a token flow runs off the event loop."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from hub.errors import ConfigError
from schemas.tables import TokenRow, utcnow

T = TypeVar("T")

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


ENCRYPTED_PREFIX = "fernet:"
"""Marks a token stored encrypted (older rows, and deployments without a key, hold clear text)."""


class _DatabaseSlot:
    """The token row held by a lock on the account's key: a transaction-scoped advisory lock on
    PostgreSQL; on SQLite an OS lock on one byte (chosen by the key) of a file beside the database
    (``<database>.token-lock``), released by the kernel if the process dies.  Neither holds back
    any other write: a refresh waits for the platform with the lock held, and the database's own
    write lock must stay free meanwhile (a process's other accounts go on writing their pages).

    Its database work runs on a thread of its own, not the event loop's shared pool: while it
    holds the lock (across the refresh's HTTP request), writers of other accounts may fill that
    pool waiting for the same lock, and the holder must still be able to commit.
    """

    def __init__(self, store: DatabaseTokenStore, platform: str, account_id: str) -> None:
        self.store, self.platform, self.account_id = store, platform, account_id
        self.conn: sa.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._file: int | None = None

    async def _run(self, work: Callable[[], T]) -> T:
        assert self._thread is not None, "acquire() first"
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def _lock(self) -> None:
        key = f"siyu-token:{self.platform}:{self.account_id}"
        engine = self.store.engine
        if engine.dialect.name == "sqlite":
            database = engine.url.database
            if database and database != ":memory:" and not database.startswith("file:"):
                self._file = os.open(f"{database}.token-lock", os.O_RDWR | os.O_CREAT, 0o600)
                offset = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") & 0x7FFFFFFF
                try:
                    fcntl.lockf(self._file, fcntl.LOCK_EX, 1, offset)
                except BaseException:
                    os.close(self._file)
                    self._file = None
                    raise
        conn = engine.connect()
        try:
            if engine.dialect.name != "sqlite":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
        except BaseException:
            conn.close()
            self._unlock_file()
            raise
        self.conn = conn

    def _unlock(self) -> None:
        conn, self.conn = self.conn, None
        try:
            if conn is not None:
                try:
                    conn.commit()
                finally:
                    conn.close()
        finally:
            self._unlock_file()

    def _unlock_file(self) -> None:
        descriptor, self._file = self._file, None
        if descriptor is not None:
            os.close(descriptor)  # closing drops the process's locks on the file

    async def acquire(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="siyu-token")
        try:
            await self._run(self._lock)
        except BaseException:
            self._thread.shutdown(wait=False)
            self._thread = None
            raise

    async def load(self) -> Token | None:
        assert self.conn is not None, "acquire() first"
        conn = self.conn
        return await self._run(lambda: self.store.read(conn, self.platform, self.account_id))

    async def save(self, token: Token) -> None:
        assert self.conn is not None, "acquire() first"
        conn = self.conn
        await self._run(lambda: self.store.write(conn, self.platform, self.account_id, token))

    async def release(self) -> None:
        if self._thread is None:
            return
        try:
            await self._run(self._unlock)
        finally:
            self._thread.shutdown(wait=False)
            self._thread = None


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


