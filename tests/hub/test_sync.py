"""The sync engine against the test platform's sandbox, over real loopback HTTP."""

from __future__ import annotations

import json

import httpx
import sqlalchemy as sa

from hub.storage import database as storage
from hub.cli import main
from hub.plugins import load_plugins
from hub.adapter import Page
from hub.platform.client import build_client
from hub.platform.account import AccountHandle
from hub.sync.engine import sync_accounts, sync_stream
from hub.sync.store import load_checkpoint
from hub.testing import serve_asgi
from schemas import Account, Fan
from schemas.tables import FanRow, OrderRow
from siyu_testplatform.sandbox import Faults, make_app
from tests.hub.sandboxes import settings_for, tp_account, toml_for

HOST = load_plugins()


def count(engine, table, **where):
    t = table.__table__
    query = sa.select(sa.func.count()).select_from(t)
    for k, v in where.items():
        query = query.where(t.c[k] == v)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def stats(base_url):
    return httpx.get(f"{base_url}/_admin/stats").json()


async def test_sync_through_faults_then_resync_changes_nothing(engine, database_url):
    faults = Faults(rate_limited=0.05, server_error=0.05, burst=2, token_ttl_requests=4, duplicate=0.2, empty=0.1)
    with serve_asgi(make_app(1500, faults=faults)) as url:
        settings = settings_for(HOST, database_url, tp_account(url, page_size=50))
        first = await sync_accounts(HOST, settings, engine)
        assert [s.error for s in first] == [None, None]
        fans, orders = first
        assert (fans.stream, fans.inserted, fans.updated, fans.complete) == ("fans", 1500, 0, True)
        assert (orders.stream, orders.inserted) == ("orders", 750)
        assert fans.retries + orders.retries > 0 and fans.retries == sum(fans.retry_reasons.values())
        assert stats(url)["token_requests"] > 1  # tokens expired mid-pagination and were refreshed
        second = await sync_accounts(HOST, settings, engine, stream="fans")
        assert (second[0].inserted, second[0].updated, second[0].unchanged >= 1500) == (0, 0, True)
        full = await sync_accounts(HOST, settings, engine, full=True)
        assert sum(s.inserted for s in full) == 0
    assert count(engine, FanRow) == 1500 and count(engine, OrderRow) == 750
    with engine.connect() as conn:
        row = conn.execute(sa.select(FanRow.__table__).where(FanRow.__table__.c.platform_uid == "u0000010")).mappings().one()
        assert load_checkpoint(conn, "testplat", "main", "fans") is None  # a finished stream starts afresh
    assert row["phone_hash"] is not None and row["phone_encrypted"] is None  # i % 5 == 0 has a phone
    assert row["union_id"] is None and row["follow_state"] == "following"
    assert row["followed_at"].timestamp() == 1_700_000_010


async def test_malformed_json_is_permanent_and_the_checkpoint_does_not_move(engine, database_url):
    with serve_asgi(make_app(300)) as url:
        settings = settings_for(HOST, database_url, tp_account(url, page_size=50))
        # let two pages through, then break every response
        await sync_accounts(HOST, settings, engine, stream="fans", concurrency=1)
        with engine.begin() as conn:
            conn.execute(sa.delete(FanRow.__table__))
            conn.execute(sa.text("UPDATE sync_checkpoints SET cursor = 'o100' WHERE stream = 'fans'"))
        httpx.post(f"{url}/_admin/faults", json={"malformed": 1.0})
        [summary] = await sync_accounts(HOST, settings, engine, stream="fans")
        assert summary.error and "not valid JSON" in summary.error and "/v1/fans" in summary.error
        assert summary.retries == 0 and summary.pages == 0
        with engine.connect() as conn:
            assert load_checkpoint(conn, "testplat", "main", "fans") == "o100"
        assert count(engine, FanRow) == 0


async def test_a_failing_account_does_not_stop_the_others(engine, database_url):
    with serve_asgi(make_app(200)) as url:
        settings = settings_for(
            HOST, database_url,
            tp_account(url, "good"),
            tp_account("http://127.0.0.1:9", "dead"),
            tp_account(url, "badcreds", client_secret="wrong"),
            retry={"attempts": 2, "initial_wait": 0.01, "jitter": 0},
        )
        summaries = await sync_accounts(HOST, settings, engine, stream="fans")
    by_account = {s.account_id: s for s in summaries}
    assert by_account["good"].complete and by_account["good"].inserted == 200
    assert "connection failed" in by_account["dead"].error and by_account["dead"].retries == 1
    assert "bad credentials" in by_account["badcreds"].error and by_account["badcreds"].retries == 0
    assert count(engine, FanRow, account_id="good") == 200


