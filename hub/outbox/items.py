"""The outbox as operators see it: items listed without their payloads, dead items put back.

Delivery itself is :mod:`hub.outbox.drain`'s; these are the reads and repairs behind
``siyu outbox list`` and ``siyu outbox retry``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from schemas.tables import OutboxRow, utcnow

__all__ = ["list_items", "retry_dead"]

outbox = OutboxRow.__table__


def list_items(engine: sa.Engine, *, status: str | None = None, platform: str | None = None,
               account_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Outbox items, newest first, without their payloads (which may hold message text)."""
    columns = [outbox.c[name] for name in ("id", "platform", "account_id", "kind", "target", "status",
                                            "attempts", "last_error", "available_at", "updated_at")]
    query = sa.select(*columns).order_by(outbox.c.id.desc()).limit(limit)
    for column, value in (("status", status), ("platform", platform), ("account_id", account_id)):
        if value is not None:
            query = query.where(outbox.c[column] == value)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def retry_dead(engine: sa.Engine, *, ids: list[int] | None = None, platform: str | None = None,
               account_id: str | None = None) -> list[int]:
    """Put dead items back to ``pending`` (all of them, or those named); returns their ids."""
    now = utcnow()
    where = [outbox.c.status == "dead"]
    if ids:
        where.append(outbox.c.id.in_(ids))
    if platform is not None:
        where.append(outbox.c.platform == platform)
    if account_id is not None:
        where.append(outbox.c.account_id == account_id)
    with engine.begin() as conn:
        moved = conn.execute(
            outbox.update().where(*where).values(status="pending", available_at=now, updated_at=now)
            .returning(outbox.c.id)
        ).scalars().all()
    return sorted(moved)
