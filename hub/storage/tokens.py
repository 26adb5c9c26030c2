"""Stored access tokens, as a whole: listing their expiries and forgetting them.

Reading, refreshing and saving an account's token is the token flow's (:mod:`hub.platform.auth`);
this module only lists stored tokens (never the tokens themselves) and clears them, so that the next call to a platform fetches a fresh one
(``siyu demo`` does it, since a new sandbox knows nothing of the last run's tokens).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from schemas.tables import TokenRow

__all__ = ["clear_tokens", "list_tokens"]

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
