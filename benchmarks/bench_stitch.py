"""Stitching a large first load: N fans from 5 platforms into members, time and peak memory.

    .venv/bin/python benchmarks/bench_stitch.py [--fans 1000000] [--backend sqlite|postgresql]
        [--rounds 3] [--against /path/to/other/checkout] [--no-yardstick]

Generates the fans (about 2.5 fans per person, phones, WeChat union ids, Alipay user ids, one
front-desk phone shared by 500 fans that must be blocked) straight into a fresh database, then
runs :func:`hub.people.identity.stitch_all` in a child process on a copy of it, ``--rounds``
times, and reports the median wall time and the peak resident memory of the children
(``ru_maxrss``), and a bare ``executemany`` of the same number of ``UPDATE fans SET member_id``
rows as a yardstick.  ``--against`` runs another checkout's hub (a git worktree of a base
commit, say) on the same fans, its rounds interleaved with this one's, and reports both and
their ratio.  ``--as-apply`` times what ``siyu apply`` does instead (``apply_pending``: its
stitching with whatever it does around :func:`~hub.people.identity.stitch_all`, such as clearing
the fans' ``needs_stitch`` flags).  Each round checks afterwards that no fan is left without a
member and that the tables' indexes are the ones they had.  Prints one JSON document.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from databases import throwaway

HERE = Path(__file__).resolve().parents[1]

PLATFORMS = ["wecom", "douyin", "alipay", "kuaishou", "xiaohongshu"]


def generate(url: str, fans: int, seed: int = 7) -> None:
    from hub.storage import database as storage

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


INDEXES = {
    "sqlite": "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('fans', 'fan_identity_keys')",
    "postgresql": "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('fans', 'fan_identity_keys') "
                  "UNION ALL SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                  "WHERE conrelid IN ('fans'::regclass, 'fan_identity_keys'::regclass)",
}


def _shape(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return sorted((str(a), str(b)) for a, b in conn.exec_driver_sql(INDEXES[engine.dialect.name]))


def child(url: str, root: str, as_apply: bool) -> None:
    """One round, in its own process, with the ``hub`` of the checkout ``root``."""
    sys.path.insert(0, root)
    from hub.people import identity
    from hub.storage import database as storage

    engine = storage.create_engine(url)
    shape = _shape(engine)
    if as_apply:
        from hub.config import parse_settings
        from hub.plugins import load_plugins
        from hub.sync.apply import apply_pending

        host = load_plugins()
        settings = parse_settings({"database": {"url": url}, "security": {"phone_key": "k" * 32}}, host)
    started = time.perf_counter()
    if as_apply:
        summary = apply_pending(engine, host, settings)
        fans, members, blocked = summary.fans_stitched, summary.members_created, len(summary.blocked_keys)
    else:
        report = identity.stitch_all(engine)
        fans, members, blocked = report.fans, report.members_created, len(report.blocked)
    seconds = time.perf_counter() - started
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM fans WHERE member_id IS NULL")).scalar_one()
    print(json.dumps({"seconds": round(seconds, 2), "fans": fans, "members": members,
                      "blocked_keys": blocked, "unstitched_after": left,
                      "indexes_unchanged": _shape(engine) == shape,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
    engine.dispose()


def _round(root: Path, url: str, as_apply: bool) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", url, str(root), *(["--as-apply"] if as_apply else [])],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"stitching round in {root} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Copies:
    """Fresh copies of the generated database, one per round (a file copy, or a PostgreSQL
    database made from the generated one as its template)."""

    def __init__(self, backend: str, folder: Path, source: str) -> None:
        self.backend, self.folder, self.source, self.made = backend, folder, source, []

    def make(self) -> str:
        n = len(self.made)
        if self.backend == "sqlite":
            path = self.folder / f"round{n}.db"
            shutil.copyfile(sa.engine.make_url(self.source).database, path)
            self.made.append(str(path))
            return f"sqlite:///{path}"
        url = sa.engine.make_url(self.source)
        name = f"{url.database}_r{n}"
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"')
        admin.dispose()
        self.made.append(name)
        return url.set(database=name).render_as_string(hide_password=False)

    def drop(self, made_url: str) -> None:
        if self.backend == "sqlite":
            Path(sa.engine.make_url(made_url).database).unlink(missing_ok=True)
            return
        url = sa.engine.make_url(made_url)
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        admin.dispose()


def yardstick(url: str, fans: int) -> float:
    from hub.storage import database as storage

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


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {"seconds": statistics.median(r["seconds"] for r in rounds), "rounds_seconds": [r["seconds"] for r in rounds],
            "fans": rounds[0]["fans"], "members": rounds[0]["members"], "blocked_keys": rounds[0]["blocked_keys"],
            "unstitched_after": max(r["unstitched_after"] for r in rounds),
            "indexes_unchanged": all(r["indexes_unchanged"] for r in rounds),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rounds)}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], "--as-apply" in sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fans", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=1, help="stitching rounds, each on a fresh copy (median reported)")
    parser.add_argument("--against", type=Path, help="another checkout whose hub runs interleaved rounds")
    parser.add_argument("--no-yardstick", action="store_true", help="skip the bare UPDATE yardstick")
    parser.add_argument("--as-apply", action="store_true", help="time `siyu apply` (apply_pending) instead of stitch_all")
    args = parser.parse_args()
    here = HERE
    roots = [here] + ([args.against.resolve()] if args.against else [])
    results: dict[Path, list[dict[str, Any]]] = {root: [] for root in roots}
    with tempfile.TemporaryDirectory() as folder:
        url, drop = throwaway(args.backend, Path(folder))
        started = time.perf_counter()
        generate(url, args.fans)
        generated = round(time.perf_counter() - started, 1)
        bare = None if args.no_yardstick else yardstick(url, args.fans)
        copies = Copies(args.backend, Path(folder), url)
        try:
            for _ in range(args.rounds):
                for root in roots:
                    made = copies.make()
                    try:
                        results[root].append(_round(root, made, args.as_apply))
                    finally:
                        copies.drop(made)
        finally:
            drop()
    doc: dict[str, Any] = {"benchmark": "apply_pending" if args.as_apply else "stitch_all", "backend": args.backend, "fans_generated": args.fans,
                           "generate_seconds": generated, "bare_update_executemany_seconds": bare,
                           "rounds": args.rounds, **_summary(results[here]), "goal_seconds": 60}
    if args.against:
        other = _summary(results[roots[1]])
        doc["against"] = {"checkout": str(roots[1]), **other}
        doc["ratio_to_against"] = round(doc["seconds"] / other["seconds"], 3)
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))  # generating and the yardstick use this checkout's hub
    main()
