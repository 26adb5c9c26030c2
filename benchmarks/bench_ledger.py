"""Idempotent postings per second against a bare ``executemany`` of the same rows, same run.

    .venv/bin/python benchmarks/bench_ledger.py [--backend sqlite|postgresql|both] [--n 20000] [--page 500] [--rounds 3]

For each backend and round: fresh databases at the current schema, measured in turn, in a
process whose start-up heap is frozen out of the garbage collector's way (as ``siyu sync``,
whose apply step posts points, does).

- The *baseline* writes the rows the hub writes for these postings: per posting its ledger entry
  and the lot the entry opens (same keys, members, points, reasons, body hashes and timestamps;
  ids given in advance so that each lot names its entry), built before the clock starts, page by
  page with one driver-level ``cursor.executemany`` per table and one commit per page: the floor
  for getting those rows into their tables, with no look-up, lock, balance or outbox.  ``ratio``
  (the goal's) is measured against it.
- The *entries-only baseline* writes only the entry rows the same way (``ratio_entries_only``),
  and the *core baseline* the entry rows through SQLAlchemy Core (``conn.execute(insert, rows)``,
  one transaction per page; ``ratio_to_core``).
- The *hub* posts the same postings with :func:`hub.ledger.post_many`, one page per transaction
  (key look-up, member locks, entries, lots, balances, card outbox).  Then every page is posted
  again (all replays, nothing written), and a sample is posted one transaction per posting with
  :func:`hub.ledger.post`.

Ratios are hub postings/s ÷ baseline postings/s of the same round; the summary gives the median
and range over rounds (the machine is shared, so single figures are noisy).  Prints one JSON
document.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from databases import throwaway  # noqa: E402
from hub import ledger  # noqa: E402
from hub.storage import database as storage  # noqa: E402
from hub.ledger.batch import LOT_COLUMNS, _digest  # noqa: E402
from hub.storage.bulk import bind_processor  # noqa: E402
from hub.sync.tuning import tuned_for_sync  # noqa: E402
from schemas.tables import LedgerEntryRow, utcnow  # noqa: E402

MEMBERS = 1_000
COLUMNS = ("idempotency_key", "member_id", "kind", "points", "reason", "reverses_entry_id", "expires_at", "body_hash",
           "created_at")


def prepare(url: str) -> sa.Engine:
    engine = storage.create_engine(url)
    storage.upgrade(engine)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO members (member_id, level, lifetime_points, balance, inserted_at, updated_at) "
                             "VALUES (:m, 0, 0, 0, :t, :t)"), [{"m": m, "t": now} for m in range(1, MEMBERS + 1)])
    return engine


def _insert_sql(engine: sa.Engine, table: str, columns: tuple[str, ...]) -> str:
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def bare(engine: sa.Engine, pages: list[list[tuple[str, list[tuple[Any, ...]]]]], n: int) -> int:
    """Rows per second of one driver-level ``executemany`` per statement and one commit per page."""
    raw = engine.raw_connection()
    started = time.perf_counter()
    for statements in pages:
        cursor = raw.cursor()
        for sql, rows in statements:
            cursor.executemany(sql, rows)
        cursor.close()
        raw.commit()
    rate = round(n / (time.perf_counter() - started))
    raw.close()
    return rate


def run(backend: str, n: int, page: int, folder: Path) -> dict[str, Any]:
    items = [ledger.Earn(member_id=1 + i % MEMBERS, points=1 + i % 97, reason="order", key=f"douyin:hq:evt-{i}")
             for i in range(n)]
    pages = [items[i:i + page] for i in range(0, n, page)]
    results: dict[str, Any] = {"backend": backend, "postings": n, "page": page}
    cleanups = []
    entries = LedgerEntryRow.__table__

    base_url, drop = throwaway(backend, folder)
    cleanups.append(drop)
    base = prepare(base_url)
    stamp = bind_processor(entries.c.created_at.type, base.dialect) or (lambda value: value)
    now = stamp(utcnow())
    rows = [[(e.key, e.member_id, "earn", e.points, e.reason, None, None, _digest(e, {}), now) for e in chunk]
            for chunk in pages]
    entry_sql, lot_sql = (_insert_sql(base, "ledger_entries", ("entry_id", *COLUMNS)),
                          _insert_sql(base, "ledger_lots", LOT_COLUMNS))
    numbered = [[(n_before + i + 1, *row) for i, row in enumerate(chunk)]
                for n_before, chunk in zip(range(0, n, page), rows, strict=True)]
    lot_rows = [[(row[2], row[0], row[0], None, row[4], row[4], row[4], now, None) for row in chunk]
                for chunk in numbered]
    results["baseline_rows_per_s"] = bare(base, [[(entry_sql, entry_rows), (lot_sql, lot_rows_)]
                                                 for entry_rows, lot_rows_ in zip(numbered, lot_rows, strict=True)], n)
    base.dispose()

    only_url, drop = throwaway(backend, folder)
    cleanups.append(drop)
    only = prepare(only_url)
    results["baseline_entries_only_rows_per_s"] = bare(only, [[(_insert_sql(only, "ledger_entries", COLUMNS), chunk)]
                                                              for chunk in rows], n)
    only.dispose()

    core_url, drop = throwaway(backend, folder)
    cleanups.append(drop)
    core = prepare(core_url)
    when = utcnow()
    dicts = [[dict(zip(COLUMNS, (*row[:8], when), strict=True)) for row in chunk] for chunk in rows]
    started = time.perf_counter()
    for chunk in dicts:
        with core.begin() as conn:
            conn.execute(entries.insert(), chunk)
    results["baseline_core_rows_per_s"] = round(n / (time.perf_counter() - started))
    core.dispose()

    hub_url, drop = throwaway(backend, folder)
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
    results["ratio_entries_only"] = round(results["hub_postings_per_s"] / results["baseline_entries_only_rows_per_s"], 3)
    results["ratio_to_core"] = round(results["hub_postings_per_s"] / results["baseline_core_rows_per_s"], 3)
    results["verify_violations"] = len(ledger.verify(engine))
    engine.dispose()
    for drop in cleanups:
        drop()
    return results


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": rounds[0]["backend"], "postings": rounds[0]["postings"],
                           "page": rounds[0]["page"], "rounds": len(rounds)}
    for name in ("baseline_rows_per_s", "baseline_entries_only_rows_per_s", "baseline_core_rows_per_s",
                 "hub_postings_per_s", "hub_replays_per_s", "single_post_per_s", "ratio", "ratio_entries_only",
                 "ratio_to_core"):
        values = sorted(r[name] for r in rounds)
        out[name] = {"median": statistics.median(values), "min": values[0], "max": values[-1]}
    out["verify_violations"] = max(r["verify_violations"] for r in rounds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--page", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    out = []
    with tuned_for_sync(), tempfile.TemporaryDirectory() as folder:
        for backend in backends:
            rounds = [run(backend, args.n, args.page, Path(folder)) for _ in range(args.rounds)]
            out.append({**summary(rounds), "each": rounds})
    print(json.dumps({"benchmark": "ledger_postings", "goal_ratio": 0.5, "results": out}, indent=2))


if __name__ == "__main__":
    main()
