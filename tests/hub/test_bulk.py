"""Driver-level SQL (hub.storage.bulk): the same rows Core would write, on both databases."""

from datetime import UTC, datetime

import sqlalchemy as sa

from hub.storage import bulk
from schemas.tables import FanRow, MemberRow, SyncCheckpointRow

T1 = datetime(2024, 1, 1, 8, 30, tzinfo=UTC)
fans = FanRow.__table__
members = MemberRow.__table__
checkpoints = SyncCheckpointRow.__table__


def raw(engine, sql):
    with engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(sql)]


def fan_columns(uids, **over):
    n = len(uids)
    columns = {"platform": ["p"] * n, "account_id": ["a"] * n, "platform_uid": list(uids), "gender": ["unknown"] * n,
               "follow_state": ["following"] * n, "tags": [["vip"] if i % 2 else [] for i in range(n)],
               "follows": [[]] * n, "interactions": [{"messages": i} for i in range(n)], "identity_keys": [{}] * n,
               "followed_at": [T1 if i % 3 else None for i in range(n)], "union_id": [None] * n,
               "needs_stitch": [True] * n, "needs_card": [False] * n, "inserted_at": [T1] * n, "updated_at": [T1] * n}
    return {**columns, **over}


def test_a_prepared_insert_stores_what_core_stores(engine, monkeypatch):
    monkeypatch.setattr(bulk, "SQLITE_MAX_PARAMS", 40)  # several statements on SQLite
    columns = fan_columns([f"b{i}" for i in range(25)])
    write = bulk.prepare_insert(engine.dialect, fans, columns, 25)
    with engine.begin() as conn:
        write(conn)
        rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
        for row in rows:
            row["platform_uid"] = "c" + row["platform_uid"][1:]
        conn.execute(sa.insert(fans), rows)
    picked = "platform_uid, tags, interactions, followed_at, needs_stitch, updated_at"
    ours = raw(engine, f"SELECT {picked} FROM fans WHERE substr(platform_uid, 1, 1) = 'b' ORDER BY id")
    core = raw(engine, f"SELECT {picked} FROM fans WHERE substr(platform_uid, 1, 1) = 'c' ORDER BY id")
    assert len(ours) == 25 and [r[1:] for r in ours] == [r[1:] for r in core]


def test_insert_rows_returns_what_it_was_asked_for_and_the_sequence_follows_explicit_ids(engine, monkeypatch):
    monkeypatch.setattr(bulk, "SQLITE_MAX_PARAMS", 12)
    stamp = bulk.time_binder(engine, members.c.updated_at)(T1)
    with engine.begin() as conn:
        back = bulk.insert_rows(conn, members, ("member_id", "level", "lifetime_points", "balance", "inserted_at",
                                                "updated_at"),
                                [(100 + i, 0, 0, i, stamp, stamp) for i in range(7)], returning=("member_id", "balance"))
        assert sorted(back) == [(100 + i, i) for i in range(7)]
        bulk.reset_sequence(conn, members, "member_id")
        following = conn.execute(sa.insert(members).values(level=0, lifetime_points=0, balance=0, inserted_at=T1,
                                                           updated_at=T1).returning(members.c.member_id)).scalar_one()
        assert bulk.insert_rows(conn, members, ("member_id",), []) == []
    assert following == 107


def test_select_in_with_fixed_columns_and_update_rows(engine):
    with engine.begin() as conn:
        bulk.prepare_insert(engine.dialect, fans, fan_columns(["u1", "u2", "u3"]), 3)(conn)
        bulk.prepare_insert(engine.dialect, fans, fan_columns(["u1"], account_id=["other"]), 1)(conn)
        found = bulk.select_in(conn, fans, ("platform_uid",), "platform_uid", ["u1", "u3", "u9"],
                               where={"platform": "p", "account_id": "a"}, order_by="platform_uid")
        assert found == [("u1",), ("u3",)]
        ids = dict(bulk.select_in(conn, fans, ("platform_uid", "id"), "platform_uid", ["u2", "u3"],
                                  where={"account_id": "a"}))
        bulk.update_rows(conn, fans, ("nickname",), "id", [("two", ids["u2"]), ("three", ids["u3"])])
    with engine.connect() as conn:
        names = dict(conn.execute(sa.select(fans.c.platform_uid, fans.c.nickname).where(fans.c.account_id == "a")).all())
    assert names == {"u1": None, "u2": "two", "u3": "three"}


def test_a_row_upserted_on_its_natural_key_is_inserted_then_updated(engine):
    key = ("platform", "account_id", "stream")
    for cursor in ("c1", "c2", None):
        with engine.begin() as conn:
            bulk.prepare_upsert_row(engine.dialect, checkpoints, key, {
                "platform": "p", "account_id": "a", "stream": "fans", "cursor": cursor, "updated_at": T1})(conn)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(checkpoints.c.cursor, checkpoints.c.updated_at)).all()
        assert rows == [(cursor, T1)]


def test_the_bind_processor_is_the_types_own():
    dialect = sa.create_engine("sqlite://").dialect
    process = bulk.bind_processor(fans.c.followed_at.type, dialect)
    assert process(T1) == "2024-01-01 08:30:00.000000"
    assert bulk.bind_processor(fans.c.followed_at.type, dialect) is process  # cached
    assert bulk.bind_processor(fans.c.platform.type, dialect) is None  # strings go as they are
    assert bulk.driver_values(dialect, fans.c.tags, [[], ["a"], None]) == ["[]", '["a"]', None]
