"""Identity stitching on both backends: keys, placeholders, blocking, determinism, hook keys."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from hub import hookimpl, ledger
from hub.people.identity import fan_keys, stitch, stitch_all, usable
from hub.people.members import FanRef, split
from hub.plugins import load_plugins
from schemas.tables import BlockedIdentityKeyRow, FanRow, MemberChangeRow

from .helpers_members import PHONES, add_fan, grouping

fans = FanRow.__table__


@pytest.mark.parametrize("value", ["", "  ", "null", "NULL", "None", "-1", "0", "0000000", "undefined", "1111", None])
def test_placeholders_are_never_keys(value: object) -> None:
    assert usable(value) is None


def test_keys_are_namespaced_by_platform_family() -> None:
    class Row:
        platform, union_id, phone_hash, identity_keys = "wecom", "U1", None, {"alipay_user_id": "2088"}

    assert fan_keys(Row()) == {("wechat_union_id", "U1"), ("alipay_user_id", "2088")}
    Row.platform = "douyin"
    assert ("douyin_union_id", "U1") in fan_keys(Row())


def _all_ids(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(fans.c.id).order_by(fans.c.id)).scalars())


def test_phone_union_id_and_card_keys_link_platforms(engine: sa.Engine) -> None:
    add_fan(engine, "douyin", "d1", phone="13800138000")
    add_fan(engine, "wecom", "w1", phone="+86 138-0013-8000", union_id="UNION-A")
    add_fan(engine, "wechat", "c1", union_id="UNION-A", keys={"alipay_user_id": "2088001"})
    add_fan(engine, "alipay", "a1", keys={"alipay_user_id": "2088001"})
    add_fan(engine, "douyin", "d2", union_id="UNION-A")  # a Douyin union id is another namespace
    add_fan(engine, "kuaishou", "k1", union_id="null", phone=None)
    add_fan(engine, "xiaohongshu", "x1", union_id="-1")
    report = stitch(engine, _all_ids(engine))
    assert report.fans == 7
    assert grouping(engine) == {
        frozenset({"douyin:d1", "wecom:w1", "wechat:c1", "alipay:a1"}),
        frozenset({"douyin:d2"}), frozenset({"kuaishou:k1"}), frozenset({"xiaohongshu:x1"}),
    }
    assert ledger.verify(engine) == []


def test_shared_front_desk_phone_is_blocked_not_merged(engine: sa.Engine) -> None:
    for i in range(5):
        add_fan(engine, "douyin", f"d{i}", phone="13900000000", keys={"alipay_user_id": f"2088{i}"})
    add_fan(engine, "alipay", "a0", keys={"alipay_user_id": "20880"})
    report = stitch_all(engine, limit=3)
    assert report.blocked == [{"kind": "phone", "fan_count": 5}]
    assert len(grouping(engine)) == 5 and frozenset({"douyin:d0", "alipay:a0"}) in grouping(engine)
    with engine.connect() as conn:
        blocked = conn.execute(sa.select(BlockedIdentityKeyRow.__table__)).all()
    assert [(b.kind, b.fan_count) for b in blocked] == [("phone", 5)]
    assert "13900000000" not in str(report)


def test_incremental_blocks_a_key_once_it_passes_the_limit(engine: sa.Engine) -> None:
    ids = [add_fan(engine, "douyin", f"d{i}", phone="13900000000") for i in range(5)]
    report = stitch(engine, ids, limit=3)
    assert [b["kind"] for b in report.blocked] == ["phone"]
    # the first three were merged before the key crossed the limit; the rest stay apart
    assert sorted(len(g) for g in grouping(engine)) == [1, 1, 3]


def _random_fans(engine: sa.Engine, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(60):
        platform = rng.choice(["douyin", "wecom", "wechat", "alipay", "kuaishou"])
        add_fan(engine, platform, f"u{i}",
                phone=f"1380000{rng.randrange(25):04d}" if rng.random() < 0.6 else None,
                union_id=f"UN{rng.randrange(30)}" if rng.random() < 0.5 else None,
                keys={"alipay_user_id": f"2088{rng.randrange(20)}"} if rng.random() < 0.3 else {})


@pytest.mark.parametrize("seed", [1, 2])
def test_grouping_does_not_depend_on_arrival_order(engine: sa.Engine, seed: int) -> None:
    _random_fans(engine, seed)
    ids = _all_ids(engine)
    stitch_all(engine)
    expected = grouping(engine)
    for order in range(2):
        with engine.begin() as conn:
            for t in ("fan_identity_keys", "member_changes"):
                conn.exec_driver_sql(f"DELETE FROM {t}")
            conn.execute(fans.update().values(member_id=None))
        shuffled = ids[:]
        random.Random(order).shuffle(shuffled)
        stitch(engine, shuffled)
        assert grouping(engine) == expected
    assert 1 < len(expected) < 60


def test_stitch_merges_points_and_split_stays_split(engine: sa.Engine) -> None:
    a = add_fan(engine, "douyin", "d1", phone="13800138000")
    b = add_fan(engine, "alipay", "a1", keys={"alipay_user_id": "2088"})
    stitch(engine, [a, b])
    with engine.connect() as conn:
        ma, mb = (conn.execute(sa.select(fans.c.member_id).where(fans.c.id == f)).scalar_one() for f in (a, b))
    ledger.post(engine, member_id=ma, points=100, reason="r", key="ka", fan_id=a)
    ledger.post(engine, member_id=mb, points=50, reason="r", key="kb", fan_id=b)
    with engine.begin() as conn:
        conn.execute(fans.update().where(fans.c.id == b).values(phone_hash=conn.execute(
            sa.select(fans.c.phone_hash).where(fans.c.id == a)).scalar_one()))
    report = stitch(engine, [b])
    assert report.merges == 1
    assert ledger.balance(engine, mb)["member_id"] == min(ma, mb)
    assert ledger.balance(engine, ma)["balance"] == 150
    with engine.connect() as conn:
        audit = conn.execute(sa.select(MemberChangeRow.__table__)).one()
    assert (audit.action, audit.actor, audit.rule, audit.points) == ("merge", "stitch", "stitch:phone", 50)
    change = split(engine, ma, [FanRef.parse("alipay:hq:a1")], reason="not the same person", actor="ops")
    assert change.points == 50
    stitch(engine, [a, b])
    assert len(grouping(engine)) == 2
    assert ledger.verify(engine) == []


def test_hook_contributes_keys(engine: sa.Engine) -> None:
    class WeiboKeys:
        @hookimpl
        def identity_keys(self, fan):  # type: ignore[no-untyped-def]
            return [("weibo_uid", fan.platform_uid.split("-")[-1])]

    host = load_plugins(extra=[(WeiboKeys(), "undo-weibo-keys")])
    add_fan(engine, "douyin", "x-42")
    add_fan(engine, "kuaishou", "y-42")
    add_fan(engine, "kuaishou", "y-0")  # "0" is a placeholder: no key
    stitch_all(engine, host=host)
    assert grouping(engine) == {frozenset({"douyin:x-42", "kuaishou:y-42"}), frozenset({"kuaishou:y-0"})}


def test_stitch_all_stores_times_as_the_column_type_does(engine: sa.Engine) -> None:
    add_fan(engine, "douyin", "u1", phone="13800138000")
    add_fan(engine, "wecom", "u2", phone="13800138000")
    stitch_all(engine)
    with engine.connect() as conn:
        stamps = [*conn.exec_driver_sql("SELECT updated_at FROM fans").scalars(),
                  *conn.exec_driver_sql("SELECT inserted_at FROM members").scalars()]
    if engine.dialect.name == "sqlite":  # naive UTC text, as UTCDateTimeType writes it
        assert all(isinstance(s, str) and "+" not in s for s in stamps), stamps
    else:
        assert all(s.utcoffset() is not None for s in stamps)


def test_stitch_all_clears_the_flags_it_answers_but_not_of_a_fan_written_after_it_read(engine, monkeypatch) -> None:
    from hub.people import identity
    from hub.sync.store import upsert
    from schemas import Fan

    add_fan(engine, "douyin", "d1", phone="13800138000")
    add_fan(engine, "wecom", "w1", phone="13800138000")
    w2 = add_fan(engine, "wecom", "w2", union_id="oU2")
    read_keys = identity._existing_keys

    def a_callback_meanwhile(conn: sa.Connection, keys: list) -> set[int]:  # the pass has read, not written
        with engine.begin() as other:
            upsert(other, [Fan(platform="wecom", account_id="hq", platform_uid="w2", phone="13800138000")], PHONES)
        return read_keys(conn, keys)

    monkeypatch.setattr(identity, "_existing_keys", a_callback_meanwhile)
    stitch_all(engine)
    monkeypatch.undo()
    with engine.connect() as conn:
        flags = dict(conn.execute(sa.select(fans.c.platform_uid, fans.c.needs_stitch)).all())
    assert flags == {"d1": False, "w1": False, "w2": True}  # w2's new phone is still to be stitched
    assert grouping(engine) == {frozenset({"douyin:d1", "wecom:w1"}), frozenset({"wecom:w2"})}
    stitch(engine, [w2])  # what `siyu apply` does next with the flagged fan
    assert grouping(engine) == {frozenset({"douyin:d1", "wecom:w1", "wecom:w2"})}
