"""A 20-page WeCom sync at 5 % random faults (errcode 45009, errcode -1, HTTP 500) and 2 s tokens
completes with exact rows, and no page is fetched twice.

The sandbox's fault mode makes every request, token requests too, fail at random as one of the
three kinds, from a seeded generator; its tokens live 2 s and are refused with 42001 after.  The
hub's client retries each request on its own (45009's documented 60 s block is capped by
``max_retry_after``), so a fault costs that one request again, never a page: the sandbox records
each ``batch/get_by_user`` page it answered, by (userid chunk, cursor), and none is answered twice.
"""

from __future__ import annotations

import httpx

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
)

HOST = load_plugins()
CUSTOMERS = 600
CHUNK, PAGE = 1, 40  # one staff member a chunk, so customers with several staff span chunks
RETRY = {"attempts": 10, "initial_wait": 0.01, "max_wait": 0.1, "jitter": 0.01, "max_retry_after": 0.2}
FAULT_SEED = 200
"""A seed whose first draws inject each of the three kinds (the first token request answers 45009),
so that the test always sees all three, whatever the timing of token expiry adds later."""


async def test_a_20_page_sync_through_faults_and_short_tokens(engine, database_url):
    sandbox = Settings(seed=5, minute_seconds=1.0, token_ttl=2, fault_rate=0.05, fault_seed=FAULT_SEED,
                       latency=0.1)
    app = make_app(CUSTOMERS, settings=sandbox)
    corp = app.state.sandbox.corp
    assert batch_pages(corp, CHUNK, PAGE) == 20
    assert any(len(corp.followers_of(uid)) > 1 for uid in corp.contacts)  # read in several chunks
    with serve_asgi(app) as url:
        account = account_for(url, sandbox, chunk_size=CHUNK, page_size=PAGE)
        settings = hub_settings(HOST, database_url, account, RETRY)
        [summary] = await sync_accounts(HOST, settings, engine, stream="fans")
        stats = sandbox_stats(url)
        answered = httpx.get(f"{url}/_admin/pages").json()
    assert summary.error is None and summary.complete, summary
    # exact rows: one per customer, each with every relation
    assert row_counts(engine) == (CUSTOMERS, CUSTOMERS)
    assert summary.inserted == CUSTOMERS
    assert_every_relation_landed(engine, corp)
    # every fault kind was injected, and retried
    assert all(stats.get(kind, 0) >= 1 for kind in ("fault_45009", "fault_-1", "fault_500")), stats
    injected = sum(stats.get(kind, 0) for kind in ("fault_45009", "fault_-1", "fault_500"))
    assert summary.retries >= injected and {"RateLimited", "TransientError"} <= set(summary.retry_reasons)
    # the 2 s tokens ran out during the sync and were fetched again
    assert stats["gettoken"] - stats.get("fault_45009", 0) >= 2, stats
    # no page was answered twice: 20 distinct (chunk, cursor) pages, each once
    assert len(answered) == 20 and all(page["answers"] == 1 for page in answered), answered
    assert summary.pages == 20
    print(f"wecom through faults: {summary.pages} pages, {summary.retries} retries {summary.retry_reasons}, "
          f"{summary.seconds}s; sandbox {stats}")


async def test_fault_mode_answers_each_kind_and_short_tokens_expire_with_42001():
    import asyncio

    app = make_app(10)
    s = app.state.sandbox.settings
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as raw:
        def token():
            return raw.get("/cgi-bin/gettoken", params={"corpid": s.corp_id, "corpsecret": s.secret})

        answers = {}
        for kind in ("freq", "busy", "http500"):
            await raw.post("/_admin/faults", json={"rate": 1.0, "kinds": [kind]})
            answers[kind] = await token()
        await raw.post("/_admin/faults", json={"rate": 0.0, "token_ttl": 1})
        issued = (await token()).json()
        await asyncio.sleep(1.05)
        expired = await raw.get("/cgi-bin/externalcontact/get_follow_user_list",
                                params={"access_token": issued["access_token"]})
        stats = (await raw.get("/_admin/stats")).json()
    assert answers["freq"].json()["errcode"] == 45009 and answers["busy"].json()["errcode"] == -1
    assert answers["http500"].status_code == 500
    assert issued["expires_in"] == 1 and expired.json()["errcode"] == 42001
    assert (stats["fault_45009"], stats["fault_-1"], stats["fault_500"], stats["token_expired"]) == (1, 1, 1, 1)