REFUSE_SQLITE = """CREATE TRIGGER refuse_bad BEFORE INSERT ON fans WHEN NEW.account_id = 'bad'
BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"""
REFUSE_POSTGRES = ("""CREATE FUNCTION refuse_bad() RETURNS trigger AS $$ BEGIN
  IF NEW.account_id = 'bad' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql""",
                   "CREATE TRIGGER refuse_bad BEFORE INSERT ON fans FOR EACH ROW EXECUTE FUNCTION refuse_bad()")


async def test_a_database_error_stops_that_accounts_stream_only(engine, database_url):
    with engine.begin() as conn:  # the database refuses one account's fans
        for statement in REFUSE_POSTGRES if engine.dialect.name == "postgresql" else [REFUSE_SQLITE]:
            conn.exec_driver_sql(statement)
    with serve_asgi(make_app(300)) as url:
        settings = settings_for(HOST, database_url, tp_account(url, "good", page_size=50),
                                tp_account(url, "bad", page_size=50))
        summaries = await sync_accounts(HOST, settings, engine, stream="fans")
    by_account = {s.account_id: s for s in summaries}
    assert by_account["good"].complete and by_account["good"].inserted == 300 and by_account["good"].error is None
    bad = by_account["bad"]
    assert bad.error.startswith("database: ") and "refused by the test" in bad.error and bad.pages == 0
    assert count(engine, FanRow, account_id="bad") == 0
    with engine.connect() as conn:
        assert load_checkpoint(conn, "testplat", "bad", "fans") is None  # nothing moved


REFUSE_ONE_SQLITE = """CREATE TRIGGER refuse_one BEFORE INSERT ON fans WHEN NEW.platform_uid = 'u0000120'
BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"""
REFUSE_ONE_POSTGRES = ("""CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN
  IF NEW.platform_uid = 'u0000120' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$
  LANGUAGE plpgsql""", "CREATE TRIGGER refuse_one BEFORE INSERT ON fans FOR EACH ROW EXECUTE FUNCTION refuse_one()")


async def test_a_page_the_database_refuses_stops_the_stream_there_and_later_pages_are_not_written(
        engine, database_url):
    """Pages are planned ahead of their commits; a refused page 3 still leaves pages 1-2 and the
    checkpoint after page 2, and nothing of the pages already planned behind it."""
    with engine.begin() as conn:
        for statement in REFUSE_ONE_POSTGRES if engine.dialect.name == "postgresql" else [REFUSE_ONE_SQLITE]:
            conn.exec_driver_sql(statement)
    with serve_asgi(make_app(400)) as url:
        settings = settings_for(HOST, database_url, tp_account(url, page_size=50))
        [summary] = await sync_accounts(HOST, settings, engine, stream="fans")
        assert stats(url)["fans_served"] >= 4  # pages after the refused one were fetched (and planned)
    assert "refused by the test" in summary.error and (summary.pages, summary.inserted) == (2, 100)
    assert count(engine, FanRow) == 100
    with engine.connect() as conn:
        assert load_checkpoint(conn, "testplat", "main", "fans") == "o100"


class StrayAdapter:
    """An adapter that returns another account's fans next to its own."""

    async def fetch_fans(self, account, cursor):
        return Page(items=[Fan(platform="testplat", account_id="main", platform_uid="u1"),
                           Fan(platform="testplat", account_id="elsewhere", platform_uid="u2")])


async def test_records_of_another_account_are_refused_before_anything_is_written(engine, database_url):
    settings = settings_for(HOST, database_url, tp_account("http://127.0.0.1:9"))
    handle = AccountHandle(account=Account(platform="testplat", account_id="main"), settings=settings.accounts[0],
                           adapter=StrayAdapter(), client=build_client(HOST.adapter_class("testplat"), "main"))
    summary = await sync_stream(handle, engine, HOST, settings, "fans")
    assert "does not belong to this account" in summary.error and summary.pages == 0
    assert count(engine, FanRow) == 0


