"""Eight processes earning, redeeming and reversing against the same members at once, on real
SQLite and PostgreSQL: no lost update, no overdraw, no key posted twice, and ``siyu ledger verify``
is clean afterwards."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub import ledger
from schemas.tables import LedgerEntryRow, MemberRow

from .concurrency_worker import work
from .helpers_members import new_member

PROCESSES = 8
OPS = 60


@pytest.mark.slow
def test_eight_processes(engine: sa.Engine, database_url: str, tmp_path: Path) -> None:
    member_ids = [new_member(engine) for _ in range(3)]
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        results = pool.starmap(work, [(database_url, seed, OPS, member_ids) for seed in range(PROCESSES)])
    calls = [r for batch in results for r in batch]
    created = [r for r in calls if "key" in r and r["created"]]
    # every key was written once, however many processes posted it
    assert all(n == 1 for n in Counter(r["key"] for r in created).values())
    shared = {r["key"] for r in calls if r.get("key", "").startswith("shared-")}
    assert shared and all(sum(1 for r in created if r["key"] == k) == 1 for k in shared)
    assert Counter(r["error"] for r in calls if "error" in r)["Overdraw"] > 0  # the race was real
    # no lost update: each balance is exactly what the successful postings add up to
    expected: dict[int, int] = defaultdict(int)
    for r in created:
        expected[r["member_id"]] += r["points"]
    entries = LedgerEntryRow.__table__
    members = MemberRow.__table__
    with engine.connect() as conn:
        balances = dict(conn.execute(sa.select(members.c.member_id, members.c.balance)).all())
        stored = conn.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one()
    assert stored == len(created)
    assert {m: balances[m] for m in member_ids} == {m: expected.get(m, 0) for m in member_ids}
    assert all(b >= 0 for b in balances.values())
    assert all(r["balance"] >= 0 for r in calls if "balance" in r)
    assert ledger.verify(engine) == []
    config = tmp_path / "siyu.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n[security]\nphone_key = "test-phone-key-0123456789abcdef"\n')
    siyu = Path(sys.executable).parent / "siyu"
    done = subprocess.run([str(siyu), "--config", str(config), "ledger", "verify", "--json"], capture_output=True,
                          text=True, timeout=120, env={**os.environ})
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {"ok": True, "violations": []}
