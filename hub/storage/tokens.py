"""Stored access tokens, as a whole: forgetting them.

Reading, refreshing and saving an account's token is the token flow's (:mod:`hub.platform.auth`);
this module only clears stored tokens, so that the next call to a platform fetches a fresh one
(``siyu demo`` does it, since a new sandbox knows nothing of the last run's tokens).
"""

from __future__ import annotations

import sqlalchemy as sa

from schemas.tables import TokenRow

__all__ = ["clear_tokens"]

tokens = TokenRow.__table__


def clear_tokens(engine: sa.Engine, platform: str | None = None, account_id: str | None = None) -> int:
    """Delete the stored tokens of every account (of one platform, of one account of it) and
    return how many were deleted."""
    query = sa.delete(tokens)
    if platform is not None:
        query = query.where(tokens.c.platform == platform)
    if account_id is not None:
        query = query.where(tokens.c.account_id == account_id)
    with engine.begin() as conn:
        return conn.execute(query).rowcount
