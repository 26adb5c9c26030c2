"""100,000 fans through injected faults (429s, 5xx bursts, timeouts, tokens expiring every few
pages, duplicate and empty pages) land as exactly 100,000 rows, with the retries counted."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from hub.plugins import load_plugins
from hub.sync.engine import sync_accounts
from hub.testing import serve_asgi
from schemas.tables import FanRow
from siyu_testplatform.sandbox import Faults, make_app
from tests.hub.sandboxes import settings_for, tp_account

FANS = 100_000


@pytest.mark.slow
async def test_100k_fans_through_faults(engine, database_url):
    host = load_plugins()
    faults = Faults(rate_limited=0.03, server_error=0.02, burst=2, timeout=0.015, timeout_seconds=1.0,
                    token_ttl_requests=3, duplicate=0.05, empty=0.02)
    with serve_asgi(make_app(FANS, seed=3, faults=faults)) as url:
        settings = settings_for(host, database_url, tp_account(url, page_size=500),
                                retry={"attempts": 10, "initial_wait": 0.01, "max_wait": 0.1, "jitter": 0.01})
        [summary] = await sync_accounts(host, settings, engine, stream="fans", timeout=httpx.Timeout(0.3))
        stats = httpx.get(f"{url}/_admin/stats").json()
    assert summary.error is None and summary.complete
    t = FanRow.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(t.c.platform_uid)))).one()
    assert tuple(rows) == (FANS, FANS)
    assert summary.inserted == FANS and summary.updated == 0
    faulted = stats.get("rate_limited", 0) + stats.get("server_errors", 0) + stats.get("timeouts", 0)
    assert faulted / stats["fans_requests"] >= 0.05, stats
    assert stats["token_requests"] > 10 and stats["token_rejected"] > 10
    assert {"RateLimited", "TransientError"} <= set(summary.retry_reasons)
    # every injected fault was retried (a loaded machine may add a timeout of its own)
    assert summary.retries >= faulted, (summary.retry_reasons, stats)
    print(f"100k fans: {summary.pages} pages, {summary.retries} retries {summary.retry_reasons}, "
          f"{stats['token_requests']} tokens, {summary.seconds}s; sandbox {stats}")


async def test_a_page_of_a_hundred_requests_at_5_percent_faults_completes_without_fetching_a_page_twice(
        engine, database_url):
    """Each request is retried on its own: with 101 requests a page and a 5 % fault rate nearly
    every page meets a fault, and yet no page is fetched again and every fan lands once."""
    host = load_plugins()
    faults = Faults(rate_limited=0.02, retry_after="0", server_error=0.02, burst=1, timeout=0.01,
                    timeout_seconds=0.5)
    with serve_asgi(make_app(1000, seed=11, faults=faults)) as url:
        settings = settings_for(host, database_url, tp_account(url, page_size=100, fan_out=True),
                                retry={"attempts": 8, "initial_wait": 0.01, "max_wait": 0.05, "jitter": 0.01})
        [summary] = await sync_accounts(host, settings, engine, stream="fans", timeout=httpx.Timeout(0.25))
        stats = httpx.get(f"{url}/_admin/stats").json()
    assert summary.error is None and summary.complete and summary.pages == 10
    t = FanRow.__table__
    with engine.connect() as conn:
        assert tuple(conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(t.c.platform_uid)))).one()) \
            == (1000, 1000)
    requests = stats["fans_requests"] + stats["fan_detail_requests"]
    faulted = stats.get("rate_limited", 0) + stats.get("server_errors", 0) + stats.get("timeouts", 0)
    assert requests >= 1010 and faulted >= 25, stats  # 5 % of ~1,060 requests
    assert stats["fans_served"] == 10 and "fans_pages_served_twice" not in stats, stats
    assert stats["fan_detail_served"] == 1000, stats
    assert summary.retries >= faulted, (summary.retry_reasons, stats)