async def test_the_rate_limiter_avoids_429s_that_an_unlimited_client_provokes(engine, database_url):
    with serve_asgi(make_app(600, faults=Faults(limit_per_second=30))) as url:
        limited = settings_for(HOST, database_url, tp_account(url, "slow", page_size=10,
                                                                    rate_limits={"*": [25, 1]}))
        [summary] = await sync_accounts(HOST, limited, engine, stream="fans")
        assert summary.complete and stats(url).get("over_limit", 0) == 0
        unlimited = settings_for(HOST, database_url, tp_account(url, "fast", page_size=10,
                                                                      rate_limits={"*": [10000, 1]}))
        [summary] = await sync_accounts(HOST, unlimited, engine, stream="fans")
        assert stats(url).get("over_limit", 0) > 0 and summary.retry_reasons.get("RateLimited", 0) > 0


def test_siyu_sync_and_fans_commands_end_to_end(tmp_path, database_url, capsys):
    with serve_asgi(make_app(120)) as url:
        raw = {"database": {"url": database_url}, "security": {"phone_key": "k" * 32},
               "accounts": [tp_account(url, page_size=50)]}
        config = tmp_path / "siyu.toml"
        config.write_text(toml_for(raw))
        assert main(["--config", str(config), "sync", "--stream", "fans", "--max-pages", "1", "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert [(s["inserted"], s["complete"]) for s in doc["streams"]] == [(50, False)]
        assert main(["--config", str(config), "sync", "--platform", "testplat", "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["ok"] and {s["stream"]: s["inserted"] for s in doc["streams"]} == {"fans": 70, "orders": 60}
        assert doc["streams"][0]["resumed"] is True
    assert main(["--config", str(config), "fans", "list", "--limit", "3", "--json"]) == 0
    fans = json.loads(capsys.readouterr().out)["fans"]
    assert [f["platform_uid"] for f in fans] == ["u0000000", "u0000001", "u0000002"]
    assert fans[0]["has_phone"] is True and "phone_hash" not in fans[0]
    assert main(["--config", str(config), "fans", "show", "testplat", "main", "u0000003", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fan"]["union_id"] == "un3"
    assert main(["--config", str(config), "fans", "show", "testplat", "main", "nobody"]) == 1
    assert "no fan testplat:main:nobody" in capsys.readouterr().err
    assert main(["--config", str(config), "sync", "--stream", "likes"]) == 1
    assert main(["--config", str(config), "sync", "--platform", "myspace"]) == 1
    assert "unknown platform 'myspace'" in capsys.readouterr().err


def test_a_failed_sync_exits_1_with_the_error_in_the_summary(tmp_path, database_url, capsys):
    raw = {"database": {"url": database_url}, "security": {"phone_key": "k" * 32},
           "retry": {"attempts": 1}, "accounts": [tp_account("http://127.0.0.1:9")]}
    config = tmp_path / "siyu.toml"
    config.write_text(toml_for(raw))
    assert main(["--config", str(config), "sync", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and all("connection failed" in s["error"] for s in doc["streams"])
    engine = storage.open_database(database_url)
    assert count(engine, FanRow) == 0
    engine.dispose()


async def test_pages_planned_while_the_writer_is_busy_are_committed_together(engine, database_url, monkeypatch):
    """The first commit is held up until the third page is planned (at most three wait); the
    two planned meanwhile go to the database in one transaction when the writer is free, in
    order, each counted as a page."""
    import threading

    from hub.sync.store import PageWriter

    batches: list[list[str]] = []
    planned = []
    third_planned = threading.Event()
    plan, write = PageWriter.plan, PageWriter.write

    def counted_plan(self, records, next_cursor):
        planned.append(records[0].platform_uid)
        if len(planned) == 3:
            third_planned.set()
        return plan(self, records, next_cursor)

    def held_first_write(self, writes):
        if not batches:
            assert third_planned.wait(10)
        batches.append([w.records[0].platform_uid for w in writes])
        return write(self, writes)

    monkeypatch.setattr(PageWriter, "plan", counted_plan)
    monkeypatch.setattr(PageWriter, "write", held_first_write)
    with serve_asgi(make_app(400)) as url:
        settings = settings_for(HOST, database_url, tp_account(url, page_size=50))
        [summary] = await sync_accounts(HOST, settings, engine, stream="fans")
    assert summary.error is None and (summary.pages, summary.inserted) == (8, 400)
    assert [uid for batch in batches for uid in batch] == [f"u{50 * p:07d}" for p in range(8)]  # in page order
    assert batches[1] == ["u0000050", "u0000100"]  # planned while the first page's commit was held up
    assert len(batches) < 8 and count(engine, FanRow) == 400  # one transaction a batch (test_store.py)
    with engine.connect() as conn:
        assert load_checkpoint(conn, "testplat", "main", "fans") is None  # the stream ended
