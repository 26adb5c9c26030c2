"""The ledger on real SQLite and PostgreSQL: postings, idempotency, overdraw, reversal, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from hub import ledger
from hub.errors import (
    AlreadyReversed,
    IdempotencyConflict,
    InvalidPosting,
    NotFound,
    NotReversible,
    Overdraw,
)
from hub.ledger.tx import run_write
from hub.people.members import create_member
from schemas import LedgerEntry, LedgerKind
from schemas.tables import LedgerEntryRow, LedgerLotRow, MemberCardRow, OutboxRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def new_member(engine: sa.Engine) -> int:
    return run_write(engine, create_member)


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


ENTRIES = LedgerEntryRow.__table__


def test_post_and_balance(engine: sa.Engine) -> None:
    m = new_member(engine)
    p = ledger.post(engine, member_id=m, points=120, reason="welcome", key="k1")
    assert p.created and p.balance == 120 and p.entry.kind is LedgerKind.EARN
    b = ledger.balance(engine, m)
    assert (b["balance"], b["available"], b["lifetime_points"]) == (120, 120, 120)
    assert [e.points for e in ledger.history(engine, m)] == [120]
    assert ledger.verify(engine) == []


def test_same_key_replays_and_different_body_conflicts(engine: sa.Engine) -> None:
    m = new_member(engine)
    first = ledger.post(engine, member_id=m, points=10, reason="r", key="same")
    again = ledger.post(engine, member_id=m, points=10, reason="r", key="same")
    assert not again.created and again.entry == first.entry and again.balance == 10
    with pytest.raises(IdempotencyConflict):
        ledger.post(engine, member_id=m, points=11, reason="r", key="same")
    with pytest.raises(IdempotencyConflict):
        ledger.redeem(engine, member_id=m, points=10, key="same")
    assert count(engine, ENTRIES) == 1
    assert ledger.balance(engine, m)["balance"] == 10


@pytest.mark.parametrize("points", [0, -5, 1.5, True])
def test_bad_points_write_nothing(engine: sa.Engine, points: object) -> None:
    m = new_member(engine)
    with pytest.raises(InvalidPosting):
        ledger.post(engine, member_id=m, points=points, reason="r", key="k")  # type: ignore[arg-type]
    with pytest.raises(InvalidPosting):
        ledger.redeem(engine, member_id=m, points=points, key="k")  # type: ignore[arg-type]
    assert count(engine, ENTRIES) == 0


def test_unknown_member_and_blank_key(engine: sa.Engine) -> None:
    with pytest.raises(NotFound):
        ledger.post(engine, member_id=999, points=1, reason="r", key="k")
    m = new_member(engine)
    with pytest.raises(InvalidPosting):
        ledger.post(engine, member_id=m, points=1, reason="r", key="  ")
    with pytest.raises(InvalidPosting):
        ledger.post(engine, member_id=m, points=1, reason="r", key="k", expires_at=datetime(2030, 1, 1))
    assert count(engine, ENTRIES) == 0


def test_overdraw_is_refused_without_trace(engine: sa.Engine) -> None:
    m = new_member(engine)
    ledger.post(engine, member_id=m, points=50, reason="r", key="e")
    with pytest.raises(Overdraw) as info:
        ledger.redeem(engine, member_id=m, points=51, key="spend")
    assert info.value.available == 50
    assert count(engine, ENTRIES) == 1
    assert ledger.redeem(engine, member_id=m, points=50, key="spend").balance == 0
    assert ledger.verify(engine) == []


def test_database_refuses_negative_balance_directly(engine: sa.Engine) -> None:
    m = new_member(engine)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("UPDATE members SET balance = -1 WHERE member_id = :m"), {"m": m})


def test_redeem_takes_oldest_unexpired_lots_first(engine: sa.Engine) -> None:
    m = new_member(engine)
    ledger.post(engine, member_id=m, points=30, reason="a", key="a", now=T0, expires_at=T0 + timedelta(days=10))
    ledger.post(engine, member_id=m, points=40, reason="b", key="b", now=T0 + timedelta(days=1))
    ledger.post(engine, member_id=m, points=50, reason="c", key="c", now=T0 + timedelta(days=2),
                expires_at=T0 + timedelta(days=30))
    # at day 20 lot a has expired (but not yet been written off): only b and c are usable
    with pytest.raises(Overdraw):
        ledger.redeem(engine, member_id=m, points=91, key="r0", now=T0 + timedelta(days=20))
    ledger.redeem(engine, member_id=m, points=60, key="r1", now=T0 + timedelta(days=20))
    lots = {row.source_entry_id: row.remaining for row in _lots(engine, m)}
    assert sorted(lots.values()) == [0, 30, 30]  # a untouched (expired), b emptied, c 50-20
    written = ledger.expire(engine, as_of=T0 + timedelta(days=20))
    assert [p.entry.points for p in written] == [-30]
    assert ledger.expire(engine, as_of=T0 + timedelta(days=20)) == []  # each expiry once
    assert ledger.balance(engine, m)["balance"] == 30
    assert ledger.verify(engine) == []


def _lots(engine: sa.Engine, member: int) -> list[sa.Row]:
    t = LedgerLotRow.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(t).where(t.c.member_id == member).order_by(t.c.lot_id)).all()


def test_reverse_once_and_restore_lots(engine: sa.Engine) -> None:
    m = new_member(engine)
    exp = T0 + timedelta(days=5)
    ledger.post(engine, member_id=m, points=100, reason="a", key="a", now=T0, expires_at=exp)
    spend = ledger.redeem(engine, member_id=m, points=70, key="r", now=T0)
    rev = ledger.reverse(engine, spend.entry.entry_id, key="undo-r")
    assert rev.entry.points == 70 and rev.entry.reverses_entry_id == spend.entry.entry_id and rev.balance == 100
    again = ledger.reverse(engine, spend.entry.entry_id, key="undo-r")
    assert not again.created and again.entry == rev.entry
    with pytest.raises(AlreadyReversed):
        ledger.reverse(engine, spend.entry.entry_id, key="undo-r-2")
    with pytest.raises(NotReversible):
        ledger.reverse(engine, rev.entry.entry_id, key="undo-undo")
    # the restored points keep their expiry
    assert [p.entry.points for p in ledger.expire(engine, as_of=exp)] == [-30, -70]
    assert ledger.balance(engine, m)["balance"] == 0
    assert ledger.verify(engine) == []


def test_reversing_an_earn_that_was_spent_overdraws(engine: sa.Engine) -> None:
    m = new_member(engine)
    earn = ledger.post(engine, member_id=m, points=100, reason="a", key="a")
    ledger.redeem(engine, member_id=m, points=60, key="r")
    with pytest.raises(Overdraw):
        ledger.reverse(engine, earn.entry.entry_id, key="x")
    ledger.post(engine, member_id=m, points=60, reason="b", key="b")
    rev = ledger.reverse(engine, earn.entry.entry_id, key="x")
    assert rev.balance == 0
    b = ledger.balance(engine, m)
    assert b["lifetime_points"] == 60
    assert ledger.verify(engine) == []


def test_card_updates_queue_and_supersede(engine: sa.Engine) -> None:
    m = new_member(engine)
    with engine.begin() as conn:
        conn.execute(MemberCardRow.__table__.insert(), [
            {"member_id": m, "platform": "douyin", "account_id": "hq", "card_no": "D1", "level": 0, "balance": 0,
             "status": "active", "inserted_at": T0, "updated_at": T0},
            {"member_id": m, "platform": "alipay", "account_id": "shop", "card_no": "A1", "level": 0, "balance": 0,
             "status": "active", "inserted_at": T0, "updated_at": T0},
        ])
    ledger.post(engine, member_id=m, points=10, reason="r", key="1")
    ledger.post(engine, member_id=m, points=1000, reason="r", key="2")
    ob = OutboxRow.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ob).order_by(ob.c.id)).all()
    assert [(r.platform, r.status) for r in rows] == [
        ("douyin", "superseded"), ("alipay", "superseded"), ("douyin", "pending"), ("alipay", "pending")]
    assert rows[-1].payload == {"member_id": m, "card_no": "A1", "balance": 1010, "level": 1}
    assert {r.target for r in rows} == {f"card:{m}"}
    with pytest.raises(IdempotencyConflict):
        ledger.post(engine, member_id=m, points=5, reason="r", key="2")
    assert count(engine, ob) == 4  # a refused posting queues nothing


def test_post_many_matches_post_and_is_idempotent(engine: sa.Engine) -> None:
    a, b = new_member(engine), new_member(engine)
    ledger.post(engine, member_id=a, points=5, reason="r", key="before")
    items = [ledger.Earn(member_id=a, points=10, reason="r", key="p1"),
             ledger.Earn(member_id=b, points=20, reason="r", key="p2"),
             ledger.Earn(member_id=a, points=5, reason="r", key="before"),  # replay of an earlier post
             ledger.Earn(member_id=a, points=10, reason="r", key="p1")]  # repeated inside the page
    out = ledger.post_many(engine, items)
    assert [(p.created, p.entry.points) for p in out] == [(True, 10), (True, 20), (False, 5), (False, 10)]
    assert out[0].entry == out[3].entry and out[0].balance == 15
    again = ledger.post_many(engine, items)
    assert not any(p.created for p in again) and [p.entry for p in again] == [p.entry for p in out]
    with pytest.raises(IdempotencyConflict):
        ledger.post_many(engine, [ledger.Earn(member_id=b, points=1, reason="r", key="new"),
                                  ledger.Earn(member_id=b, points=21, reason="r", key="p2")])
    with pytest.raises(NotFound):
        ledger.post_many(engine, [ledger.Earn(member_id=b, points=1, reason="r", key="new2"),
                                  ledger.Earn(member_id=999, points=1, reason="r", key="new3")])
    assert count(engine, ENTRIES) == 3
    assert (ledger.balance(engine, a)["balance"], ledger.balance(engine, b)["balance"]) == (15, 20)
    assert ledger.verify(engine) == []


def test_post_many_queues_one_card_update_per_member_and_card(engine: sa.Engine) -> None:
    a, b = new_member(engine), new_member(engine)
    with engine.begin() as conn:
        conn.execute(MemberCardRow.__table__.insert(), [
            {"member_id": a, "platform": "douyin", "account_id": "hq", "card_no": "D1", "level": 0, "balance": 0,
             "status": "active", "inserted_at": T0, "updated_at": T0},
            {"member_id": b, "platform": "douyin", "account_id": "hq", "card_no": "D2", "level": 0, "balance": 0,
             "status": "closed", "inserted_at": T0, "updated_at": T0},
        ])
    ledger.post(engine, member_id=a, points=1, reason="r", key="first")
    ledger.post_many(engine, [ledger.Earn(member_id=a, points=600, reason="r", key="p1"),
                              ledger.Earn(member_id=b, points=7, reason="r", key="p2"),
                              ledger.Earn(member_id=a, points=600, reason="r", key="p3")])
    ob = OutboxRow.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ob).order_by(ob.c.id)).all()
    assert [(r.target, r.status) for r in rows] == [(f"card:{a}", "superseded"), (f"card:{a}", "pending")]
    assert rows[-1].payload == {"member_id": a, "card_no": "D1", "balance": 1201, "level": 1}


def test_post_many_stores_what_post_stores(engine: sa.Engine) -> None:
    """Times written by the page path are stored in the columns' own format, so comparisons in
    SQL (expiry) and reads agree with single postings."""
    m = new_member(engine)
    ledger.post(engine, member_id=m, points=5, reason="r", key="one", expires_at=T0 + timedelta(days=1), now=T0)
    shanghai = timezone(timedelta(hours=8))
    out = ledger.post_many(engine, [ledger.Earn(member_id=m, points=7, reason="r", key="page",
                                                expires_at=datetime(2026, 1, 2, 8, tzinfo=shanghai))], now=T0)
    assert out[0].entry.expires_at == T0 + timedelta(days=1) and out[0].entry.expires_at.tzinfo == UTC
    assert ledger.history(engine, m)[-1] == out[0].entry
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT created_at, expires_at FROM ledger_entries ORDER BY entry_id").all()
        earned = conn.exec_driver_sql("SELECT earned_at, expires_at FROM ledger_lots ORDER BY lot_id").all()
        touched = conn.exec_driver_sql("SELECT updated_at FROM members").scalar_one()
    assert stored[0] == stored[1] and earned[0] == earned[1]
    if engine.dialect.name == "sqlite":  # naive UTC text, as UTCDateTimeType writes it
        assert "+" not in touched and len(touched) == len(stored[0][0])
    assert [p.entry.points for p in ledger.expire(engine, as_of=T0 + timedelta(days=1))] == [-5, -7]
    assert ledger.verify(engine) == []


def test_post_many_refuses_a_member_id_that_is_not_a_whole_number(engine: sa.Engine) -> None:
    m = new_member(engine)
    for bad in (str(m), True, 0, -m):
        with pytest.raises(NotFound):
            ledger.post_many(engine, [ledger.Earn(member_id=bad, points=1, reason="r", key=f"k{bad}")])  # type: ignore[arg-type]
    assert count(engine, ENTRIES) == 0


def test_entries_built_without_validation_are_ordinary_models() -> None:
    from hub.ledger.lots import make_entry

    fields = dict(entry_id=3, idempotency_key="k", member_id=2, kind=LedgerKind.EARN, points=5, reason="r",
                  reverses_entry_id=None, expires_at=None, created_at=T0)
    made = make_entry(*fields.values())
    assert made == LedgerEntry.model_construct(**fields) == LedgerEntry.model_validate(fields)
    assert made.model_fields_set == set(fields) and LedgerEntry.model_validate(made.model_dump()) == made
    assert made.model_copy(update={"points": 6}).points == 6 and made.points == 5
