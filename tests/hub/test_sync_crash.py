"""Killing `siyu sync` with SIGKILL at any instant, then running it again, gives exactly the
database an uninterrupted run gives: no duplicate, no gap."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.storage import database as storage
from hub.testing import serve_asgi
from schemas.tables import FanRow, metadata
from siyu_testplatform.sandbox import Faults, Population, make_app
from tests.hub.sandboxes import FAST_RETRY, toml_for, tp_account

FANS = 3000
RUNS = int(os.environ.get("SIYU_CRASH_RUNS", "20"))
SIYU = shutil.which("siyu", path=str(Path(sys.executable).parent)) or "siyu"


def snapshot(engine):
    t = FanRow.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.platform_uid, t.c.nickname, t.c.union_id, t.c.followed_at)
                            .order_by(t.c.platform_uid)).all()
        cursor = conn.execute(sa.text("SELECT cursor FROM sync_checkpoints WHERE stream = 'fans'")).scalar()
    return rows, cursor


def expected_rows():
    from schemas import from_epoch_seconds

    pop = Population(FANS)
    return [(f["uid"], f["nickname"], f["union_id"], from_epoch_seconds(f["follow_time"]))
            for f in map(pop.fan, range(FANS))]


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_gives_the_uninterrupted_result(database_url, tmp_path):
    rng = random.Random(int(os.environ.get("SIYU_CRASH_SEED", "7")))
    expected = expected_rows()
    engine = storage.open_database(database_url)
    mid_stream_kills = 0
    faults = Faults(server_error=0.03, duplicate=0.1, token_ttl_requests=9)
    with serve_asgi(make_app(FANS, faults=faults)) as url:
        config = tmp_path / "siyu.toml"
        config.write_text(toml_for({"database": {"url": database_url}, "security": {"phone_key": "k" * 32},
                                    "retry": FAST_RETRY, "accounts": [tp_account(url, page_size=30)]}))
        command = [SIYU, "--config", str(config), "sync", "--stream", "fans", "--json"]

        def reset():  # every table, children first (the sync also stitches members)
            with engine.begin() as conn:
                for table in reversed(metadata.sorted_tables):
                    conn.execute(sa.delete(table))

        def start_and_wait_for_rows():
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while process.poll() is None and not snapshot(engine)[0]:
                time.sleep(0.01)
            return process, time.monotonic()

        # calibrate: how long does the stream take once rows start arriving?
        reset()
        process, first_rows = start_and_wait_for_rows()
        process.wait()
        streaming = max(0.2, time.monotonic() - first_rows)
        for run in range(RUNS):
            reset()
            victim, _ = start_and_wait_for_rows()
            time.sleep(rng.uniform(0, streaming))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            rows, cursor = snapshot(engine)
            if 0 < len(rows) < FANS:
                mid_stream_kills += 1
                assert cursor is not None, f"run {run}: rows without a checkpoint"
            finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
            assert finished.returncode == 0, finished.stdout + finished.stderr
            rows, cursor = snapshot(engine)
            assert len(rows) == FANS, f"run {run}: {len(rows)} rows"
            assert [tuple(r) for r in rows] == expected, f"run {run}: rows differ"
            assert cursor is None
    engine.dispose()
    print(f"{RUNS} SIGKILL runs, {mid_stream_kills} of them mid-stream: every resume matched the uninterrupted result")
    assert mid_stream_kills >= RUNS // 2, f"only {mid_stream_kills} of {RUNS} kills landed mid-stream"
