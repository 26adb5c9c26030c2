"""Every figure of the report, computed once from the database with SQLAlchemy Core.

:func:`compute_figures` returns one plain, JSON-ready ``dict``; ``siyu report --json`` prints it
and :mod:`hub.report.html` draws the page from the same object, so the page and the JSON cannot
disagree.  The sections:

``fans``
    fans per platform and per account (and how many follow now);
``members``
    live members (merged ones point to their survivor and are not counted), their balances;
``overlap``
    people recognised on 1, 2, 3 … platforms and every combination of platforms (an UpSet matrix);
``tiers``
    the fan-tier funnel per platform, 潜在 → 路人 → 好感 → 真爱, plus fans with no tier;
``points``, ``cards``, ``sync``
    see :mod:`hub.report.flows`.

Only aggregates leave the database, except for the overlap, which reads one ``(member, platform)``
pair per fan in member order and keeps a counter per combination (memory grows with the number of
combinations, not of fans).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from hub.report.flows import card_figures, points_figures, sync_figures
from schemas import FanTier
from schemas.tables import FanRow, MemberRow

__all__ = ["TIER_LABELS", "compute_figures"]

fans = FanRow.__table__
members = MemberRow.__table__

TIER_LABELS = {
    FanTier.PROSPECT.value: "潜在",
    FanTier.PASSERBY.value: "路人",
    FanTier.FOND.value: "好感",
    FanTier.DEVOTED.value: "真爱",
}
NO_TIER = "none"
MIN_DEGREES = 5  # the matrix always shows people on 1 … 5 platforms (more when more platforms exist)


def compute_figures(engine: sa.Engine, *, now: datetime | None = None,
                    accounts: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """Compute every figure of the report in one read transaction.

    :param engine: the hub's database (SQLite or PostgreSQL).
    :param now: the time lags are measured against (default: the current time, UTC).
    :param accounts: ``(platform, account_id)`` of configured accounts; sync health lists them
        even when the database holds nothing of theirs yet (never synced).
    :return: a JSON-ready ``dict``; the keys are described in ``docs/report.md``.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    with engine.connect() as conn:
        fan_section = fan_figures(conn)
        figures: dict[str, Any] = {
            "generated_at": now.isoformat(timespec="seconds"),
            "database": engine.dialect.name,
            "platforms": sorted(fan_section["by_platform"]),
            "fans": fan_section,
            "members": member_figures(conn),
            "overlap": overlap_figures(conn),
            "tiers": tier_figures(conn),
            "points": points_figures(conn),
            "cards": card_figures(conn),
            "sync": sync_figures(conn, now, accounts),
        }
    known = set(figures["platforms"])
    known.update(figures["overlap"]["set_sizes"])
    known.update(a["platform"] for a in figures["sync"]["accounts"])
    figures["platforms"] = sorted(known)
    return figures


def fan_figures(conn: sa.Connection) -> dict[str, Any]:
    """Fans per account and per platform; ``following`` counts those who follow now."""
    following = sa.func.sum(sa.case((fans.c.follow_state == "following", 1), else_=0))
    stitched = sa.func.sum(sa.case((fans.c.member_id.is_not(None), 1), else_=0))
    rows = conn.execute(
        sa.select(fans.c.platform, fans.c.account_id, sa.func.count().label("n"), following.label("following"),
                  stitched.label("stitched"))
        .group_by(fans.c.platform, fans.c.account_id)
        .order_by(fans.c.platform, fans.c.account_id)
    ).all()
    by_account = [{"platform": r.platform, "account_id": r.account_id, "fans": int(r.n),
                   "following": int(r.following or 0), "stitched": int(r.stitched or 0)} for r in rows]
    by_platform: dict[str, int] = {}
    for a in by_account:
        by_platform[a["platform"]] = by_platform.get(a["platform"], 0) + a["fans"]
    return {"total": sum(by_platform.values()), "by_platform": by_platform, "by_account": by_account}


def member_figures(conn: sa.Connection) -> dict[str, Any]:
    """Live members, merged ones, and the points they hold."""
    live = members.c.merged_into.is_(None)
    row = conn.execute(sa.select(
        sa.func.sum(sa.case((live, 1), else_=0)).label("live"),
        sa.func.sum(sa.case((live, 0), else_=1)).label("merged"),
        sa.func.sum(sa.case((sa.and_(live, members.c.balance > 0), 1), else_=0)).label("with_balance"),
        sa.func.sum(sa.case((live, members.c.balance), else_=0)).label("balance"),
    )).one()
    unstitched = conn.execute(sa.select(sa.func.count()).select_from(fans).where(fans.c.member_id.is_(None))).scalar_one()
    return {"total": int(row.live or 0), "merged": int(row.merged or 0),
            "with_balance": int(row.with_balance or 0), "balance": int(row.balance or 0),
            "unstitched_fans": int(unstitched)}


def overlap_figures(conn: sa.Connection) -> dict[str, Any]:
    """People (live members) by the set of platforms they were recognised on.

    ``by_degree`` counts members on exactly 1, 2, 3 … platforms; ``combinations`` lists every set
    of platforms that occurs with its member count, largest first (the UpSet matrix's columns);
    ``set_sizes`` counts members per platform (the matrix's rows).
    """
    survivor = sa.func.coalesce(members.c.merged_into, members.c.member_id).label("member")
    query = (
        sa.select(survivor, fans.c.platform)
        .select_from(fans.join(members, fans.c.member_id == members.c.member_id))
        .distinct()
        .order_by(survivor, fans.c.platform)
    )
    combos: Counter[tuple[str, ...]] = Counter()
    current: int | None = None
    seen: list[str] = []
    for member, platform in conn.execution_options(yield_per=10_000).execute(query):
        if member != current:
            if seen:
                combos[tuple(seen)] += 1
            current, seen = member, []
        if platform not in seen:
            seen.append(platform)
    if seen:
        combos[tuple(seen)] += 1
    set_sizes: Counter[str] = Counter()
    for combo, n in combos.items():
        for platform in combo:
            set_sizes[platform] += n
    degrees = max(MIN_DEGREES, len(set_sizes))
    by_degree = [{"platforms": k, "members": sum(n for c, n in combos.items() if len(c) == k)}
                 for k in range(1, degrees + 1)]
    combinations = [{"platforms": list(c), "members": n}
                    for c, n in sorted(combos.items(), key=lambda item: (-item[1], len(item[0]), item[0]))]
    return {"members": sum(combos.values()), "by_degree": by_degree, "combinations": combinations,
            "set_sizes": dict(sorted(set_sizes.items()))}


def tier_figures(conn: sa.Connection) -> dict[str, Any]:
    """The fan-tier funnel per platform: fans per tier in path order, and fans without a tier."""
    rows = conn.execute(
        sa.select(fans.c.platform, fans.c.tier, sa.func.count().label("n"))
        .group_by(fans.c.platform, fans.c.tier)
        .order_by(fans.c.platform)
    ).all()
    order = list(TIER_LABELS)
    table: dict[str, dict[str, int]] = {}
    for r in rows:
        counts = table.setdefault(r.platform, {t: 0 for t in [*order, NO_TIER]})
        key = r.tier if r.tier in TIER_LABELS else NO_TIER
        counts[key] += int(r.n)
    return {"order": order, "labels": dict(TIER_LABELS), "no_tier": NO_TIER,
            "by_platform": [{"platform": p, "counts": c} for p, c in sorted(table.items())]}
