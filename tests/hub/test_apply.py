"""After a sync: buyers become fans, fans become members, orders and points events post points."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from hub.sync.apply import apply_pending
from hub.ledger import balance, verify
from hub.plugins import load_plugins
from hub.sync.store import upsert
from hub.sync.engine import sync_accounts
from hub.testing import serve_asgi
from schemas import Fan, Order, PointsEvent
from schemas.tables import FanRow, OrderRow
from siyu_testplatform.sandbox import Population, make_app
from tests.hub.sandboxes import settings_for, tp_account

HOST = load_plugins()
NOW = datetime(2024, 5, 1, tzinfo=UTC)


def member_of(engine, uid, platform="testplat", account="main"):
    t = FanRow.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(t.c.member_id).where(t.c.platform == platform, t.c.account_id == account,
                                                           t.c.platform_uid == uid)).scalar_one()


async def test_orders_synced_alone_bring_their_buyers_who_earn_their_points(engine, database_url):
    with serve_asgi(make_app(40)) as url:
        settings = settings_for(HOST, database_url, tp_account(url))
        await sync_accounts(HOST, settings, engine, stream="orders")
    summary = apply_pending(engine, HOST, settings)
    pop = Population(40)
    buyers = {pop.order(i)["buyer_uid"] for i in range(pop.orders)}
    assert summary.buyers_added == len(buyers) and summary.errors == []
    assert summary.orders_applied == pop.orders
    expected: dict[str, int] = {}
    for i in range(pop.orders):
        order = pop.order(i)
        expected[order["buyer_uid"]] = expected.get(order["buyer_uid"], 0) + int(order["amount_fen"]) // 100
    for uid, points in expected.items():
        assert balance(engine, member_of(engine, uid))["balance"] == points
    again = apply_pending(engine, HOST, settings)
    assert (again.buyers_added, again.orders_applied, again.fans_stitched) == (0, 0, 0)
    assert verify(engine) == []


def test_a_refund_takes_back_and_a_replay_changes_nothing(engine, database_url):
    settings = settings_for(HOST, database_url)
    order = Order(platform="shop", account_id="s1", order_id="o1", buyer_uid="b1", amount_fen=10_000,
                  status="paid", paid_at=NOW)
    with engine.begin() as conn:
        upsert(conn, [order], settings.phones)
    apply_pending(engine, HOST, settings)
    member = member_of(engine, "b1", "shop", "s1")
    assert balance(engine, member)["balance"] == 100
    with engine.begin() as conn:
        upsert(conn, [order.model_copy(update={"status": "partially_refunded", "refunded_fen": 2_500})], settings.phones)
    assert apply_pending(engine, HOST, settings).orders_applied == 1
    assert balance(engine, member)["balance"] == 75
    with engine.begin() as conn:  # the same status again: nothing changes, nothing is flagged
        result = upsert(conn, [order.model_copy(update={"status": "partially_refunded", "refunded_fen": 2_500})],
                        settings.phones)
    assert result.unchanged == 1
    assert apply_pending(engine, HOST, settings).orders_applied == 0
    assert balance(engine, member)["balance"] == 75


def test_points_events_post_to_the_member_and_a_phone_joins_two_platforms(engine, database_url):
    settings = settings_for(HOST, database_url)
    fans = [Fan(platform="douyin", account_id="ent", platform_uid="d1", phone="13800138000"),
            Fan(platform="wecom", account_id="hq", platform_uid="w1", phone="+86 138-0013-8000")]
    events = [PointsEvent(platform="douyin", account_id="ent", event_id="e1", fan_uid="d1", delta=50,
                          reason="check-in", occurred_at=NOW),
              PointsEvent(platform="douyin", account_id="ent", event_id="e2", fan_uid="d1", delta=-20,
                          reason="coupon", occurred_at=NOW),
              PointsEvent(platform="douyin", account_id="ent", event_id="e3", fan_uid="ghost", delta=5,
                          reason="who?", occurred_at=NOW)]
    with engine.begin() as conn:
        upsert(conn, [*fans, *events], settings.phones)
    summary = apply_pending(engine, HOST, settings)
    assert member_of(engine, "d1", "douyin", "ent") == member_of(engine, "w1", "wecom", "hq")
    assert balance(engine, member_of(engine, "w1", "wecom", "hq"))["balance"] == 30
    assert summary.points_events_applied == 2
    assert any("ghost is not known" in e for e in summary.errors)
    # the unknown fan's event waits; once the fan arrives it is posted
    with engine.begin() as conn:
        upsert(conn, [Fan(platform="douyin", account_id="ent", platform_uid="ghost")], settings.phones)
    later = apply_pending(engine, HOST, settings)
    assert later.points_events_applied == 1 and later.errors == []
    assert balance(engine, member_of(engine, "ghost", "douyin", "ent"))["balance"] == 5


def test_a_key_that_arrives_later_merges_members(engine, database_url):
    settings = settings_for(HOST, database_url)
    with engine.begin() as conn:
        upsert(conn, [Fan(platform="douyin", account_id="ent", platform_uid="d1", union_id="x1"),
                      Fan(platform="wecom", account_id="hq", platform_uid="w1", phone="13900139000")], settings.phones)
    apply_pending(engine, HOST, settings)
    assert member_of(engine, "d1", "douyin", "ent") != member_of(engine, "w1", "wecom", "hq")
    with engine.begin() as conn:  # the Douyin fan's phone becomes known
        upsert(conn, [Fan(platform="douyin", account_id="ent", platform_uid="d1", phone="13900139000")], settings.phones)
    summary = apply_pending(engine, HOST, settings)
    assert summary.merges == 1
    assert member_of(engine, "d1", "douyin", "ent") == member_of(engine, "w1", "wecom", "hq")
    with engine.connect() as conn:
        flagged = conn.execute(sa.select(sa.func.count()).select_from(FanRow.__table__)
                               .where(FanRow.__table__.c.needs_stitch.is_(True))).scalar_one()
        pending_orders = conn.execute(sa.select(sa.func.count()).select_from(OrderRow.__table__)
                                      .where(OrderRow.__table__.c.needs_apply.is_(True))).scalar_one()
    assert flagged == 0 and pending_orders == 0


def test_a_card_a_platform_reports_becomes_the_members_card_and_is_pushed_the_balance(engine, database_url):
    from hub.ledger import post
    from schemas.tables import MemberCardRow, OutboxRow

    settings = settings_for(HOST, database_url)
    with engine.begin() as conn:
        upsert(conn, [Fan(platform="douyin", account_id="ent", platform_uid="d1", phone="13700137000"),
                      Fan(platform="wecom", account_id="hq", platform_uid="w1", phone="13700137000")], settings.phones)
    apply_pending(engine, HOST, settings)
    member = member_of(engine, "d1", "douyin", "ent")
    post(engine, member_id=member, points=88, reason="welcome", key="welcome-d1")
    with engine.begin() as conn:  # a life_member_join callback: the fan opened the Douyin card
        upsert(conn, [Fan(platform="douyin", account_id="ent", platform_uid="d1", card_no="DY-1",
                          card_status="active")], settings.phones)
    summary = apply_pending(engine, HOST, settings)
    assert summary.cards_updated == 1
    cards, outbox = MemberCardRow.__table__, OutboxRow.__table__
    with engine.connect() as conn:
        card = conn.execute(sa.select(cards)).mappings().one()
        queued = conn.execute(sa.select(outbox).where(outbox.c.status == "pending")).mappings().all()
    assert (card["member_id"], card["platform"], card["card_no"], card["status"]) == (member, "douyin", "DY-1", "active")
    assert [(q["platform"], q["payload"]["balance"], q["payload"]["card_no"]) for q in queued] == [("douyin", 88, "DY-1")]
    with engine.begin() as conn:  # life_member_leave
        upsert(conn, [Fan(platform="douyin", account_id="ent", platform_uid="d1", card_status="closed")],
               settings.phones)
    apply_pending(engine, HOST, settings)
    with engine.connect() as conn:
        assert conn.execute(sa.select(cards.c.status, cards.c.card_no)).one() == ("closed", "DY-1")


def test_an_account_status_record_is_stored(engine, database_url):
    from schemas import Account
    from schemas.tables import AccountRow

    settings = settings_for(HOST, database_url)
    with engine.begin() as conn:
        upsert(conn, [Account(platform="douyin", account_id="ent", status="unauthorised")], settings.phones)
        upsert(conn, [Account(platform="douyin", account_id="ent2")], settings.phones)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(AccountRow.__table__.c.account_id, AccountRow.__table__.c.status)).all())
    assert rows == {"ent": "unauthorised", "ent2": "active"}


def test_a_stitching_merge_is_announced_and_a_second_card_on_one_account_is_closed(engine, database_url):
    import hub
    from hub.ledger import post
    from schemas.tables import MemberCardRow, OutboxRow

    seen = []

    class Observer:
        @hub.hookimpl
        def track_event(self, event):
            seen.append(event)

    host = load_plugins(extra=[(Observer(), "undo-observer")])
    settings = settings_for(host, database_url)
    with engine.begin() as conn:  # two people so far, each with a Douyin card on the same account
        upsert(conn, [Fan(platform="douyin", account_id="ent", platform_uid="d1", card_no="C1", card_status="active"),
                      Fan(platform="douyin", account_id="ent", platform_uid="d2", card_no="C2", card_status="active")],
               settings.phones)
    apply_pending(engine, host, settings)
    first, second = member_of(engine, "d1", "douyin", "ent"), member_of(engine, "d2", "douyin", "ent")
    post(engine, member_id=first, points=10, reason="r", key="p1")
    post(engine, member_id=second, points=5, reason="r", key="p2")
    with engine.begin() as conn:  # the same phone turns up on both: one person
        upsert(conn, [Fan(platform="douyin", account_id="ent", platform_uid="d1", phone="13600136000"),
                      Fan(platform="douyin", account_id="ent", platform_uid="d2", phone="13600136000")],
               settings.phones)
    summary = apply_pending(engine, host, settings)
    assert summary.merges == 1
    merges = [e for e in seen if e.name == "members_merged"]
    assert [(e.survivor, e.merged) for e in merges] == [(min(first, second), max(first, second))]
    cards, outbox = MemberCardRow.__table__, OutboxRow.__table__
    with engine.connect() as conn:
        states = dict(conn.execute(sa.select(cards.c.card_no, cards.c.status)).all())
        pushes = conn.execute(sa.select(outbox.c.payload).where(outbox.c.status == "pending")).scalars().all()
    survivor_card = "C1" if first < second else "C2"
    closed_card = "C2" if first < second else "C1"
    assert states == {survivor_card: "active", closed_card: "closed"}
    assert [(p["card_no"], p["balance"]) for p in pushes] == [(survivor_card, 15)]


def test_other_phones_are_kept_as_hashes_and_join_people_like_the_phone(engine, database_url):
    settings = settings_for(HOST, database_url)
    with engine.begin() as conn:
        upsert(conn, [Fan(platform="wecom", account_id="hq", platform_uid="w1", phone="13800000001",
                          other_phones=["13800000002", "+86 138 0000 0003"]),
                      Fan(platform="douyin", account_id="ent", platform_uid="d1", phone="13800000003")],
               settings.phones)
    apply_pending(engine, HOST, settings)
    assert member_of(engine, "w1", "wecom", "hq") == member_of(engine, "d1", "douyin", "ent")
    with engine.connect() as conn:
        keys = conn.execute(sa.select(FanRow.__table__.c.identity_keys).where(
            FanRow.__table__.c.platform_uid == "w1")).scalar_one()
    assert sorted(keys.values()) == sorted(settings.phones.hash(p) for p in ("+8613800000002", "+8613800000003"))
    assert "13800000002" not in str(keys)
