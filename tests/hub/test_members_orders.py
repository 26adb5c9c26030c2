"""Earning from orders (the ``earn_points`` hook, refunds, replays) and fan tiers (``decide_tier``)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hub import hookimpl, ledger
from hub.errors import NotFound
from hub.people.members import refresh_tiers
from hub.plugins import load_plugins
from schemas import FanTier, Order, OrderStatus
from schemas.tables import FanRow, LedgerEntryRow

from .helpers_members import T0, add_fan, new_member

fans = FanRow.__table__


def order(status: OrderStatus, amount: int = 12_345, refunded: int = 0, oid: str = "o1") -> Order:
    return Order(platform="kuaishou", account_id="shop", order_id=oid, buyer_uid="b1", amount_fen=amount,
                 refunded_fen=refunded, status=status, paid_at=T0)


@pytest.fixture
def buyer(engine: sa.Engine) -> int:
    member = new_member(engine)
    add_fan(engine, "kuaishou", "b1", account="shop", member_id=member)
    return member


def entries(engine: sa.Engine) -> list[tuple[str, int]]:
    t = LedgerEntryRow.__table__
    with engine.connect() as conn:
        return [(r.kind, r.points) for r in conn.execute(sa.select(t).order_by(t.c.entry_id))]


def test_paid_order_earns_once_and_refunds_take_back_proportionally(engine: sa.Engine, buyer: int) -> None:
    assert ledger.earn_from_order(engine, order(OrderStatus.CREATED)) == []
    first = ledger.earn_from_order(engine, order(OrderStatus.PAID))
    assert [p.entry.points for p in first] == [123]  # one point per whole yuan of 123.45
    assert not ledger.earn_from_order(engine, order(OrderStatus.COMPLETED))[0].created  # a replay
    partial = ledger.earn_from_order(engine, order(OrderStatus.PARTIALLY_REFUNDED, refunded=5_000))
    assert [p.entry.points for p in partial] == [123, -49]  # 123 * 5000 // 12345
    ledger.earn_from_order(engine, order(OrderStatus.PARTIALLY_REFUNDED, refunded=5_000))  # replay: no-op
    ledger.earn_from_order(engine, order(OrderStatus.REFUNDED, refunded=12_345))
    assert entries(engine) == [("earn", 123), ("reversal", -49), ("reversal", -74)]
    ledger.earn_from_order(engine, order(OrderStatus.REFUNDED, refunded=12_345))
    assert len(entries(engine)) == 3
    b = ledger.balance(engine, buyer)
    assert (b["balance"], b["lifetime_points"]) == (0, 0)
    assert ledger.verify(engine) == []


def test_earn_points_hook_decides(engine: sa.Engine, buyer: int) -> None:
    class Double:
        @hookimpl
        def earn_points(self, order):  # type: ignore[no-untyped-def]
            return order.amount_fen // 50

    host = load_plugins(extra=[(Double(), "undo-double")])
    assert [p.entry.points for p in ledger.earn_from_order(engine, order(OrderStatus.PAID), host=host)] == [246]


def test_unknown_buyer_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(NotFound):
        ledger.earn_from_order(engine, order(OrderStatus.PAID))
    assert entries(engine) == []


def test_fan_tiers_follow_the_default_rule_and_the_hook(engine: sa.Engine) -> None:
    member = new_member(engine)
    ids = [add_fan(engine, "douyin", f"d{i}", member_id=member) for i in range(4)]
    with engine.begin() as conn:
        for fan_id, follow, seen in zip(ids, ["unfollowed", "following", "following", "following"], [0, 0, 5, 25],
                                        strict=True):
            conn.execute(fans.update().where(fans.c.id == fan_id).values(
                follow_state=follow, interactions={"im": seen}))
    assert refresh_tiers(engine) == 4
    with engine.connect() as conn:
        tiers = list(conn.execute(sa.select(fans.c.tier).order_by(fans.c.id)).scalars())
    assert tiers == [FanTier.PROSPECT, FanTier.PASSERBY, FanTier.FOND, FanTier.DEVOTED]
    assert refresh_tiers(engine) == 0
    ledger.post(engine, member_id=member, points=1, reason="r", key="k")
    assert refresh_tiers(engine) == 2  # a follower whose member earned points is devoted

    class Everyone:
        @hookimpl
        def decide_tier(self, fan, stats):  # type: ignore[no-untyped-def]
            return FanTier.FOND

    assert refresh_tiers(engine, host=load_plugins(extra=[(Everyone(), "undo-everyone")])) == 4
