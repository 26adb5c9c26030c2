"""The report's figures about movement: points over time, cards against the ledger, sync health.

``points``
    the ledger's entries summed by kind (earned, redeemed, reversed, expired; merges' transfers
    net to zero and are shown apart), in total and per day (per month when the ledger spans more
    than :data:`DAILY_SPAN_DAYS` days), every period from the first entry to the last present;
``cards``
    active member cards whose balance and level equal their member's (in step) or not (behind),
    per account, with the card updates still queued or dead in the outbox;
``sync``
    per account: each stream's checkpoint, the last checkpoint write and the lag since it, and
    the errors the database keeps (failed callbacks, dead outbox items).  Sync runs themselves are
    not recorded, so a run that failed before writing a page leaves no trace here; ``missing``
    says so in the JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from hub.ledger.cards import CARD_UPDATE
from schemas import LedgerKind
from schemas.tables import (
    AccountRow,
    FanRow,
    LedgerEntryRow,
    MemberCardRow,
    MemberRow,
    OutboxRow,
    SyncCheckpointRow,
    WebhookEventRow,
)

__all__ = ["DAILY_SPAN_DAYS", "KIND_NAMES", "card_figures", "points_figures", "sync_figures"]

entries = LedgerEntryRow.__table__
members = MemberRow.__table__
cards = MemberCardRow.__table__
outbox = OutboxRow.__table__
checkpoints = SyncCheckpointRow.__table__
webhooks = WebhookEventRow.__table__
accounts = AccountRow.__table__
fans = FanRow.__table__

DAILY_SPAN_DAYS = 62
KIND_NAMES = {
    LedgerKind.EARN.value: "earned",
    LedgerKind.REDEEM.value: "redeemed",
    LedgerKind.REVERSAL.value: "reversed",
    LedgerKind.EXPIRY.value: "expired",
    LedgerKind.TRANSFER_IN.value: "transferred",
    LedgerKind.TRANSFER_OUT.value: "transferred",
}
FLOWS = ("earned", "redeemed", "reversed", "expired", "transferred")
MISSING_RUNS = ("sync runs are not recorded: 'last_run' is the last checkpoint write, and a run's errors "
                "appear here only as failed callbacks and dead outbox items")


def _period(conn: sa.Connection, column: sa.ColumnElement[Any], monthly: bool) -> sa.ColumnElement[str]:
    """The UTC day (``YYYY-MM-DD``) or month (``YYYY-MM``) of a timestamp, as text, per backend."""
    if conn.dialect.name == "sqlite":  # stored as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'
        return sa.func.substr(column, 1, 7 if monthly else 10)
    return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM" if monthly else "YYYY-MM-DD")


def _periods(first: date, last: date, monthly: bool) -> list[str]:
    out: list[str] = []
    if monthly:
        y, m = first.year, first.month
        while (y, m) <= (last.year, last.month):
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    else:
        day = first
        while day <= last:
            out.append(day.isoformat())
            day += timedelta(days=1)
    return out


def points_figures(conn: sa.Connection) -> dict[str, Any]:
    """Points by flow in total and over time; each value is the signed sum of the entries' points
    (earned positive; redeemed and expired negative; reversed either way)."""
    span = conn.execute(sa.select(sa.func.min(entries.c.created_at), sa.func.max(entries.c.created_at),
                                  sa.func.count())).one()
    totals = {flow: 0 for flow in FLOWS}
    counts = {flow: 0 for flow in FLOWS}
    outstanding = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(members.c.balance), 0))
                               .where(members.c.merged_into.is_(None))).scalar_one()
    if not span[2]:
        return {"flows": list(FLOWS), "totals": totals, "entries": counts, "granularity": "day", "series": [],
                "outstanding": int(outstanding)}
    first, last = span[0].astimezone(UTC).date(), span[1].astimezone(UTC).date()
    monthly = (last - first).days > DAILY_SPAN_DAYS
    period = _period(conn, entries.c.created_at, monthly).label("period")
    rows = conn.execute(
        sa.select(period, entries.c.kind, sa.func.sum(entries.c.points).label("points"), sa.func.count().label("n"))
        .group_by(period, entries.c.kind)
    ).all()
    series = {p: {flow: 0 for flow in FLOWS} for p in _periods(first, last, monthly)}
    for r in rows:
        flow = KIND_NAMES.get(r.kind, r.kind)
        bucket = series.setdefault(r.period, {f: 0 for f in FLOWS})
        bucket[flow] = bucket.get(flow, 0) + int(r.points)
        totals[flow] = totals.get(flow, 0) + int(r.points)
        counts[flow] = counts.get(flow, 0) + int(r.n)
    return {"flows": list(FLOWS), "totals": totals, "entries": counts, "granularity": "month" if monthly else "day",
            "series": [{"period": p, **v} for p, v in sorted(series.items())], "outstanding": int(outstanding)}


def card_figures(conn: sa.Connection) -> dict[str, Any]:
    """Active member cards in step with the ledger (same balance and level as the member, or its
    survivor when merged) and behind, per account; queued and dead card updates."""
    owner = members.alias("owner")
    survivor = members.alias("survivor")
    balance = sa.func.coalesce(survivor.c.balance, owner.c.balance)
    level = sa.func.coalesce(survivor.c.level, owner.c.level)
    in_step = sa.and_(cards.c.balance == balance, cards.c.level == level)
    rows = conn.execute(
        sa.select(cards.c.platform, cards.c.account_id, sa.func.count().label("n"),
                  sa.func.sum(sa.case((in_step, 1), else_=0)).label("in_step"))
        .select_from(cards.join(owner, owner.c.member_id == cards.c.member_id)
                     .outerjoin(survivor, survivor.c.member_id == owner.c.merged_into))
        .where(cards.c.status == "active")
        .group_by(cards.c.platform, cards.c.account_id)
        .order_by(cards.c.platform, cards.c.account_id)
    ).all()
    queued = conn.execute(
        sa.select(outbox.c.platform, outbox.c.account_id, outbox.c.status, sa.func.count().label("n"))
        .where(outbox.c.kind == CARD_UPDATE, outbox.c.status.in_(("pending", "sending", "dead")))
        .group_by(outbox.c.platform, outbox.c.account_id, outbox.c.status)
    ).all()
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        by_key[(r.platform, r.account_id)] = {"platform": r.platform, "account_id": r.account_id, "cards": int(r.n),
                                              "in_step": int(r.in_step or 0), "behind": int(r.n) - int(r.in_step or 0),
                                              "queued": 0, "dead": 0}
    for r in queued:
        item = by_key.setdefault((r.platform, r.account_id), {"platform": r.platform, "account_id": r.account_id,
                                                              "cards": 0, "in_step": 0, "behind": 0, "queued": 0,
                                                              "dead": 0})
        item["dead" if r.status == "dead" else "queued"] += int(r.n)
    by_account = [by_key[k] for k in sorted(by_key)]
    total = {k: sum(a[k] for a in by_account) for k in ("cards", "in_step", "behind", "queued", "dead")}
    return {**total, "by_account": by_account}


def sync_figures(conn: sa.Connection, now: datetime, configured: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """Sync health per account: every account the database knows of (from any table) and every
    ``configured`` one."""
    known: set[tuple[str, str]] = set(configured)
    for table in (accounts, fans, checkpoints, webhooks, outbox):
        known.update((r[0], r[1]) for r in conn.execute(
            sa.select(table.c.platform, table.c.account_id).distinct()))
    health = {k: {"platform": k[0], "account_id": k[1], "streams": [], "last_run": None, "lag_seconds": None,
                  "webhooks_failed": 0, "webhooks_waiting": 0, "outbox_dead": 0, "last_error": None}
              for k in known}
    for r in conn.execute(sa.select(checkpoints.c.platform, checkpoints.c.account_id, checkpoints.c.stream,
                                    checkpoints.c.cursor, checkpoints.c.updated_at)
                          .order_by(checkpoints.c.platform, checkpoints.c.account_id, checkpoints.c.stream)):
        item = health[(r.platform, r.account_id)]
        updated = r.updated_at.astimezone(UTC)
        item["streams"].append({"stream": r.stream, "updated_at": updated.isoformat(timespec="seconds"),
                                "complete": r.cursor is None,
                                "lag_seconds": max(0, int((now - updated).total_seconds()))})
        if item["last_run"] is None or updated.isoformat(timespec="seconds") > item["last_run"]:
            item["last_run"] = updated.isoformat(timespec="seconds")
            item["lag_seconds"] = max(0, int((now - updated).total_seconds()))
    for r in conn.execute(sa.select(webhooks.c.platform, webhooks.c.account_id, webhooks.c.status,
                                    sa.func.count().label("n"))
                          .where(webhooks.c.status.in_(("failed", "received")))
                          .group_by(webhooks.c.platform, webhooks.c.account_id, webhooks.c.status)):
        key = "webhooks_failed" if r.status == "failed" else "webhooks_waiting"
        health[(r.platform, r.account_id)][key] = int(r.n)
    for r in conn.execute(sa.select(outbox.c.platform, outbox.c.account_id, sa.func.count().label("n"))
                          .where(outbox.c.status == "dead").group_by(outbox.c.platform, outbox.c.account_id)):
        health[(r.platform, r.account_id)]["outbox_dead"] = int(r.n)
    for table, error, failed in ((webhooks, webhooks.c.error, webhooks.c.status == "failed"),
                                 (outbox, outbox.c.last_error, outbox.c.status == "dead")):
        newest = (sa.select(sa.func.max(table.c.id).label("id")).where(failed, error.is_not(None))
                  .group_by(table.c.platform, table.c.account_id).subquery())
        for r in conn.execute(sa.select(table.c.platform, table.c.account_id, error.label("error"))
                              .join(newest, newest.c.id == table.c.id)):
            health[(r.platform, r.account_id)]["last_error"] = str(r.error)[:200]
    rows = [health[k] for k in sorted(health)]
    return {"accounts": rows, "errors": sum(a["webhooks_failed"] + a["outbox_dead"] for a in rows),
            "missing": MISSING_RUNS}
