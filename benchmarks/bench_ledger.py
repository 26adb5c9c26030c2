"""Idempotent postings per second against a bare ``executemany`` of the same rows, same run.

    .venv/bin/python benchmarks/bench_ledger.py [--backend sqlite|postgresql|both] [--n 20000] [--page 500]

For each backend: two fresh databases at the current schema.  The *baseline* inserts the ledger
rows the hub would write, page by page, with one bare ``executemany`` per page and one commit per
page.  The *hub* posts the same postings with :func:`hub.ledger.post_many`, one page per
transaction (key look-up, member locks, entries, lots, balances, card outbox).  Then every page
is posted again (all replays, nothing written), and a sample is posted one transaction per
posting with :func:`hub.ledger.post`.  Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub import ledger, storage  # noqa: E402
from hub.ledger.lots import body_hash  # noqa: E402
from schemas.tables import LedgerEntryRow, utcnow  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MEMBERS = 1_000


def fresh(backend: str, folder: Path) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite:///{folder / (uuid.uuid4().hex + '.db')}", None
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    name = f"siyu_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url, drop


def prepare(url: str) -> sa.Engine:
    engine = storage.create_engine(url)
    storage.upgrade(engine)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO members (member_id, level, lifetime_points, balance, inserted_at, updated_at) "
                             "VALUES (:m, 0, 0, 0, :t, :t)"), [{"m": m, "t": now} for m in range(1, MEMBERS + 1)])
    return engine


def run(backend: str, n: int, page: int, folder: Path) -> dict[str, Any]:
    items = [ledger.Earn(member_id=1 + i % MEMBERS, points=1 + i % 97, reason="order", key=f"douyin:hq:evt-{i}")
             for i in range(n)]
    pages = [items[i:i + page] for i in range(0, n, page)]
    results: dict[str, Any] = {"backend": backend, "postings": n, "page": page}
    cleanups = []

    base_url, drop = fresh(backend, folder)
    cleanups.append(drop)
    base = prepare(base_url)
    entries = LedgerEntryRow.__table__
    now = utcnow()
    started = time.perf_counter()
    for chunk in pages:
        with base.begin() as conn:
            conn.execute(entries.insert(), [
                {"idempotency_key": e.key, "member_id": e.member_id, "kind": "earn", "points": e.points,
                 "reason": e.reason, "reverses_entry_id": None, "expires_at": None,
                 "body_hash": body_hash({"k": e.key}), "created_at": now} for e in chunk])
    results["baseline_rows_per_s"] = round(n / (time.perf_counter() - started))
    base.dispose()

    hub_url, drop = fresh(backend, folder)
    cleanups.append(drop)
    engine = prepare(hub_url)
    started = time.perf_counter()
    for chunk in pages:
        ledger.post_many(engine, chunk)
    results["hub_postings_per_s"] = round(n / (time.perf_counter() - started))
    started = time.perf_counter()
    for chunk in pages:
        assert not any(p.created for p in ledger.post_many(engine, chunk))
    results["hub_replays_per_s"] = round(n / (time.perf_counter() - started))
    sample = 1_000
    started = time.perf_counter()
    for i in range(sample):
        ledger.post(engine, member_id=1 + i % MEMBERS, points=5, reason="manual", key=f"single-{i}")
    results["single_post_per_s"] = round(sample / (time.perf_counter() - started))
    results["ratio"] = round(results["hub_postings_per_s"] / results["baseline_rows_per_s"], 3)
    results["verify_violations"] = len(ledger.verify(engine))
    engine.dispose()
    for drop in cleanups:
        if drop:
            drop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--page", type=int, default=500)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory() as folder:
        out = [run(b, args.n, args.page, Path(folder)) for b in backends]
    print(json.dumps({"benchmark": "ledger_postings", "goal_ratio": 0.5, "results": out}, indent=2))


if __name__ == "__main__":
    main()
