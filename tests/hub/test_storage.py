"""Storage: one migrated schema on SQLite and PostgreSQL, natural keys enforced, UTC kept."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from hub.storage import database as storage
from hub.storage.bulk import bind_processor
from hub.errors import SchemaOutOfDate, StorageError
from schemas.tables import FanRow, MemberRow, metadata

NATURAL_KEYS = {
    "accounts": {("platform", "account_id")},
    "fans": {("platform_uid", "platform", "account_id")},
    "member_cards": {("member_id", "platform", "account_id")},
    "messages": {("platform_msg_id", "platform", "account_id")},
    "orders": {("order_id", "platform", "account_id")},
    "points_events": {("event_id", "platform", "account_id")},
    "ledger_entries": {("idempotency_key",)},
    "sync_checkpoints": {("platform", "account_id", "stream")},
}


def describe(url):
    """A backend-neutral description of a database's schema."""
    engine = storage.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        out = {}
        for table in sorted(inspector.get_table_names()):
            if table == "alembic_version":
                continue
            columns = {
                c["name"]: (c["type"]._type_affinity.__name__, c["nullable"])
                for c in inspector.get_columns(table)
            }
            uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
            indexes = {
                (tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
                if not i.get("duplicates_constraint")  # PostgreSQL lists unique constraints as indexes too
            }
            fks = {(tuple(f["constrained_columns"]), f["referred_table"]) for f in inspector.get_foreign_keys(table)}
            checks = {c["name"] for c in inspector.get_check_constraints(table)}
            out[table] = dict(columns=columns, uniques=uniques, indexes=indexes, fks=fks, checks=checks)
        return out
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_migrated_schema_is_the_same_on_sqlite_and_postgresql(sqlite_template, postgres_template):
    from tests.conftest import _db_url

    lite = describe(f"sqlite:///{sqlite_template}")
    pg = describe(_db_url(postgres_template))
    assert lite.keys() == pg.keys()
    for table in lite:
        assert lite[table] == pg[table], table


def test_migrations_match_the_models(database_url):
    engine = storage.create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert diff == []


def test_every_natural_key_is_unique(database_url):
    engine = storage.create_engine(database_url)
    inspector = sa.inspect(engine)
    for table, keys in NATURAL_KEYS.items():
        uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
        assert keys <= uniques, table
    engine.dispose()


def test_a_duplicate_fan_is_a_constraint_error(engine):
    row = dict(platform="douyin", account_id="ent", platform_uid="u1")
    with engine.begin() as conn:
        conn.execute(sa.insert(FanRow.__table__), [row])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(FanRow.__table__), [row])


def test_balance_can_never_go_negative_in_the_database(engine):
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(MemberRow.__table__), [{"balance": -1}])


def test_times_come_back_aware_utc(engine):
    east8 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    with engine.begin() as conn:
        conn.execute(sa.insert(FanRow.__table__), [dict(platform="p", account_id="a", platform_uid="u", followed_at=east8)])
    with engine.connect() as conn:
        got = conn.execute(sa.select(FanRow.__table__.c.followed_at)).scalar_one()
    assert got == datetime(2024, 5, 1, 0, 0, tzinfo=UTC) and got.tzinfo is not None


@given(st.datetimes(min_value=datetime(1, 1, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))])))
def test_sqlite_time_text_is_the_dialects_storage_format(value):
    """The direct text of a UTC time is what the SQLite dialect itself would store."""
    dialect = sa.create_engine("sqlite://").dialect
    fast = bind_processor(FanRow.__table__.c.followed_at.type, dialect)
    general = sa.DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert fast(value) == general(value.astimezone(UTC).replace(tzinfo=None))
    assert fast(value.astimezone(UTC)) == fast(value)
    assert fast(None) is None


def test_naive_times_are_refused_at_the_door(engine):
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), engine.begin() as conn:
        conn.execute(sa.insert(FanRow.__table__), [dict(platform="p", account_id="a", platform_uid="u",
                                                        followed_at=datetime(2024, 5, 1))])


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_temporary_files_in_memory(tmp_path):
    engine = storage.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # 2 = MEMORY: a page's statement journal is not a new file on disk for every sync page
        assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2
    engine.dispose()


def test_an_out_of_date_schema_is_refused(blank_database_url):
    with pytest.raises(SchemaOutOfDate, match="has no schema.*siyu db upgrade"):
        storage.open_database(blank_database_url)
    engine = storage.create_engine(blank_database_url)
    assert storage.upgrade(engine) == (None, storage.head_revision())
    assert storage.upgrade(engine) == (storage.head_revision(), storage.head_revision())
    engine.dispose()
    storage.open_database(blank_database_url).dispose()


def test_the_schema_revision_commands_check_against_is_the_migrations_head():
    """Commands check a database against a written revision (no Alembic at start-up); a new
    migration must move it."""
    assert storage.head_revision() == storage.script_head(), (
        "a migration was added: set hub.storage.database.SCHEMA_REVISION to its revision")


def test_an_unreachable_database_is_one_clear_error():
    with pytest.raises(StorageError, match=r"cannot reach database postgresql\+psycopg://siyu:\*\*\*@127.0.0.1:1/x"):
        storage.open_database("postgresql+psycopg://siyu:hunter2@127.0.0.1:1/x")


def test_a_missing_driver_is_one_clear_error():
    with pytest.raises(StorageError, match="cannot use database mysql"):
        storage.create_engine("mysql+nosuchdriver://u@h/db")


@pytest.mark.postgres
def test_postgresql_finds_a_page_of_fans_by_index_before_any_statistics(postgres_template):
    """The upsert's ``platform_uid IN (…)`` lookup must not scan the account's rows."""
    from tests.conftest import _db_url

    engine = storage.create_engine(_db_url(postgres_template))
    with engine.connect() as conn:
        plan = "\n".join(conn.exec_driver_sql(
            "EXPLAIN SELECT * FROM fans WHERE platform = 'p' AND account_id = 'a' AND platform_uid IN ('u1', 'u2')"
        ).scalars())
    engine.dispose()
    assert "Index Cond" in plan and "platform_uid" in plan.split("Index Cond")[1].split("\n")[0], plan


def test_ledger_entries_cannot_be_updated_or_deleted(engine):
    from schemas.tables import LedgerEntryRow

    entries = LedgerEntryRow.__table__
    with engine.begin() as conn:
        member = conn.execute(sa.insert(MemberRow.__table__).returning(MemberRow.__table__.c.member_id)).scalar_one()
        conn.execute(sa.insert(entries).values(idempotency_key="k1", member_id=member, kind="earn", points=5,
                                               reason="r", body_hash="0" * 64))
    for statement in (sa.update(entries).values(points=500), sa.delete(entries)):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    if engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE ledger_entries CASCADE")
    with engine.connect() as conn:
        assert conn.execute(sa.select(entries.c.points)).scalars().all() == [5]


def test_json_columns_are_stored_as_compact_utf8_text_and_read_back_equal(tmp_path):
    engine = storage.create_engine(f"sqlite:///{tmp_path / 'j.db'}")
    storage.upgrade(engine)
    tags = ["会员", 'a"b', "x" * 3]
    with engine.begin() as conn:
        conn.execute(sa.insert(FanRow.__table__), [dict(platform="p", account_id="a", platform_uid="u", tags=tags,
                                                        interactions={"messages": 3})])
    with engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT tags, interactions FROM fans").one()
        assert tuple(raw) == ('["会员","a\\"b","xxx"]', '{"messages":3}')
        assert conn.execute(sa.select(FanRow.__table__.c.tags)).scalar_one() == tags
    engine.dispose()
