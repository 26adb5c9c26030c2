"""Access tokens in the database: the store every process shares (:class:`DatabaseTokenStore`,
encrypted at rest under ``security.phone_encryption_key`` when one is configured, with the slot
that makes a refresh single-flight across processes), and the stored tokens as a whole: listing
their expiries (never the tokens) and forgetting them, so that the next call to a platform fetches
a fresh one (``siyu demo`` does it, since a new sandbox knows nothing of the last run's tokens).

When a token is refreshed is the token flow's (:mod:`hub.platform.auth`).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa

from hub.errors import ConfigError
from hub.platform.tokens import Cipher, Token, TokenSlot
from schemas.tables import TokenRow, utcnow

__all__ = ["DatabaseTokenStore", "clear_tokens", "list_tokens"]

T = TypeVar("T")

tokens = TokenRow.__table__


def _where(query: Any, platform: str | None, account_id: str | None) -> Any:
    if platform is not None:
        query = query.where(tokens.c.platform == platform)
    if account_id is not None:
        query = query.where(tokens.c.account_id == account_id)
    return query


def list_tokens(engine: sa.Engine, platform: str | None = None,
                account_id: str | None = None) -> list[dict[str, Any]]:
    """The stored tokens' accounts and expiries, by platform and account, without the tokens.

    :param platform: only this platform's tokens.
    :param account_id: only this account id's tokens.
    :returns: one dict per token: ``platform``, ``account_id``, ``expires_at``,
        ``has_refresh_token``, ``refresh_expires_at`` and ``updated_at``.
    """
    query = _where(sa.select(tokens.c.platform, tokens.c.account_id, tokens.c.expires_at,
                             (tokens.c.refresh_token.is_not(None)).label("has_refresh_token"),
                             tokens.c.refresh_expires_at, tokens.c.updated_at),
                   platform, account_id).order_by(tokens.c.platform, tokens.c.account_id)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def clear_tokens(engine: sa.Engine, platform: str | None = None, account_id: str | None = None) -> int:
    """Delete the stored tokens of every account (of one platform, of one account of it) and
    return how many were deleted."""
    query = _where(sa.delete(tokens), platform, account_id)
    with engine.begin() as conn:
        return conn.execute(query).rowcount


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

    def forget(self, platform: str, account_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.platform == platform,
                                                     self.table.c.account_id == account_id))

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
