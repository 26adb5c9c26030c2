"""Small helpers shared by the member and ledger tests: fans and members straight into the tables."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from hub.ledger.tx import run_write
from hub.people.members import create_member
from hub.people.phones import PhoneVault
from schemas import normalise_phone
from schemas.tables import FanRow

PHONES = PhoneVault("test-phone-key-0123456789abcdef")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
fans = FanRow.__table__


def new_member(engine: sa.Engine) -> int:
    return run_write(engine, create_member)


def add_fan(engine: sa.Engine, platform: str, uid: str, *, account: str = "hq", phone: str | None = None,
            union_id: str | None = None, keys: dict[str, str] | None = None, member_id: int | None = None) -> int:
    values: dict[str, Any] = dict(
        platform=platform, account_id=account, platform_uid=uid, union_id=union_id,
        phone_hash=PHONES.hash(normalise_phone(phone)) if phone else None, identity_keys=keys or {}, member_id=member_id,
        gender="unknown", follow_state="unknown", tags=[], follows=[], interactions={},
        inserted_at=T0, updated_at=T0,
    )
    with engine.begin() as conn:
        return conn.execute(fans.insert().values(**values).returning(fans.c.id)).scalar_one()


def grouping(engine: sa.Engine) -> set[frozenset[str]]:
    """The partition of fans (``platform:uid``) into members."""
    groups: dict[int, set[str]] = defaultdict(set)
    with engine.connect() as conn:
        for row in conn.execute(sa.select(fans.c.platform, fans.c.platform_uid, fans.c.member_id)):
            assert row.member_id is not None
            groups[row.member_id].add(f"{row.platform}:{row.platform_uid}")
    return {frozenset(g) for g in groups.values()}
