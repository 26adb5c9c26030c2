"""Faults while the daemon runs: a platform that is down for a while.

The outbox item lives through a real two-minute outage.  Its horizon is shortened through
configuration to three minutes (``[outbox] give_up_after_hours = 0.05``, back-off from half a
second to two), so the test also shows that the item is not dead while the outage lasts although
many sends failed, and that it is delivered by itself once the platform answers; against the
defaults (24 h, 30 s doubling to 30 min) the same deferrals span a day.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import datetime

import pytest

from hub.platform.sandbox import build_sandbox
from hub.plugins import load_plugins
from hub.storage import database as storage
from hub.testing import free_port, serve_asgi
from tests.hub.daemon.helpers import Daemon, siyu, wait_for, write_config
from tests.hub.outbox_helpers import card_item, insert, statuses

OUTAGE_SECONDS = 120


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path):
    path = tmp_path / "siyu.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def test_an_outbox_item_survives_an_outage_and_is_delivered_after_it(tmp_path, sqlite_url, card_sandbox):
    engine = storage.open_database(sqlite_url)
    item = insert(engine, card_item(9, 90))[0]
    card_sandbox.faults[9] = "down"
    config = write_config(tmp_path / "siyu.toml", sqlite_url,
                          [{"platform": "cardtest", "id": "shop", "base_url": card_sandbox.base_url}],
                          outbox={"give_up_after_hours": 0.05, "retry_initial_seconds": 0.5, "retry_max_seconds": 2})
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        daemon.wait_ready()
        began = time.monotonic()
        wait_for(lambda: card_sandbox.count(9) >= 4, 90, "several failed pushes")
        status = json.loads(siyu(config, "status", "--json").stdout)
        assert status["outbox"]["depth"] == 1 and statuses(engine)[item][0] in ("pending", "sending")
        wait_for(lambda: time.monotonic() - began >= OUTAGE_SECONDS, OUTAGE_SECONDS + 5, "the outage")
        assert statuses(engine)[item][0] in ("pending", "sending")  # never dead within the horizon
        failed = card_sandbox.count(9)
        card_sandbox.faults.clear()  # the platform answers again
        wait_for(lambda: statuses(engine)[item][0] == "done", 60, "the item to be delivered")
        assert card_sandbox.count(9) == failed + 1
        metrics = daemon.get("/metrics").text
        assert float(re.search(r'siyu_outbox_items_total\{outcome="deferred"\} (\S+)', metrics)[1]) >= 2
        assert float(re.search(r'siyu_outbox_items_total\{outcome="done"\} (\S+)', metrics)[1]) == 1
        assert re.search(r"^siyu_outbox_depth 0\.0$", metrics, re.M)
        assert daemon.terminate() == 0
    finally:
        daemon.close()
        engine.dispose()


def test_a_platform_down_backs_off_while_the_other_accounts_sync(tmp_path, sqlite_url):
    port = free_port()
    spec = build_sandbox(load_plugins(), "douyin", seed=0, fans=20, base_url=f"http://127.0.0.1:{port}")
    down = {**spec.account, "id": "down", "base_url": f"http://127.0.0.1:{free_port()}",  # nothing listens
            "sync_interval_seconds": 60}
    config = write_config(tmp_path / "siyu.toml", sqlite_url, [dict(spec.account), down],
                          daemon={"sync_interval_seconds": 2})
    with serve_asgi(spec.app, port=port):
        daemon = Daemon(config, tmp_path / "daemon.log")
        try:
            daemon.wait_ready()

            def jobs():
                return {j["name"]: j for j in json.loads(siyu(config, "status", "--json").stdout)["jobs"]}

            state = wait_for(lambda: (j := jobs())["sync:douyin:down:fans"]["failures"] >= 3
                             and j["sync:douyin:ent:fans"]["runs"] >= 3 and j, 120, "failures and healthy runs")
            bad, good = state["sync:douyin:down:fans"], state["sync:douyin:ent:fans"]
            assert bad["outcome"] == "error" and bad["error"] and bad["lag_seconds"] is None
            assert good["outcome"] in ("ok", "running") and good["failures"] == 0
            # the failing job is tried again after 1, 2, 4 … seconds ([daemon] failure_backoff_seconds = 1)
            wait = datetime.fromisoformat(bad["next_due_at"]) - datetime.fromisoformat(bad["started_at"])
            assert wait.total_seconds() == pytest.approx(min(60, 2 ** (bad["failures"] - 1)), abs=0.01)
            metrics = daemon.get("/metrics").text
            assert re.search(r'siyu_job_failures\{job="sync:douyin:down:fans"\} [3-9]', metrics)
            assert re.search(r'siyu_sync_errors_total\{kind="platform",platform="douyin",stream="fans"\}', metrics)
            assert daemon.get("/healthz").status_code == 200
            assert daemon.terminate() == 0
        finally:
            daemon.close()
