"""Upserts on natural keys: idempotent, partial updates keep what they do not mention."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from hub.people.phones import PhoneVault
from hub.sync.kinds import KINDS
from hub.sync.plans import plan_inserts, plan_upsert, write_plan
from hub.sync.store import upsert
from schemas import Fan, FollowRelation, Order
from schemas.tables import FanRow

PHONES = PhoneVault("store-test-key-0123456789")
T1 = datetime(2024, 1, 1, tzinfo=UTC)
T2 = datetime(2024, 2, 1, tzinfo=UTC)


def fan(**kw):
    return Fan(**{"platform": "wecom", "account_id": "hq", "platform_uid": "wm1", **kw})


def stored(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(FanRow.__table__)).mappings().one()


def test_insert_then_same_batch_again_changes_nothing(engine):
    batch = [fan(nickname="A", phone="13800138000"), fan(platform_uid="wm2"),
             Order(platform="wecom", account_id="hq", order_id="o1", buyer_uid="wm1", amount_fen=100, status="paid")]
    with engine.begin() as conn:
        first = upsert(conn, batch, PHONES)
    with engine.begin() as conn:
        second = upsert(conn, batch, PHONES)
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    assert (second.inserted, second.updated, second.unchanged, second.changed) == (0, 0, 3, [])
    with engine.connect() as conn:
        row = conn.execute(sa.select(FanRow.__table__).where(FanRow.__table__.c.platform_uid == "wm1")).mappings().one()
    assert row["phone_hash"] == PHONES.hash("+8613800138000") and row["phone_encrypted"] is None


def test_a_partial_record_updates_only_what_it_sets(engine):
    with engine.begin() as conn:
        upsert(conn, [fan(nickname="A", union_id="u-1", tags=["vip"])], PHONES)
    with engine.begin() as conn:
        result = upsert(conn, [fan(follow_state="unfollowed")], PHONES)
    assert result.updated == 1
    row = stored(engine)
    assert (row["nickname"], row["union_id"], row["tags"], row["follow_state"]) == ("A", "u-1", ["vip"], "unfollowed")


def test_follow_relations_merge_by_staff_and_ended_ones_are_kept(engine):
    with engine.begin() as conn:
        upsert(conn, [fan(follows=[FollowRelation(staff_id="zhang", followed_at=T1, remark="r1"),
                                   FollowRelation(staff_id="li", followed_at=T1)])], PHONES)
    with engine.begin() as conn:  # a deletion callback: only li's relation, marked ended
        upsert(conn, [fan(follows=[FollowRelation(staff_id="li", ended_at=T2)])], PHONES)
    with engine.begin() as conn:  # a full sync that sees only current relations
        upsert(conn, [fan(follows=[FollowRelation(staff_id="zhang", followed_at=T1, remark="r2", ended_at=None)])],
               PHONES)
    follows = {f["staff_id"]: f for f in stored(engine)["follows"]}
    assert set(follows) == {"li", "zhang"}
    assert follows["li"]["ended_at"] == "2024-02-01T00:00:00Z" and follows["li"]["followed_at"] == "2024-01-01T00:00:00Z"
    assert follows["zhang"]["remark"] == "r2" and follows["zhang"]["ended_at"] is None


def test_identity_keys_accumulate(engine):
    with engine.begin() as conn:
        upsert(conn, [fan(identity_keys={"alipay_user_id": "2088"})], PHONES)
    with engine.begin() as conn:
        upsert(conn, [fan(identity_keys={"weibo_uid": "w1"})], PHONES)
    assert stored(engine)["identity_keys"] == {"alipay_user_id": "2088", "weibo_uid": "w1"}


def test_interactions_added_by_a_callback_add_to_the_stored_counters(engine):
    with engine.begin() as conn:
        upsert(conn, [fan(interactions={"messages": 4, "likes": 2})], PHONES)
    with engine.begin() as conn:
        upsert(conn, [fan(interactions_added={"messages": 1, "follows": 1})], PHONES)
    with engine.begin() as conn:  # a fan first seen through a callback starts from what it adds
        upsert(conn, [fan(platform_uid="wm9", interactions_added={"messages": 1})], PHONES)
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.select(FanRow.__table__.c.platform_uid, FanRow.__table__.c.interactions)).all())
    assert counts == {"wm1": {"messages": 5, "likes": 2, "follows": 1}, "wm9": {"messages": 1}}


def count_fans(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(FanRow.__table__)).scalar_one()


def test_a_plan_writes_nothing_until_written_and_then_what_upsert_would(engine):
    batch = [fan(platform_uid=f"wm{i}", nickname=f"n{i}", phone="13800138000" if i % 2 else None,
                 followed_at=T1 if i % 3 else None) for i in range(7)]
    with engine.begin() as conn:
        planned = plan_upsert(conn, batch, PHONES)
        assert planned.result.inserted == 7 and count_fans(engine) == 0
        planned.write(conn)
    with engine.connect() as conn:
        rows = {r["platform_uid"]: r for r in conn.execute(sa.select(FanRow.__table__)).mappings()}
    assert len(rows) == 7
    # columns no record set (avatar_url here) are left out of the insert and read back NULL;
    # the pending-work flags and stamps are set as for any insert
    assert all(r["avatar_url"] is None and r["needs_stitch"] and not r["needs_card"] for r in rows.values())
    assert rows["wm1"]["phone_hash"] == PHONES.hash("+8613800138000") and rows["wm0"]["phone_hash"] is None
    assert rows["wm1"]["followed_at"] == T1 and rows["wm0"]["followed_at"] is None
    with engine.begin() as conn:  # planned again: all there, nothing to write
        again = plan_upsert(conn, batch, PHONES)
    assert (again.result.unchanged, again.statements) == (7, [])


def test_a_plan_rolled_back_leaves_nothing(engine):
    with engine.connect() as conn:
        conn.begin()
        plan_upsert(conn, [fan(platform_uid="wm9")], PHONES).write(conn)
        conn.rollback()
    assert count_fans(engine) == 0


def test_a_plan_written_after_another_writer_stored_one_of_its_records_is_planned_again(engine):
    batch = [fan(platform_uid=f"wm{i}", nickname=f"n{i}") for i in range(4)]
    with engine.connect() as conn, conn.begin():
        planned = plan_upsert(conn, batch, PHONES)  # all four look new
    with engine.begin() as conn:  # meanwhile a callback stores one of them
        upsert(conn, [fan(platform_uid="wm2", nickname="from a callback")], PHONES)
    written = []
    result = write_plan(engine, planned, batch, PHONES, also=lambda conn: written.append(conn))
    assert (result.inserted, result.updated) == (3, 1) and len(written) == 1
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(FanRow.__table__.c.platform_uid, FanRow.__table__.c.nickname)).all())
    assert rows == {f"wm{i}": f"n{i}" for i in range(4)}


def test_a_later_duplicate_in_one_batch_wins(engine):
    with engine.begin() as conn:
        result = upsert(conn, [fan(nickname="first"), fan(platform_uid="wm2"), fan(nickname="second")], PHONES)
    assert (result.inserted, result.unchanged) == (2, 1)
    assert stored_uid(engine, "wm1")["nickname"] == "second"


def stored_uid(engine, uid):
    with engine.connect() as conn:
        t = FanRow.__table__
        return conn.execute(sa.select(t).where(t.c.platform_uid == uid)).mappings().one()


def test_enum_values_reach_the_driver_as_plain_strings():
    from hub.storage.bulk import plain as _plain
    from schemas import FollowState

    values = _plain([FollowState.FOLLOWING, None, FollowState.UNFOLLOWED, "unknown"])
    assert values == ["following", None, "unfollowed", "unknown"]
    assert {type(v) for v in values} == {str, type(None)}
    plain = ["a", None, 3]
    assert _plain(plain) is plain  # nothing to convert: the column itself


def test_new_fans_numbers_are_encrypted_when_a_key_is_configured(engine):
    from cryptography.fernet import Fernet

    vault = PhoneVault("store-test-key-0123456789", Fernet.generate_key().decode())
    with engine.begin() as conn:
        upsert(conn, [fan(phone="13800138000"), fan(platform_uid="wm2")], vault)
    assert vault.decrypt(stored_uid(engine, "wm1")["phone_encrypted"]) == "+8613800138000"
    assert stored_uid(engine, "wm2")["phone_encrypted"] is None and stored_uid(engine, "wm2")["phone_hash"] is None


def test_column_values_go_through_the_bind_processor_and_none_stays_none():
    from hub.storage.bulk import bound as _bound

    seen = []

    def process(value):
        seen.append(value)
        return f"<{value}>"

    assert _bound(process, [*range(20), None]) == [f"<{i}>" for i in range(20)] + [None]  # distinct
    assert _bound(process, [True] * 30 + [None, False]) == ["<True>"] * 30 + [None, "<False>"]  # repeating
    seen.clear()
    assert _bound(process, [[], {}, None, [], {"a": 1}]) == ["<[]>", "<{}>", None, "<[]>", "<{'a': 1}>"]
    assert _bound(process, [{"a": 1}, {"b": 2}]) == ["<{'a': 1}>", "<{'b': 2}>"]
    assert None not in seen


def test_records_planned_as_new_are_checked_and_planned_again_when_one_is_stored(engine):
    with engine.begin() as conn:
        upsert(conn, [fan(platform_uid="wm1", nickname="stored"), fan(platform_uid="wm2", nickname="same")], PHONES)
    batch = [fan(platform_uid="wm1", nickname="changed"), fan(platform_uid="wm2", nickname="same"),
             fan(platform_uid="wm3", nickname="new")]
    planned = plan_inserts(engine.dialect, batch, PHONES)  # no look-up: all three taken as new
    assert planned.result.inserted == 3
    result = write_plan(engine, planned, batch, PHONES)
    assert (result.inserted, result.updated, result.unchanged) == (1, 1, 1)
    assert result.changed == [(batch[0], False), (batch[2], True)]  # in the batch's order
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(FanRow.__table__.c.platform_uid, FanRow.__table__.c.nickname)).all())
    assert rows == {"wm1": "changed", "wm2": "same", "wm3": "new"}
    fresh = [fan(platform_uid=f"n{i}") for i in range(3)]
    assert write_plan(engine, plan_inserts(engine.dialect, fresh, PHONES), fresh, PHONES).inserted == 3


def test_a_stored_record_found_when_written_merges_as_an_update_of_every_column_type(engine):
    """A page planned as new whose first record is stored: that one is updated in place (JSON
    relations merged, times, enums, pending-work flags), the rest inserted from their prepared rows."""
    with engine.begin() as conn:
        upsert(conn, [fan(follows=[FollowRelation(staff_id="zhang", followed_at=T1)], tags=["a"])], PHONES)
    with engine.begin() as conn:
        conn.execute(FanRow.__table__.update().values(needs_stitch=False))
    batch = [fan(follows=[FollowRelation(staff_id="li", followed_at=T2, remark="r")], tags=["b"],
                 gender="female", union_id="u-9"),
             fan(platform_uid="wm2", follows=[FollowRelation(staff_id="li", followed_at=T2)])]
    result = write_plan(engine, plan_inserts(engine.dialect, batch, PHONES), batch, PHONES)
    assert (result.inserted, result.updated, result.unchanged) == (1, 1, 0)
    with engine.connect() as conn:
        rows = {r["platform_uid"]: r for r in conn.execute(sa.select(FanRow.__table__)).mappings()}
    first = rows["wm1"]
    assert [(f["staff_id"], f.get("remark")) for f in first["follows"]] == [("li", "r"), ("zhang", None)]
    assert (first["tags"], first["gender"], first["union_id"], first["needs_stitch"]) == (["b"], "female", "u-9", True)
    assert first["updated_at"] > first["inserted_at"]
    assert [f["staff_id"] for f in rows["wm2"]["follows"]] == ["li"]


# --- the sync's door: PageWriter ------------------------------------------------------------------


class Recorder:
    """A plugin host whose ``track_event`` observer records what the store announces."""

    def __init__(self):
        import hub
        from hub.plugins import load_plugins

        self.events = []
        events = self.events

        class Observer:
            @hub.hookimpl
            def track_event(self, event):
                events.append(event)

        self.host = load_plugins(extra=[(Observer(), "store-observer")])


def writer_for(engine, host=None, stream="fans"):
    from hub.sync.store import PageWriter

    return PageWriter(engine, PHONES, host or Recorder().host, "wecom", "hq", stream)


def test_a_page_and_its_checkpoint_are_written_together_and_announced_after(engine):
    recorder = Recorder()
    writer = writer_for(engine, recorder.host)
    assert writer.checkpoint() is None
    first = [fan(platform_uid=f"wm{i}", nickname=f"n{i}") for i in range(3)]
    write = writer.plan(first, "c1")
    assert count_fans(engine) == 0 and writer.checkpoint() is None  # planned: nothing written yet
    result = write()
    assert (result.inserted, writer.checkpoint(), count_fans(engine)) == (3, "c1", 3)
    assert recorder.events == []  # the engine announces once the commit is counted
    writer.announce(result)
    assert [(e.fan.platform_uid, e.created) for e in recorder.events] == [("wm0", True), ("wm1", True), ("wm2", True)]
    # the next page: one stored record changed, one unchanged, one new; the stream ends (no cursor)
    second = [fan(platform_uid="wm1", nickname="renamed"), fan(platform_uid="wm2", nickname="n2"), fan(platform_uid="wm9")]
    result = writer.plan(second, None)()
    assert (result.inserted, result.updated, result.unchanged) == (1, 1, 1)
    assert writer.checkpoint() is None  # a finished stream starts afresh next time
    assert stored_uid(engine, "wm1")["nickname"] == "renamed"


def test_a_page_whose_write_fails_leaves_neither_rows_nor_checkpoint(engine):
    writer = writer_for(engine)
    writer.plan([fan(platform_uid="wm1")], "c1")()
    # a page of a fan and an order, planned as new; meanwhile a callback stores the order
    page = [fan(platform_uid="wm2"), Order(platform="wecom", account_id="hq", order_id="o1", buyer_uid="wm2",
                                           amount_fen=100, status="paid")]
    write = writer.plan(page, "c2")
    with engine.begin() as conn:
        upsert(conn, [Order(platform="wecom", account_id="hq", order_id="o1", buyer_uid="wm2", amount_fen=1,
                            status="paid")], PHONES)
    # planned again inside the transaction: the fan inserted, the order updated, the checkpoint moved
    result = write()
    assert (result.inserted, result.updated, writer.checkpoint()) == (1, 1, "c2")
    broken = writer.plan([fan(platform_uid="wm3")], "c3")
    with engine.begin() as conn:  # the checkpoint's table is gone: the page's transaction fails whole
        conn.execute(sa.text("ALTER TABLE sync_checkpoints RENAME TO sync_checkpoints_away"))
    try:
        with pytest.raises(sa.exc.DBAPIError):
            broken()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE sync_checkpoints_away RENAME TO sync_checkpoints"))
    assert count_fans(engine) == 2 and writer.checkpoint() == "c2"


def test_a_writer_refuses_a_record_kind_the_hub_does_not_store(engine):
    with pytest.raises(TypeError, match="cannot store a str"):
        writer_for(engine).plan(["not a record"], "c1")


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=lambda kind: kind.model.__name__)
def test_each_kinds_natural_key_is_a_unique_constraint_of_its_table(kind):
    """A sync page's insert leaves out stored records on this key (``ON CONFLICT … DO NOTHING``),
    which both databases accept only for the columns of a unique constraint."""
    unique = [{column.name for column in constraint.columns} for constraint in kind.table.constraints
              if isinstance(constraint, sa.UniqueConstraint)]
    assert set(kind.key) in unique


def commits_of(engine):
    """A list that grows by one at each commit on ``engine``."""
    commits = []
    sa.event.listen(engine, "commit", lambda conn: commits.append(conn))
    return commits


def test_pages_queued_for_the_writer_share_one_transaction_and_the_last_checkpoint(engine):
    recorder = Recorder()
    writer = writer_for(engine, recorder.host)
    pages = [[fan(platform_uid=f"wm{p}{i}", phone=f"1380013{p}00{i}") for i in range(3)] for p in range(3)]
    writes = [writer.plan(page, f"c{p}") for p, page in enumerate(pages)]
    commits = commits_of(engine)
    outcomes = writer.write(writes)
    assert [(o.inserted, o.updated) for o in outcomes] == [(3, 0)] * 3
    assert len(commits) == 1 and writer.checkpoint() == "c2" and count_fans(engine) == 9
    assert [record.platform_uid for record, _ in outcomes[1].changed] == ["wm10", "wm11", "wm12"]
    assert stored_uid(engine, "wm21")["phone_hash"] == PHONES.hash("+8613800132001")


def test_a_queued_page_whose_plan_no_longer_holds_sends_each_page_alone(engine):
    writer = writer_for(engine)
    first = writer.plan([fan(platform_uid="wm1")], "c1")
    second = writer.plan([fan(platform_uid="wm2", nickname="from the sync"), fan(platform_uid="wm3")], "c2")
    with engine.begin() as conn:  # meanwhile a callback stores one fan of the second page
        upsert(conn, [fan(platform_uid="wm2", nickname="from a callback")], PHONES)
    commits = commits_of(engine)
    outcomes = writer.write([first, second])
    assert [(o.inserted, o.updated, o.unchanged) for o in outcomes] == [(1, 0, 0), (1, 1, 0)]
    assert len(commits) == 2 and writer.checkpoint() == "c2" and count_fans(engine) == 3
    assert stored_uid(engine, "wm2")["nickname"] == "from the sync"


def test_a_refused_page_of_a_group_keeps_the_pages_before_it_and_writes_none_after(engine):
    refuse = ("""CREATE FUNCTION refuse_wm2() RETURNS trigger AS $$ BEGIN
      IF NEW.platform_uid = 'wm2' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$
      LANGUAGE plpgsql""", "CREATE TRIGGER refuse_wm2 BEFORE INSERT ON fans FOR EACH ROW EXECUTE FUNCTION refuse_wm2()") \
        if engine.dialect.name == "postgresql" else (
        "CREATE TRIGGER refuse_wm2 BEFORE INSERT ON fans WHEN NEW.platform_uid = 'wm2' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",)
    with engine.begin() as conn:
        for statement in refuse:
            conn.exec_driver_sql(statement)
    writer = writer_for(engine)
    writes = [writer.plan([fan(platform_uid=f"wm{p}")], f"c{p}") for p in range(4)]
    first, second, refused, after = writer.write(writes)
    assert (first.inserted, second.inserted) == (1, 1)
    assert isinstance(refused, sa.exc.DBAPIError) and "refused by the test" in str(refused)
    assert after is refused  # not written: the page before it failed
    assert count_fans(engine) == 2 and writer.checkpoint() == "c1"
