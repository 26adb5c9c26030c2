"""``siyu daemon`` as a process (on SQLite, and on PostgreSQL through procrastinate): callbacks applied within seconds, one daemon per
database file, a clean stop on SIGTERM, a config error before serving, status and metrics agree."""

from __future__ import annotations

import json
import re
import shutil
import time

import httpx
import pytest
import sqlalchemy as sa

from hub.platform.sandbox import build_sandbox
from hub.plugins import load_plugins
from hub.storage import database as storage
from hub.testing import free_port, serve_asgi
from schemas.tables import DaemonJobRow, FanRow
from tests.hub.daemon.helpers import Daemon, douyin_callback, siyu, wait_for, write_config


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path):
    path = tmp_path / "siyu.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def douyin():
    port = free_port()
    spec = build_sandbox(load_plugins(), "douyin", seed=0, fans=30, base_url=f"http://127.0.0.1:{port}")
    with serve_asgi(spec.app, port=port):
        yield dict(spec.account)


@pytest.fixture
def running(tmp_path, database_url, douyin):
    config = write_config(tmp_path / "siyu.toml", database_url, [douyin])
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        daemon.wait_ready()
        yield daemon, config, database_url, douyin
    finally:
        daemon.close()


def job_rows(url):
    engine = storage.create_engine(url)
    try:
        with engine.connect() as conn:
            return {r.name: r for r in conn.execute(sa.select(DaemonJobRow.__table__))}
    finally:
        engine.dispose()


def fan(url, uid):
    engine = storage.create_engine(url)
    t = FanRow.__table__
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(t.c.tier, t.c.member_id).where(t.c.platform_uid == uid)).one_or_none()
    finally:
        engine.dispose()


