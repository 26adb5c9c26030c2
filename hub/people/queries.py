"""Reading people: synced fans, members with their fans, cards and audit trail, and counts.

Every function returns plain documents (dicts of JSON-friendly values, times as aware
datetimes), ready for ``--json`` or a table.  Phone numbers are never returned, not even their
hashes: only whether a fan has one (``has_phone``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from hub.errors import NotFound
from hub.ledger.queries import live_member_id
from hub.people.phones import PhoneVault
from schemas import normalise_phone
from schemas.tables import FanRow, MemberCardRow, MemberChangeRow, MemberRow

__all__ = ["FAN_FIELDS", "count_people", "describe_member", "fans_with_phone", "fans_with_uid", "get_fan",
           "list_fans"]

fans = FanRow.__table__
cards = MemberCardRow.__table__
changes = MemberChangeRow.__table__
members_t = MemberRow.__table__

FAN_FIELDS = ("platform", "account_id", "platform_uid", "nickname", "union_id", "follow_state", "followed_at",
              "tier", "tags", "interactions", "member_id", "updated_at")
"""The fields of a synced fan's document (:func:`list_fans`, :func:`get_fan`), besides
``has_phone`` and ``follows``."""

_MEMBER_FAN = (fans.c.id, fans.c.platform, fans.c.account_id, fans.c.platform_uid, fans.c.nickname,
               fans.c.follow_state, fans.c.tier, fans.c.member_id)
_CHANGE_FIELDS = ("id", "action", "member_id", "other_member_id", "points", "reason", "actor", "rule",
                  "undoes_change_id", "created_at")


def _fan_doc(row: Any) -> dict[str, Any]:
    doc = {name: row[name] for name in FAN_FIELDS}
    doc["has_phone"] = row["phone_hash"] is not None
    doc["follows"] = row["follows"]
    return doc


def list_fans(engine: sa.Engine, *, platform: str | None = None, account_id: str | None = None,
              limit: int = 50) -> list[dict[str, Any]]:
    """Synced fans, ordered by platform, account and uid, at most ``limit``."""
    query = sa.select(fans).order_by(fans.c.platform, fans.c.account_id, fans.c.platform_uid).limit(limit)
    if platform:
        query = query.where(fans.c.platform == platform)
    if account_id:
        query = query.where(fans.c.account_id == account_id)
    with engine.connect() as conn:
        return [_fan_doc(row) for row in conn.execute(query).mappings()]


def get_fan(engine: sa.Engine, platform: str, account_id: str, uid: str) -> dict[str, Any]:
    """One synced fan.

    :raises NotFound: no such fan.
    """
    with engine.connect() as conn:
        row = conn.execute(sa.select(fans).where(fans.c.platform == platform, fans.c.account_id == account_id,
                                                 fans.c.platform_uid == uid)).mappings().first()
    if row is None:
        raise NotFound(f"no fan {platform}:{account_id}:{uid}")
    return _fan_doc(row)


def _member_fan(row: Any) -> dict[str, Any]:
    return {"fan_id": row.id, "platform": row.platform, "account_id": row.account_id, "platform_uid": row.platform_uid,
            "nickname": row.nickname, "follow_state": row.follow_state, "tier": row.tier, "member_id": row.member_id}


def describe_member(engine: sa.Engine, member_id: int) -> dict[str, Any]:
    """A member as it stands: balance, level, lifetime points, the members merged into it, its
    fans and cards, and every merge, split and undo that involved it (oldest first).  A merged
    member is described by its survivor (``member_id``; ``asked_for`` is the one asked for).

    :raises NotFound: no such member.
    """
    with engine.connect() as conn:
        live = live_member_id(conn, member_id)
        row = conn.execute(sa.select(members_t).where(members_t.c.member_id == live)).one()
        merged_from = list(conn.execute(sa.select(members_t.c.member_id).where(members_t.c.merged_into == live)
                                        .order_by(members_t.c.member_id)).scalars())
        member_fans = [_member_fan(f) for f in conn.execute(
            sa.select(*_MEMBER_FAN).where(fans.c.member_id == live).order_by(fans.c.id))]
        member_cards = [{"platform": c.platform, "account_id": c.account_id, "card_no": c.card_no, "status": c.status,
                         "balance_pushed": c.balance} for c in conn.execute(sa.select(cards).where(cards.c.member_id == live))]
        audit = [{k: getattr(c, k) for k in _CHANGE_FIELDS} for c in conn.execute(
            sa.select(changes).where(sa.or_(changes.c.member_id == live, changes.c.other_member_id == live))
            .order_by(changes.c.id))]
    return {"member_id": live, "asked_for": member_id, "balance": row.balance, "level": row.level,
            "lifetime_points": row.lifetime_points, "merged_from": merged_from, "fans": member_fans,
            "cards": member_cards, "changes": audit}


def _find(engine: sa.Engine, where: sa.ColumnElement[bool]) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        found = [_member_fan(f) for f in conn.execute(sa.select(*_MEMBER_FAN).where(where).order_by(fans.c.id))]
        for f in found:
            f["member_id"] = live_member_id(conn, f["member_id"]) if f["member_id"] else None
    return found


def fans_with_phone(engine: sa.Engine, phones: PhoneVault, phone: str) -> list[dict[str, Any]]:
    """The fans with this mobile number (matched by its keyed hash), each with its live member.

    :raises ValueError: ``phone`` is not a mobile number.
    """
    return _find(engine, fans.c.phone_hash == phones.hash(normalise_phone(phone)))


def fans_with_uid(engine: sa.Engine, platform: str, uid: str, account_id: str | None = None) -> list[dict[str, Any]]:
    """The fans with this user id on a platform (on one account of it, if given), each with its
    live member."""
    where = sa.and_(fans.c.platform == platform, fans.c.platform_uid == uid)
    if account_id is not None:
        where = sa.and_(where, fans.c.account_id == account_id)
    return _find(engine, where)


def count_people(engine: sa.Engine) -> dict[str, int]:
    """How many fans are stored (``fans``) and how many live members they make (``members``)."""
    with engine.connect() as conn:
        fan_count = conn.execute(sa.select(sa.func.count()).select_from(fans)).scalar_one()
        member_count = conn.execute(sa.select(sa.func.count()).select_from(members_t)
                                    .where(members_t.c.merged_into.is_(None))).scalar_one()
    return {"fans": fan_count, "members": member_count}
