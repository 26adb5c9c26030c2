"""After records land: stitch fans into members and post orders' and points events' points.

Rows carry a pending-work flag (``fans.needs_stitch``, ``orders.needs_apply``,
``points_events.needs_apply``) that :mod:`hub.sync.store` raises when it writes them.
:func:`apply_pending` does the work the flags ask for and clears each flag once its work is
committed, so a crash in between only means the work is done again, and every posting is
idempotent by key.  It works in batches: memory stays flat however much is pending.

1. **Buyers.** An order's buyer becomes a fan of the shop account if it is not one already
   (Kuaishou and Xiaohongshu know their customers only from orders).
2. **Stitch.** Fans without a member are stitched in one pass; fans whose identity keys changed
   are stitched again, incrementally (which may merge members).
3. **Orders.** Each flagged order earns through the ``earn_points`` hook when paid, and gives
   back proportionally when refunded (:func:`hub.ledger.earn_from_order`).
4. **Points events.** A platform's points event is posted to its fan's member: a credit as
   earned points, a debit as a redemption; the key is ``points:<platform>:<account>:<event id>``.
5. **Cards.** A member card a platform reported on a fan (opened or closed) becomes the member's
   card on that account; an opened card is queued a push of the member's unified balance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from hub.config import Settings
from hub.errors import HubError
from hub.people.identity import stitch, stitch_all
from hub.ledger import LedgerPolicy, earn_from_order, post, redeem
from hub.ledger.cards import CARD_UPDATE, card_target
from hub.outbox.drain import enqueue
from hub.plugins import PluginHost
from hub.sync.store import upsert
from schemas import CardStatus, Fan, Order, PointsEvent
from schemas.tables import FanRow, MemberCardRow, MemberRow, OrderRow, PointsEventRow, utcnow

__all__ = ["ApplySummary", "apply_pending"]

BATCH = 500
fans_t = FanRow.__table__
orders_t = OrderRow.__table__
points_t = PointsEventRow.__table__
cards_t = MemberCardRow.__table__
members_t = MemberRow.__table__


@dataclass
class ApplySummary:
    """What :func:`apply_pending` did."""

    buyers_added: int = 0
    fans_stitched: int = 0
    members_created: int = 0
    merges: int = 0
    blocked_keys: list[dict[str, Any]] = field(default_factory=list)
    orders_applied: int = 0
    points_events_applied: int = 0
    cards_updated: int = 0
    errors: list[str] = field(default_factory=list)


def _flagged_ids(engine: sa.Engine, table: sa.Table, flag: str, after: int) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table.c.id).where(table.c[flag].is_(True), table.c.id > after)
                                 .order_by(table.c.id).limit(BATCH)).scalars())


def _clear(engine: sa.Engine, table: sa.Table, flag: str, ids: list[int]) -> None:
    if ids:
        with engine.begin() as conn:
            conn.execute(table.update().where(table.c.id.in_(ids)).values({flag: False}))


def _add_buyers(engine: sa.Engine, settings: Settings) -> int:
    added, last = 0, 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(orders_t.c.id, orders_t.c.platform, orders_t.c.account_id, orders_t.c.buyer_uid)
                .select_from(orders_t.outerjoin(fans_t, sa.and_(
                    fans_t.c.platform_uid == orders_t.c.buyer_uid, fans_t.c.platform == orders_t.c.platform,
                    fans_t.c.account_id == orders_t.c.account_id)))
                .where(orders_t.c.needs_apply.is_(True), fans_t.c.id.is_(None), orders_t.c.id > last)
                .order_by(orders_t.c.id).limit(BATCH)
            ).all()
        if not rows:
            return added
        buyers = [Fan(platform=r.platform, account_id=r.account_id, platform_uid=r.buyer_uid) for r in rows]
        with engine.begin() as conn:
            added += upsert(conn, buyers, settings.phones).inserted
        last = rows[-1].id


def _stitch(engine: sa.Engine, host: PluginHost, settings: Settings, summary: ApplySummary) -> None:
    limit = settings.ledger.identity_key_limit
    # the fans without a member: stitch_all takes them (and clears their flags), then the rest
    reports = [stitch_all(engine, host=host, limit=limit)]
    last = 0
    while ids := _flagged_ids(engine, fans_t, "needs_stitch", last):
        reports.append(stitch(engine, ids, host=host, limit=limit))
        _clear(engine, fans_t, "needs_stitch", ids)
        last = ids[-1]
    for report in reports:
        summary.fans_stitched += report.fans
        summary.members_created += report.members_created
        summary.merges += report.merges
        summary.blocked_keys.extend(report.blocked)


def _policy(settings: Settings) -> LedgerPolicy:
    return LedgerPolicy(level_thresholds=tuple(settings.ledger.level_thresholds))


def _expiry(settings: Settings, at: Any) -> Any:
    days = settings.ledger.earned_points_expire_days
    return at + timedelta(days=days) if days and at is not None else None


def _apply_orders(engine: sa.Engine, host: PluginHost, settings: Settings, summary: ApplySummary) -> None:
    policy, last = _policy(settings), 0
    columns = [c for c in orders_t.c if c.name in Order.model_fields]
    while ids := _flagged_ids(engine, orders_t, "needs_apply", last):
        with engine.connect() as conn:
            rows = conn.execute(sa.select(*columns).where(orders_t.c.id.in_(ids)).order_by(orders_t.c.id)).mappings().all()
        applied = []
        for row_id, row in zip(ids, rows, strict=True):
            order = Order.model_validate(dict(row))
            try:
                earn_from_order(engine, order, host=host, policy=policy, expires_at=_expiry(settings, order.paid_at))
                applied.append(row_id)
            except HubError as exc:
                summary.errors.append(f"order {order.platform}:{order.account_id}:{order.order_id}: {exc}")
        _clear(engine, orders_t, "needs_apply", applied)
        summary.orders_applied += len(applied)
        last = ids[-1]


def _apply_points(engine: sa.Engine, host: PluginHost, settings: Settings, summary: ApplySummary) -> None:
    policy, last = _policy(settings), 0
    columns = [c for c in points_t.c if c.name in PointsEvent.model_fields]
    while ids := _flagged_ids(engine, points_t, "needs_apply", last):
        with engine.connect() as conn:
            rows = conn.execute(sa.select(*columns, fans_t.c.member_id, fans_t.c.id.label("fan_id"))
                                .select_from(points_t.outerjoin(fans_t, sa.and_(
                                    fans_t.c.platform_uid == points_t.c.fan_uid,
                                    fans_t.c.platform == points_t.c.platform,
                                    fans_t.c.account_id == points_t.c.account_id)))
                                .where(points_t.c.id.in_(ids)).order_by(points_t.c.id)).mappings().all()
        done = []
        for row_id, row in zip(ids, rows, strict=True):
            event = PointsEvent.model_validate({k: row[k] for k in PointsEvent.model_fields})
            key = f"points:{event.platform}:{event.account_id}:{event.event_id}"
            where = f"points event {event.platform}:{event.account_id}:{event.event_id}"
            if row["member_id"] is None:
                summary.errors.append(f"{where}: fan {event.fan_uid} is not known yet")
                continue
            try:
                if event.delta > 0:
                    post(engine, member_id=row["member_id"], points=event.delta, reason=event.reason, key=key,
                         expires_at=event.expires_at or _expiry(settings, event.occurred_at),
                         fan_id=row["fan_id"], now=event.occurred_at, policy=policy, host=host)
                else:
                    redeem(engine, member_id=row["member_id"], points=-event.delta, reason=event.reason, key=key,
                           now=event.occurred_at, policy=policy, host=host)
            except HubError as exc:  # an overdraw or a conflict will not pass by retrying
                summary.errors.append(f"{where}: {exc}")
            done.append(row_id)
        _clear(engine, points_t, "needs_apply", done)
        summary.points_events_applied += len(done)
        last = ids[-1]


def _apply_cards(engine: sa.Engine, summary: ApplySummary) -> None:
    last = 0
    while ids := _flagged_ids(engine, fans_t, "needs_card", last):
        done = []
        with engine.begin() as conn:
            rows = conn.execute(sa.select(fans_t.c.id, fans_t.c.platform, fans_t.c.account_id, fans_t.c.member_id,
                                          fans_t.c.card_no, fans_t.c.card_status)
                                .where(fans_t.c.id.in_(ids), fans_t.c.member_id.is_not(None))).all()
            for fan in rows:
                _card_for(conn, fan)
                done.append(fan.id)
            if done:
                conn.execute(fans_t.update().where(fans_t.c.id.in_(done)).values(needs_card=False))
        summary.cards_updated += len(done)
        last = ids[-1]


def _card_for(conn: sa.Connection, fan: Any) -> None:
    """Make the fan's reported card the member's card on that account (in ``conn``)."""
    where = (cards_t.c.member_id == fan.member_id, cards_t.c.platform == fan.platform,
             cards_t.c.account_id == fan.account_id)
    status = fan.card_status or CardStatus.ACTIVE
    values = {"status": status, "updated_at": utcnow(), **({"card_no": fan.card_no} if fan.card_no else {})}
    if conn.execute(cards_t.update().where(*where).values(**values)).rowcount == 0:
        conn.execute(cards_t.insert().values(member_id=fan.member_id, platform=fan.platform,
                                             account_id=fan.account_id, inserted_at=utcnow(), **values))
    if status == CardStatus.ACTIVE:
        member = conn.execute(sa.select(members_t.c.balance, members_t.c.level)
                              .where(members_t.c.member_id == fan.member_id)).one()
        card_no = conn.execute(sa.select(cards_t.c.card_no).where(*where)).scalar_one()
        enqueue(conn, platform=fan.platform, account_id=fan.account_id, kind=CARD_UPDATE,
                target=card_target(fan.member_id),
                payload={"member_id": fan.member_id, "card_no": card_no, "balance": member.balance,
                         "level": member.level})


def apply_pending(engine: sa.Engine, host: PluginHost, settings: Settings) -> ApplySummary:
    """Do the pending work the flags ask for: buyers, stitching, orders, points events, cards."""
    summary = ApplySummary()
    summary.buyers_added = _add_buyers(engine, settings)
    _stitch(engine, host, settings, summary)
    _apply_orders(engine, host, settings, summary)
    _apply_points(engine, host, settings, summary)
    _apply_cards(engine, summary)
    return summary
