"""Stitching a large first load: N fans from 5 platforms into members, time and peak memory.

    .venv/bin/python benchmarks/bench_stitch.py [--fans 1000000] [--backend sqlite|postgresql]

Generates the fans (about 2.5 fans per person, phones, WeChat union ids, Alipay user ids, one
front-desk phone shared by 500 fans that must be blocked) straight into a fresh database, then
runs :func:`hub.people.identity.stitch_all` in a child process and reports its wall time and peak
resident memory (``ru_maxrss`` of that child), and a bare ``executemany`` of the same number of
``UPDATE fans SET member_id`` rows as a yardstick.  Prints one JSON document.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from databases import throwaway  # noqa: E402
from hub.people import identity  # noqa: E402
from hub.storage import database as storage  # noqa: E402

PLATFORMS = ["wecom", "douyin", "alipay", "kuaishou", "xiaohongshu"]


def generate(url: str, fans: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    persons = max(1, int(fans / 2.5))
    engine = storage.create_engine(url)
    storage.upgrade(engine)
    rows: list[tuple[Any, ...]] = []
    now = "2026-01-01 00:00:00"
    sql = ("INSERT INTO fans (platform, account_id, platform_uid, union_id, phone_hash, identity_keys, gender, "
           "follow_state, tags, follows, interactions, inserted_at, updated_at) "
           "VALUES (?, 'hq', ?, ?, ?, ?, 'unknown', 'unknown', '[]', '[]', '{}', ?, ?)")
    with engine.begin() as conn:
        if conn.dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
        for i in range(fans):
            person = rng.randrange(persons)
            platform = PLATFORMS[i % 5]
            phone = hashlib.sha256(f"p{person}".encode()).hexdigest() if rng.random() < 0.5 else None
            if i % 2000 == 0:
                phone = hashlib.sha256(b"front-desk").hexdigest()
            union = f"U{person}" if platform in ("wecom", "douyin") and rng.random() < 0.7 else None
            keys = json.dumps({"alipay_user_id": f"2088{person}"}) if platform == "alipay" and rng.random() < 0.6 else "{}"
            rows.append((platform, f"{platform}-{i}", union, phone, keys, now, now))
            if len(rows) == 50_000:
                conn.exec_driver_sql(sql, rows)
                rows.clear()
        if rows:
            conn.exec_driver_sql(sql, rows)
    engine.dispose()


def _stitch(url: str, queue: Any) -> None:
    engine = storage.create_engine(url)
    started = time.perf_counter()
    report = identity.stitch_all(engine)
    queue.put({"seconds": round(time.perf_counter() - started, 2), "fans": report.fans,
               "members": report.members_created, "blocked_keys": len(report.blocked)})
    engine.dispose()


def yardstick(url: str, fans: int) -> float:
    engine = storage.create_engine(url)
    with engine.begin() as conn:
        ids = list(conn.execute(sa.text("SELECT id FROM fans")).scalars())
        sql = "UPDATE fans SET member_id = NULL, updated_at = ? WHERE id = ?"
        if conn.dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
        started = time.perf_counter()
        for i in range(0, len(ids), 50_000):
            conn.exec_driver_sql(sql, [("2026-01-01 00:00:00", f) for f in ids[i:i + 50_000]])
        elapsed = time.perf_counter() - started
        conn.rollback()
    engine.dispose()
    return round(elapsed, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fans", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url, drop = throwaway(args.backend, Path(folder))

        started = time.perf_counter()
        generate(url, args.fans)
        generated = round(time.perf_counter() - started, 1)
        bare = yardstick(url, args.fans)
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        child = ctx.Process(target=_stitch, args=(url, queue))
        child.start()
        result = queue.get()
        child.join()
        peak_mb = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        drop()
    print(json.dumps({"benchmark": "stitch_all", "backend": args.backend, "fans_generated": args.fans,
                      "generate_seconds": generated, "bare_update_executemany_seconds": bare, **result,
                      "peak_rss_mb": peak_mb, "goal_seconds": 60}, indent=2))


if __name__ == "__main__":
    main()
