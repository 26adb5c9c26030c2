"""Points from orders: the ``earn_points`` hook decides, refunds take back proportionally.

An order earns once, under the key ``order:<platform>:<account>:<order_id>:earn``, when it is
first seen paid.  A refund of ``refunded_fen`` takes back ``earned × refunded_fen ÷ amount_fen``
(rounded down; a full refund takes back everything) less what earlier refunds of the order took,
under the key ``…:refund:<refunded_fen>``.  So replaying any status of an order is a no-op.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hub import defaults
from hub.errors import NotFound
from hub.ledger.cards import LedgerPolicy
from hub.ledger.lots import Posted, apply_change, body_hash, consume, entries, entry_model, find_replay, insert_entry
from hub.ledger.postings import DEFAULT_POLICY, announce, earn_in
from hub.ledger.tx import resolve_member, run_write
from schemas import LedgerKind, Order, OrderStatus
from schemas.tables import FanRow, utcnow

__all__ = ["PAID_STATUSES", "earn_from_order", "order_key"]

fans = FanRow.__table__
PAID_STATUSES = {OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.COMPLETED,
                 OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}


def order_key(order: Order) -> str:
    return f"order:{order.platform}:{order.account_id}:{order.order_id}"


def _earned_by_rule(order: Order, host: Any) -> int:
    as_paid = order.model_copy(update={"status": OrderStatus.PAID, "refunded_fen": 0})
    points = host.hook.earn_points(order=as_paid) if host is not None else defaults.earn_points(as_paid)
    if not isinstance(points, int) or isinstance(points, bool) or points < 0:
        raise NotFound(f"earn_points returned {points!r} for order {order.order_id}; expected a whole number ≥ 0")
    return points


def earn_from_order(
    engine: sa.Engine,
    order: Order,
    *,
    host: Any = None,
    expires_at: datetime | None = None,
    policy: LedgerPolicy = DEFAULT_POLICY,
) -> list[Posted]:
    """Post what ``order`` earns and take back what its refunds cancel; returns the postings
    this call made or replayed.

    :param order: the canonical order; its buyer must be a stitched fan.
    :param host: the plugin host whose ``earn_points`` decides (default: the hub's rule).
    :param expires_at: when the earned points expire, if they do.
    :raises NotFound: the buyer is not a known fan with a member.
    """
    if order.status not in PAID_STATUSES:
        return []
    earned = _earned_by_rule(order, host)
    if earned == 0:
        return []
    base = order_key(order)

    def work(conn: sa.Connection) -> list[Posted]:
        fan = conn.execute(sa.select(fans.c.id, fans.c.member_id).where(
            fans.c.platform == order.platform, fans.c.account_id == order.account_id,
            fans.c.platform_uid == order.buyer_uid)).first()
        if fan is None or fan.member_id is None:
            raise NotFound(f"buyer of order {order.order_id} on {order.platform}:{order.account_id} is not a stitched fan")
        out = [earn_in(conn, member_id=fan.member_id, points=earned, reason=f"order {order.order_id}",
                       key=f"{base}:earn", expires_at=expires_at, fan_id=fan.id,
                       now=order.paid_at or utcnow(), policy=policy)]
        if order.refunded_fen > 0:
            refund = _refund(conn, order, base, earned, out[0], policy)
            if refund is not None:
                out.append(refund)
        return out

    posted = run_write(engine, work)
    announce(host, posted)
    return posted


def _refund(conn: sa.Connection, order: Order, base: str, earned: int, earn: Posted, policy: LedgerPolicy) -> Posted | None:
    target = earned if order.refunded_fen >= order.amount_fen else earned * order.refunded_fen // order.amount_fen
    key = f"{base}:refund:{order.refunded_fen}"
    digest = body_hash({"op": "order_refund", "order": base, "refunded_fen": order.refunded_fen, "target": target})
    replay = find_replay(conn, key, digest)
    if replay is not None:
        return replay
    taken = -int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(entries.c.points), 0)).where(
        entries.c.idempotency_key.startswith(f"{base}:refund:", autoescape=True))).scalar_one())
    delta = target - taken
    if delta <= 0:
        return None
    member = resolve_member(conn, earn.member_id)
    row = insert_entry(conn, key=key, member_id=member.member_id, kind=LedgerKind.REVERSAL, points=-delta,
                       reason=f"refund of order {order.order_id} ({order.refunded_fen} fen)", digest=digest)
    consume(conn, member_id=member.member_id, points=delta, entry_id=row.entry_id,
            prefer_origin=earn.entry.entry_id)
    balance, _, _ = apply_change(conn, member, points=-delta, lifetime=-delta, policy=policy)
    return Posted(entry_model(row), True, member.member_id, balance)
