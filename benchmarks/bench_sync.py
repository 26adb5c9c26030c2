"""Sync throughput and memory: the hub against a bare loop, in the same run.

The RSS check runs `siyu sync --no-apply`: the sync engine alone (stitching, which holds the keys
in memory by design, is measured by bench_stitch.py).

The sandbox of the test platform runs in its own process (uvicorn, loopback).  Then, into fresh
databases:

- ``hub``: ``sync_accounts`` (token flow, rate limiter, retries, error mapping, validation into
  canonical models, idempotent upsert, checkpoint per page, next page prefetched);
- ``bare``: a plain ``httpx.Client`` fetching the same pages and inserting each page's rows,
  built as ready tuples (times and JSON through the column types' own bind processors), with one
  driver-level ``executemany`` in its own transaction: no validation, no look-up of existing
  rows, no checkpoint, no token flow, no phone hashing.  ``ratio_hub_to_bare`` (the goal's) is
  measured against it;
- ``bare_multirow``: the same with one multi-row ``INSERT … VALUES`` a page, as the hub inserts
  on SQLite (``ratio_hub_to_bare_multirow``).

Each round runs the three in turn (in the reverse order every other round), each into a fresh
database; ratios are of the best rate of each over the rounds, and per round with their median
(the machine is shared: single figures are noisy, and the median of the rounds is the figure).
The rounds run in an interpreter tuned for a sync (``tuned_for_sync``), as ``siyu sync`` runs,
for all three.

It prints one JSON document: fans per second for each, their ratios, and (with ``--rss``) the peak
RSS of ``siyu sync`` child processes for each population size.

``--instructions N1,N2`` counts instead of timing: the hub and the bare loop each sync N1 and then
N2 fans in a child process under ``valgrind --tool=callgrind``, and the difference gives the CPU
instructions per 1,000 fans, start-up excluded.  A count does not depend on what else the machine
is doing (the same code and input give the same figure), so it shows a change of a few per cent
that timings on a shared machine cannot; it does not see memory stalls or the overlap of fetching,
planning and writing, which the timed ratio does.

    .venv/bin/python benchmarks/bench_sync.py --fans 100000 --backend sqlite
    .venv/bin/python benchmarks/bench_sync.py --fans 20000 --rss 10000,100000,1000000
    .venv/bin/python benchmarks/bench_sync.py --fans 0 --instructions 2000,12000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from databases import throwaway  # noqa: E402
from hub.storage import database as storage  # noqa: E402
from hub.plugins import load_plugins  # noqa: E402
from hub.storage import bulk  # noqa: E402
from hub.sync.run import run_sync  # noqa: E402
from hub.sync.tuning import tuned_for_sync  # noqa: E402
from hub.testing import free_port  # noqa: E402
from schemas.tables import FanRow  # noqa: E402
from siyu_testplatform.sandbox import CLIENT_ID, CLIENT_SECRET  # noqa: E402
from tests.hub.sandboxes import settings_for, toml_for, tp_account  # noqa: E402



def start_sandbox(fans: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "TESTPLAT_FANS": str(fans)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "siyu_testplatform.sandbox:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/_admin/stats", timeout=0.5)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("sandbox did not start")


def fresh_database(backend: str, tmp: Path, cleanups: list) -> str:
    """A migrated throwaway database; its removal is appended to ``cleanups``."""
    url, drop = throwaway(backend, tmp)
    cleanups.append(drop)
    engine = storage.create_engine(url)
    storage.upgrade(engine)
    engine.dispose()
    return url


def run_hub(url: str, database_url: str, page_size: int) -> tuple[float, int]:
    host = load_plugins()
    settings = settings_for(host, database_url, tp_account(url, page_size=page_size))
    engine = storage.open_database(database_url)
    started = time.perf_counter()
    [summary] = run_sync(host, settings, engine, stream="fans", apply=False).streams  # as `siyu sync` runs
    elapsed = time.perf_counter() - started
    engine.dispose()
    assert summary.error is None, summary.error
    return elapsed, summary.inserted


BARE_COLUMNS = ("platform", "account_id", "platform_uid", "nickname", "union_id", "gender", "follow_state",
                "followed_at", "tags", "follows", "interactions", "identity_keys", "inserted_at", "updated_at")


def run_bare(url: str, database_url: str, page_size: int, multirow: bool = False) -> tuple[float, int]:
    """Fetch every page with a plain ``httpx.Client`` and insert its rows with one ``executemany``
    (``multirow``: one multi-row ``INSERT … VALUES``, as the hub does on SQLite).  Times and JSON
    are converted by the column types' own bind processors, so the rows stored are the hub's."""
    engine = storage.create_engine(database_url)
    table = FanRow.__table__
    dialect = engine.dialect
    as_time = bulk.bind_processor(table.c.followed_at.type, dialect)
    as_json = bulk.bind_processor(table.c.interactions.type, dialect)
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO fans ({', '.join(BARE_COLUMNS)}) VALUES ({', '.join([mark] * len(BARE_COLUMNS))})"
    empty_list, empty_dict = as_json([]), as_json({})
    started = time.perf_counter()
    inserted = 0
    with httpx.Client(base_url=url) as client:
        token = client.post("/oauth/token", data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        cursor = ""
        while True:
            data = client.get("/v1/fans", params={"cursor": cursor, "count": page_size}, headers=headers).json()["data"]
            now = as_time(datetime.now(UTC))
            rows = [("testplat", "main", f["uid"], f["nickname"], f["union_id"], "unknown",
                     "following" if f["following"] else "unfollowed",
                     as_time(datetime.fromtimestamp(f["follow_time"], UTC)), empty_list, empty_list,
                     as_json({"messages": f["messages"]}), empty_dict, now, now)
                    for f in data["fans"]]
            with engine.begin() as conn:
                if rows and multirow:
                    bulk.insert_rows(conn, table, BARE_COLUMNS, rows)
                elif rows:
                    conn.exec_driver_sql(sql, rows)
            inserted += len(rows)
            cursor = data["next_cursor"]
            if not cursor:
                break
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, inserted


def peak_rss(url: str, fans: int, backend: str, tmp: Path, page_size: int, cleanups: list) -> int:
    """Peak RSS (KiB) of a `siyu sync` child that syncs ``fans`` fans."""
    database_url = fresh_database(backend, tmp, cleanups)
    config = tmp / f"rss-{fans}.toml"
    config.write_text(toml_for({"database": {"url": database_url}, "security": {"phone_key": "k" * 32},
                                "accounts": [tp_account(url, page_size=page_size)]}))
    siyu = shutil.which("siyu", path=str(Path(sys.executable).parent)) or "siyu"
    proc = subprocess.Popen([siyu, "--config", str(config), "sync", "--stream", "fans", "--no-apply", "--json"],
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    assert status == 0, f"siyu sync exited {status}"
    return usage.ru_maxrss


def run_child(which: str, url: str, backend: str, page_size: int) -> None:
    """One sync of every fan the sandbox at ``url`` holds into a fresh database (``--child``)."""
    cleanups: list = []
    with tempfile.TemporaryDirectory() as tmp_name, tuned_for_sync():
        database_url = fresh_database(backend, Path(tmp_name), cleanups)
        (run_hub if which == "hub" else run_bare)(url, database_url, page_size)
    for drop in cleanups:
        drop()


def instructions(which: str, fans: int, backend: str, page_size: int, tmp: Path) -> int:
    """CPU instructions of a child process that syncs ``fans`` fans, counted by callgrind."""
    proc, url = start_sandbox(fans)
    out = tmp / f"callgrind.{which}.{fans}"
    try:
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                        __file__, "--child", which, "--url", url, "--backend", backend,
                        "--page-size", str(page_size)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        proc.terminate()
        proc.wait()
    totals = [line for line in out.read_text().splitlines() if line.startswith(("summary:", "totals:"))]
    return int(totals[0].split()[1])


def count_instructions(sizes: list[int], backend: str, page_size: int, tmp: Path) -> dict[str, object]:
    """Instructions per 1,000 fans of the hub and of the bare loop (the two counted side by side)."""
    small, large = sizes
    per_1000: dict[str, float] = {}

    def count(which: str) -> None:
        counts = [instructions(which, n, backend, page_size, tmp) for n in (small, large)]
        per_1000[which] = (counts[1] - counts[0]) * 1000 / (large - small)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(count, ("hub", "bare")))
    return {"instructions_per_1000_fans": {k: round(per_1000[k] / 1e6, 1) for k in ("hub", "bare")},
            "instructions_unit": "millions", "instructions_hub_to_bare": round(per_1000["hub"] / per_1000["bare"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fans", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=5, help="alternate hub and bare this many times")
    parser.add_argument("--rss", default="", help="comma-separated population sizes for the peak-RSS check")
    parser.add_argument("--instructions", default="", metavar="N1,N2",
                        help="count CPU instructions per 1,000 fans with callgrind, between two population sizes")
    parser.add_argument("--child", choices=["hub", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.url, args.backend, args.page_size)
        return

    sizes = [int(s) for s in args.rss.split(",") if s]
    report: dict[str, object] = {"fans": args.fans, "page_size": args.page_size, "backend": args.backend}
    cleanups: list = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.fans:
            proc, url = start_sandbox(args.fans)
            runs = {"hub": lambda db: run_hub(url, db, args.page_size),
                    "bare": lambda db: run_bare(url, db, args.page_size),
                    "bare_multirow": lambda db: run_bare(url, db, args.page_size, multirow=True)}
            rates: dict[str, list[float]] = {name: [] for name in runs}
            # tuned as `siyu sync` runs; the bare loops run in the same settled heap
            with tuned_for_sync():
                try:
                    for round_no in range(args.rounds):
                        # hub and bare side by side, in turn first and last: the machine's drifts
                        # (other tenants) then favour neither
                        order = list(runs.items()) if round_no % 2 == 0 else list(reversed(runs.items()))
                        for name, run in order:
                            seconds, count = run(fresh_database(args.backend, tmp, cleanups))
                            assert count == args.fans, (name, count)
                            rates[name].append(count / seconds)
                finally:
                    proc.terminate()
                    proc.wait()
            best = {name: max(values) for name, values in rates.items()}
            for name, values in rates.items():
                report[f"{name}_fans_per_s"] = [round(r) for r in values]
            report["ratio_hub_to_bare"] = round(best["hub"] / best["bare"], 3)
            report["ratio_hub_to_bare_multirow"] = round(best["hub"] / best["bare_multirow"], 3)
            per_round = [h / b for h, b in zip(rates["hub"], rates["bare"], strict=True)]
            report["ratio_hub_to_bare_each_round"] = [round(r, 3) for r in per_round]
            report["ratio_hub_to_bare_median_round"] = round(statistics.median(per_round), 3)
            report["goal_ratio"] = 0.8
        if sizes:
            rss = {}
            for n in sizes:
                proc, url = start_sandbox(n)
                try:
                    rss[str(n)] = peak_rss(url, n, args.backend, tmp, args.page_size, cleanups)
                finally:
                    proc.terminate()
                    proc.wait()
            report["peak_rss_kib"] = rss
            report["rss_ratio_largest_to_smallest"] = round(rss[str(max(sizes))] / rss[str(min(sizes))], 3)
        if args.instructions:
            small, large = sorted(int(n) for n in args.instructions.split(","))
            report.update(count_instructions([small, large], args.backend, args.page_size, tmp))
    for drop in cleanups:
        drop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
