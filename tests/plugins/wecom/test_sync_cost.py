"""A full WeCom sync with the default settings costs one ``batch/get_by_user`` call per 100
relations plus a token and the staff list: about 10 calls per 1,000 customers, measured by the
sandbox over loopback.  A customer followed by several staff, read on several pages, ends as
one fan with every relation."""

from __future__ import annotations

import math

from hub.plugins import load_plugins
from hub.sync.engine import sync_accounts
from hub.testing import serve_asgi
from plugins.wecom.sandbox import make_app
from plugins.wecom.sandbox_data import Settings
from tests.plugins.wecom.rig import (
    account_for,
    assert_every_relation_landed,
    batch_pages,
    hub_settings,
    row_counts,
    sandbox_stats,
    wecom_rows,
)

HOST = load_plugins()
CUSTOMERS = 2_000
RETRY = {"attempts": 3, "initial_wait": 0.01, "max_wait": 0.05, "jitter": 0.01}


async def test_a_full_sync_costs_one_batch_call_per_100_relations(engine, database_url):
    sandbox = Settings(seed=11, minute_seconds=1.0)
    app = make_app(CUSTOMERS, settings=sandbox)
    corp = app.state.sandbox.corp
    relations = len(corp.relations)
    assert relations > CUSTOMERS  # some customers are followed by several staff ...
    pages_of: dict[str, set[int]] = {}
    for n, (uid, _) in enumerate(pair for staff in sorted(corp.staff) for pair in corp.pairs_of(staff)):
        pages_of.setdefault(uid, set()).add(n // 100)
    assert sum(1 for pages in pages_of.values() if len(pages) > 1) > 100  # ... read on several pages
    with serve_asgi(app) as url:
        settings = hub_settings(HOST, database_url, account_for(url, sandbox), RETRY)
        [summary] = await sync_accounts(HOST, settings, engine, stream="fans")
        stats = sandbox_stats(url)
    assert summary.error is None and summary.complete
    assert row_counts(engine) == (CUSTOMERS, CUSTOMERS)
    assert_every_relation_landed(engine, corp)
    batches = batch_pages(corp, 100, 100)
    assert batches == math.ceil(relations / 100)  # one chunk: the corp has fewer than 100 staff
    assert {k: v for k, v in stats.items() if v} == {
        "gettoken": 1, "get_follow_user_list": 1, "batch_get_by_user": batches}
    per_thousand = sum(stats.values()) * 1000 / CUSTOMERS
    assert per_thousand < 15, per_thousand
    print(f"wecom full sync: {sum(stats.values())} calls for {CUSTOMERS} customers ({relations} relations), "
          f"{per_thousand:.1f} per 1,000 customers; {stats}")


async def test_complete_follows_stays_an_option_at_one_call_per_customer(engine, database_url):
    sandbox = Settings(seed=11, minute_seconds=1.0)
    app = make_app(300, settings=sandbox)
    corp = app.state.sandbox.corp
    with serve_asgi(app) as url:
        settings = hub_settings(HOST, database_url, account_for(url, sandbox, complete_follows=True), RETRY)
        [summary] = await sync_accounts(HOST, settings, engine, stream="fans")
        stats = sandbox_stats(url)
    assert summary.error is None and summary.complete and row_counts(engine) == (300, 300)
    assert_every_relation_landed(engine, corp)
    # each customer is read whole once per page it is on, and its fields summing up every
    # relation are written: the tag names and the phone
    assert stats["get"] >= 300 and stats["get_corp_tag_list"] == 1
    rows = wecom_rows(engine)
    assert any(r["tags"] for r in rows.values()) and any(r["phone_hash"] for r in rows.values())


async def test_the_sync_summary_reports_the_calls_the_sandbox_counted(engine, database_url):
    sandbox = Settings(seed=5, minute_seconds=1.0)
    with serve_asgi(make_app(1_000, settings=sandbox)) as url:
        settings = hub_settings(HOST, database_url, account_for(url, sandbox), RETRY)
        [summary] = await sync_accounts(HOST, settings, engine, stream="fans")
        stats = sandbox_stats(url)
    assert summary.complete and summary.api_calls == sum(stats.values())
    read = summary.inserted + summary.updated + summary.unchanged  # a customer is read once per page it is on
    assert summary.inserted == 1_000 and read >= 1_000
    assert summary.calls_per_1000 == round(summary.api_calls * 1000 / read, 1) and summary.calls_per_1000 < 15
