"""A first load stitched on PostgreSQL: the pass builds the indexes and foreign keys of ``fans``
and ``fan_identity_keys`` again instead of writing through them, and they come back the same."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hub.people import first_load
from hub.people.identity import stitch, stitch_all
from schemas.tables import FanIdentityKeyRow

from .helpers_members import add_fan, grouping

pytestmark = pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])

SHAPE = """
SELECT 'index', indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
WHERE indrelid IN ('fans'::regclass, 'fan_identity_keys'::regclass)
UNION ALL
SELECT contype::text, conname, pg_get_constraintdef(oid) || CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END
FROM pg_constraint WHERE conrelid IN ('fans'::regclass, 'fan_identity_keys'::regclass)
"""


def _shape(engine: sa.Engine) -> set[tuple[str, str, str]]:
    with engine.connect() as conn:
        return {tuple(row) for row in conn.exec_driver_sql(SHAPE)}


def _people(engine: sa.Engine) -> None:
    add_fan(engine, "douyin", "d1", phone="13800138000")
    add_fan(engine, "wecom", "w1", phone="13800138000", union_id="oU1")
    add_fan(engine, "wecom", "w2", union_id="oU1")
    add_fan(engine, "alipay", "a1", keys={"alipay_user_id": "2088001"})
    add_fan(engine, "alipay", "a2", keys={"alipay_user_id": "2088001"}, phone="13900139000")
    add_fan(engine, "kuaishou", "k1")
    for n in range(4):  # a front-desk phone, blocked at limit 3
        add_fan(engine, "xiaohongshu", f"x{n}", phone="13700137000")


EXPECTED = {
    frozenset({"douyin:d1", "wecom:w1", "wecom:w2"}), frozenset({"alipay:a1", "alipay:a2"}),
    frozenset({"kuaishou:k1"}), *(frozenset({f"xiaohongshu:x{n}"}) for n in range(4)),
}


def test_a_first_load_rebuilds_the_indexes_and_keys_as_they_were(engine, monkeypatch) -> None:
    monkeypatch.setattr(first_load, "REBUILD_AT_LEAST", 1)
    built: list[str] = []
    real_build = first_load._Rebuild.build
    monkeypatch.setattr(first_load._Rebuild, "build", lambda self: (built.append(self.table), real_build(self))[1])
    before = _shape(engine)
    _people(engine)
    report = stitch_all(engine, limit=3)
    assert sorted(built) == ["fan_identity_keys", "fans"]
    assert grouping(engine) == EXPECTED
    assert report.members_created == len(EXPECTED)
    assert [b["kind"] for b in report.blocked] == ["phone"]
    assert _shape(engine) == before
    with engine.connect() as conn:  # the pass's one UPDATE also cleared what it stitched
        assert conn.exec_driver_sql("SELECT count(*) FROM fans WHERE needs_stitch").scalar_one() == 0
    keys = FanIdentityKeyRow.__table__
    with engine.connect() as conn:  # the constraints hold again: a key of no fan is refused
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(keys.insert().values(fan_id=999_999, kind="phone", value="v"))
    fan = add_fan(engine, "douyin", "d2", phone="13800138000")  # and incremental stitching finds them
    stitch(engine, [fan], limit=3)
    assert frozenset({"douyin:d1", "douyin:d2", "wecom:w1", "wecom:w2"}) in grouping(engine)


def test_a_table_in_use_keeps_its_indexes_and_the_pass_still_completes(engine, monkeypatch) -> None:
    monkeypatch.setattr(first_load, "REBUILD_AT_LEAST", 1)
    monkeypatch.setattr(first_load, "LOCK_WAIT", "50ms")
    before = _shape(engine)
    _people(engine)
    with engine.connect() as reader:  # a long read of fans: the exclusive lock is not granted
        reader.exec_driver_sql("SELECT count(*) FROM fans").scalar_one()
        stitch_all(engine, limit=3)
        reader.rollback()
    assert grouping(engine) == EXPECTED
    assert _shape(engine) == before