def test_a_strangers_callback_is_applied_within_5_seconds(running):
    daemon, _config, url, account = running
    # the first sync of the fans stream ran and was applied: the daemon is in its steady state
    wait_for(lambda: (job_rows(url).get("sync:douyin:" + account["id"] + ":fans") or None)
             and job_rows(url)["sync:douyin:" + account["id"] + ":fans"].outcome == "ok", 120, "the first sync")
    content = {"server_message_id": "srv-1", "conversation_short_id": "conv-1", "create_time": int(time.time() * 1000),
               "message_type": "text", "text": "hello", "user_infos": [{"open_id": "stranger-1", "nick_name": "S"}]}
    body, headers = douyin_callback(account, "im_receive_msg", content, sender="stranger-1", msg_id="m-stranger-1")
    sent = time.monotonic()
    answer = httpx.post(f"{daemon.url}/webhooks/douyin/{account['id']}", content=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    row = wait_for(lambda: (r := fan(url, "stranger-1")) is not None and r.tier and r.member_id and r, 30,
                   "the stranger's fan to get a tier and a member", interval=0.05)
    elapsed = time.monotonic() - sent
    print(f"callback applied (tier {row.tier}, member {row.member_id}) {elapsed:.2f}s after it was sent")
    assert elapsed < 5.0
    forged = httpx.post(f"{daemon.url}/webhooks/douyin/{account['id']}", content=body,
                        headers={**headers, "X-Douyin-Signature": "0" * 40, "Msg-Id": "m-forged"}, timeout=30)
    assert forged.status_code == 401
    metrics = daemon.get("/metrics").text
    assert re.search(r'siyu_webhooks_received_total\{platform="douyin"\} 1\.0', metrics)
    assert re.search(r'siyu_webhooks_rejected_total\{platform="douyin",reason="401"\} 1\.0', metrics)
    assert re.search(r'siyu_webhook_latency_seconds_count\{platform="douyin"\} 2\.0', metrics)
    assert re.search(r'siyu_ledger_postings_total\{source="orders"\}', metrics)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_second_daemon_on_the_same_file_is_refused_naming_the_first(running, tmp_path):
    daemon, config, _url, _account = running
    second = Daemon(config, tmp_path / "second.log")
    try:
        code = second.proc.wait(90)
    finally:
        second.close()
    assert code == 1
    message = second.log()
    assert f"pid {daemon.proc.pid}" in message and "another siyu daemon is running" in message
    assert daemon.get("/healthz").status_code == 200


def test_sigterm_stops_cleanly_with_nothing_left_running(running):
    daemon, _config, url, _account = running
    wait_for(lambda: daemon.get("/healthz").json()["ok"], 60, "a healthy daemon")
    assert daemon.terminate() == 0
    assert not [name for name, row in job_rows(url).items() if row.outcome == "running"]


def test_status_and_metrics_agree(running):
    daemon, config, url, account = running
    fans_job = f"sync:douyin:{account['id']}:fans"
    wait_for(lambda: (r := job_rows(url).get(fans_job)) is not None and r.outcome == "ok", 120, "the first sync")
    health = daemon.get("/healthz")
    assert health.status_code == 200 and health.json()["database"] == "ok"
    metrics = daemon.get("/metrics").text
    result = siyu(config, "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    job = next(j for j in status["jobs"] if j["name"] == fans_job)
    scraped = float(re.search(rf'siyu_job_duration_seconds\{{job="{re.escape(fans_job)}"\}} (\S+)', metrics)[1])
    if job["runs"] == 1:  # the next run is an hour away: the duration is the same run's
        assert scraped == pytest.approx(job["duration_seconds"])
    depth = float(re.search(r"^siyu_outbox_depth (\S+)$", metrics, re.M)[1])
    assert depth == status["outbox"]["depth"]
    for name in ("siyu_sync_records_total", "siyu_api_calls_total", "siyu_job_lag_seconds",
                 "siyu_outbox_oldest_age_seconds", "siyu_job_run_seconds", "siyu_database_up 1.0"):
        assert name in metrics, name
    inserted = float(re.search(r'siyu_sync_records_total\{kind="inserted",platform="douyin",stream="fans"\} (\S+)',
                               metrics)[1])
    assert inserted == 30


def test_a_config_error_exits_1_with_one_line_before_serving(tmp_path, sqlite_url, douyin):
    config = write_config(tmp_path / "siyu.toml", sqlite_url, [douyin], daemon={"sync_interval_seconds": -1})
    daemon = Daemon(config, tmp_path / "bad.log")
    try:
        assert daemon.proc.wait(90) == 1
    finally:
        daemon.close()
    lines = [line for line in daemon.log().splitlines() if line.strip()]
    assert len(lines) == 1 and "daemon.sync_interval_seconds" in lines[0]
    with pytest.raises(httpx.ConnectError):
        httpx.get(daemon.url + "/healthz", timeout=5)


def test_sigterm_in_the_middle_of_a_sync_commits_whole_pages_and_resumes(tmp_path, database_url):
    port = free_port()
    fans = 5_000  # the Douyin fans list reads at most 5,000
    spec = build_sandbox(load_plugins(), "douyin", seed=0, fans=fans, base_url=f"http://127.0.0.1:{port}")
    config = write_config(tmp_path / "siyu.toml", database_url, [dict(spec.account)])
    job = f"sync:douyin:{spec.account['id']}:fans"
    with serve_asgi(spec.app, port=port):
        daemon = Daemon(config, tmp_path / "daemon.log")
        try:
            daemon.wait_ready()
            wait_for(lambda: (r := job_rows(database_url).get(job)) is not None and r.outcome == "running"
                     and 0 < fan_count(database_url) < fans, 120, "the sync to be under way", interval=0.02)
            stopped = time.monotonic()
            assert daemon.terminate() == 0
            print(f"stopped {time.monotonic() - stopped:.2f}s after SIGTERM with {fan_count(database_url)} fans")
        finally:
            daemon.close()
        row = job_rows(database_url)[job]
        assert row.outcome == "interrupted"
        stored = fan_count(database_url)
        assert 0 < stored < fans
        result = siyu(config, "sync", "--stream", "fans", "--json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)["streams"][0]
        assert summary["resumed"] and summary["complete"]
        assert fan_count(database_url) == fans


def fan_count(url):
    engine = storage.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(FanRow.__table__)).scalar_one()
    finally:
        engine.dispose()
