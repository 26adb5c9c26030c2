"""Three ``siyu daemon`` processes on one PostgreSQL, jobs on procrastinate: one killed with
SIGKILL in the middle of a job, its jobs move to the live daemons, every due time is served once,
nothing is duplicated, the ledger verifies, and SIGTERM stops the others cleanly."""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from hub.platform.sandbox import build_sandbox
from hub.plugins import load_plugins
from hub.storage import database as storage
from hub.testing import free_port, serve_asgi
from schemas.tables import DaemonJobRow, FanRow
from tests.hub.daemon.helpers import Daemon, siyu, wait_for, write_config

FANS = 800
ACCOUNTS = ("a", "b", "c")


@pytest.fixture
def douyin():
    port = free_port()
    spec = build_sandbox(load_plugins(), "douyin", seed=0, fans=FANS, base_url=f"http://127.0.0.1:{port}")
    with serve_asgi(spec.app, port=port):
        yield dict(spec.account)


def rows(engine):
    with engine.connect() as conn:
        return {r.name: r for r in conn.execute(sa.select(DaemonJobRow.__table__))}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_three_daemons_one_killed_mid_job(tmp_path, database_url, douyin):
    accounts = [{**douyin, "id": name} for name in ACCOUNTS]
    config = write_config(tmp_path / "siyu.toml", database_url, accounts,
                          daemon={"sync_interval_seconds": 3, "apply_interval_seconds": 2})
    engine = storage.open_database(database_url)
    daemons = [Daemon(config, tmp_path / f"daemon{i}.log") for i in range(3)]
    try:
        for daemon in daemons:
            daemon.wait_ready()
        by_pid = {d.proc.pid: d for d in daemons}

        def running_sync():
            for name, row in rows(engine).items():
                if name.startswith("sync:") and row.outcome == "running" and row.owner:
                    pid = int(row.owner.rsplit(":", 1)[1])
                    if pid in by_pid:
                        return name, pid
            return None

        wait_for(lambda: all(r.runs >= 1 for n, r in rows(engine).items() if n.startswith("sync:")), 180,
                 "every sync job to run once")
        name, pid = wait_for(running_sync, 120, "a sync job in the middle of a run", interval=0.02)
        victim = by_pid[pid]
        victim.kill()
        killed = time.monotonic()
        killed_at = rows(engine)[name].started_at
        survivors = [d for d in daemons if d is not victim]
        # its job is failed by the next tick after the heartbeat timeout, and runs again elsewhere
        wait_for(lambda: (r := rows(engine)[name]).outcome == "ok" and r.started_at > killed_at
                 and int(r.owner.rsplit(":", 1)[1]) != pid, 120, "the killed job to run on a live daemon")
        resumed = time.monotonic()
        print(f"{name} ran to its end on a live daemon {resumed - killed:.1f}s after the SIGKILL")
        # every job keeps running on the survivors
        mark = {n: r.runs for n, r in rows(engine).items()}
        wait_for(lambda: all(r.runs >= mark[n] + 2 for n, r in rows(engine).items()), 180,
                 "every job to run twice more")
        print(f"resumed; every job ran twice more {time.monotonic() - resumed:.1f}s later")
        for daemon in survivors:
            daemon.proc.send_signal(15)
        for daemon in survivors:
            assert daemon.proc.wait(90) == 0, daemon.log()[-2000:]
        # each due time was served once: no (job, due) appears twice among completed runs
        ran = Counter()
        for daemon in daemons:
            for line in daemon.log().splitlines():
                match = re.search(r'"message": "ran (\S+) due (\S+): (ok|error)"', line)
                if match:
                    ran[(match[1], match[2])] += 1
        assert ran and max(ran.values()) == 1, [k for k, v in ran.items() if v > 1]
        assert not [n for n, r in rows(engine).items() if r.outcome == "running"]
        with engine.connect() as conn:
            doing = conn.exec_driver_sql(
                "SELECT count(*) FROM procrastinate.procrastinate_jobs WHERE status = 'doing'").scalar()
            fans = dict(conn.execute(sa.select(FanRow.__table__.c.account_id, sa.func.count())
                                     .group_by(FanRow.__table__.c.account_id)).all())
        assert doing == 0, _doing(engine)
        assert fans == {name: FANS for name in ACCOUNTS}
        verify = siyu(config, "ledger", "verify", "--json")
        assert verify.returncode == 0 and json.loads(verify.stdout)["ok"], verify.stdout + verify.stderr
    finally:
        for daemon in daemons:
            daemon.close()
        engine.dispose()


def _doing(engine):
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT id, task_name, args, worker_id, lock FROM procrastinate.procrastinate_jobs "
                                    "WHERE status = 'doing'").all()
