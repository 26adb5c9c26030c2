"""Rate budget: how much of a platform's frequency limit a WeCom sync uses, and how often it trips it.

The WeCom sandbox runs in its own process (uvicorn, loopback) with its per-API limit set to
``R × window`` calls per ``window`` seconds (WeCom documents 10,000 calls per API per corp a
minute, a sliding count here, and answers errcode 45009 beyond it, blocking the API for one
window); the account's ``rate_limits`` say the same.  A recorder in front of the sandbox notes the
arrival time of every corp API call and counts the frequency-limit answers (errcode 45009 or HTTP
429).  Then the hub syncs the corp's fans into SQLite:

- ``pages``: the default sync, one ``batch/get_by_user`` page after the other (the page chain is
  sequential, so the budget binds only if a page takes less than ``1/R``);
- ``detail``: ``complete_follows = true``, every customer read with ``externalcontact/get``,
  ``detail_concurrency`` of them at once (the budget binds on ``get``).

Each round also syncs a quarter of the corp with no limit on either side: the client's own speed
(``capacity_per_s``) in the same moment of a shared machine.  Utilisation can only reach 0.90 where
the capacity is well above R.

For each run it reports the busiest API (the one the budget binds): its requests, the sync's
elapsed time, the achieved rate (requests / elapsed) and ``utilisation = achieved / R``, with the
steady-state figure (first to last request of that API) beside it, and the frequency-limit
answers.  Rounds alternate the modes; the figures are the medians of the rounds.  Goal:
utilisation ≥ 0.90 with zero limit answers.

    .venv/bin/python benchmarks/bench_rate.py --rounds 3
    .venv/bin/python benchmarks/bench_rate.py --modes detail --detail-rate 100 --detail-customers 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LIMITED = b'"errcode":45009'


def recorded(app: Any) -> Any:
    """``app`` behind a recorder: arrival times of each corp API path, frequency-limit answers,
    shown at ``GET /_bench/record``."""
    times: dict[str, list[float]] = defaultdict(list)
    limited: dict[str, int] = defaultdict(int)

    async def recorder(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/_admin"):
            await app(scope, receive, send)
            return
        if path == "/_bench/record":
            body = json.dumps({"times": times, "limited": limited}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        times[path].append(time.monotonic())

        async def watch(message: dict[str, Any]) -> None:
            if (message["type"] == "http.response.start" and message["status"] == 429) or (
                    message["type"] == "http.response.body" and LIMITED in message.get("body", b"")):
                limited[path] += 1
            await send(message)

        await app(scope, receive, watch)

    return recorder


def serve(port: int, customers: int, per_window: int, window: float) -> None:
    """The child process: the sandbox corp behind the recorder."""
    import uvicorn

    from plugins.wecom.sandbox import make_app
    from plugins.wecom.sandbox_data import Settings

    app = make_app(customers, settings=Settings(seed=7, per_minute=per_window, minute_seconds=window))
    uvicorn.run(recorded(app), host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


def start_sandbox(customers: int, per_window: int, window: float) -> tuple[subprocess.Popen[bytes], str]:
    from hub.testing import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(customers), str(per_window),
                             str(window)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # building a large corp takes a while
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the sandbox exited")
        try:
            httpx.get(f"{url}/_bench/record", timeout=0.5)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("the sandbox did not start")


def run(mode: str, customers: int, rate: float, window: float, tmp: Path, concurrency: int,
        unlimited: bool = False) -> dict[str, Any]:
    """One sync of a fresh sandbox corp into a fresh SQLite database (``unlimited``: no limit on
    either side, the client's own speed)."""
    from hub.config import parse_settings
    from hub.plugins import load_plugins
    from hub.storage import database as storage
    from hub.sync.engine import sync_accounts
    from plugins.wecom.sandbox_data import Settings, account_settings

    per_window = 10**9 if unlimited else round(rate * window)
    proc, url = start_sandbox(customers, per_window, window)
    try:
        host = load_plugins()
        database = f"sqlite:///{tmp / f'{mode}-{time.monotonic_ns()}.db'}"
        engine = storage.create_engine(database)
        storage.upgrade(engine)
        account = account_settings(url, Settings(seed=7, per_minute=per_window, minute_seconds=window), "hq")
        if mode == "detail":
            account.update(complete_follows=True, detail_concurrency=concurrency)
        raw = {"database": {"url": database}, "security": {"phone_key": "bench-phone-key-0123456789abcdef"},
               "accounts": [account]}
        settings = parse_settings(raw, host)
        started = time.monotonic()
        [summary] = asyncio.run(sync_accounts(host, settings, engine, stream="fans"))
        elapsed = time.monotonic() - started
        engine.dispose()
        record = httpx.get(f"{url}/_bench/record").json()
    finally:
        proc.terminate()
        proc.wait()
    busiest = max(record["times"], key=lambda p: len(record["times"][p]))
    arrivals = record["times"][busiest]
    span = arrivals[-1] - arrivals[0]
    achieved = len(arrivals) / elapsed
    return {"mode": mode, "R": rate, "window_s": window, "api": busiest, "customers": customers,
            "complete": summary.complete, "error": summary.error, "fans": summary.inserted,
            "requests": len(arrivals), "requests_all_apis": sum(len(t) for t in record["times"].values()),
            "elapsed_s": round(elapsed, 2), "achieved_per_s": round(achieved, 2),
            "utilisation": round(achieved / rate, 3),
            "utilisation_steady": round((len(arrivals) - 1) / span / rate, 3) if span > 0 else None,
            "limit_answers": sum(record["limited"].values()),
            "retries": summary.retry_reasons}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        port, customers, per_window, window = sys.argv[2:6]
        serve(int(port), int(customers), int(per_window), float(window))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="pages,detail", help="comma-separated: pages, detail")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=1.0,
                        help="the limit's window in seconds (WeCom's minute, scaled down)")
    parser.add_argument("--pages-rate", type=float, default=10.0, help="R for the pages mode (requests/s)")
    parser.add_argument("--pages-customers", type=int, default=25_000)
    parser.add_argument("--detail-rate", type=float, default=50.0, help="R for the detail mode (requests/s)")
    parser.add_argument("--detail-customers", type=int, default=1_500)
    parser.add_argument("--detail-concurrency", type=int, default=8)
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    plan = {"pages": (args.pages_customers, args.pages_rate), "detail": (args.detail_customers, args.detail_rate)}
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            for mode in modes if round_no % 2 == 0 else list(reversed(modes)):
                customers, rate = plan[mode]
                free = run(mode, max(customers // 4, 1), rate, args.window, Path(tmp), args.detail_concurrency,
                           unlimited=True)
                result = run(mode, customers, rate, args.window, Path(tmp), args.detail_concurrency)
                result["capacity_per_s"] = free["achieved_per_s"]
                runs[mode].append(result)
                print(json.dumps(result, ensure_ascii=False), file=sys.stderr, flush=True)
    report: dict[str, Any] = {"goal": {"utilisation": 0.9, "limit_answers": 0}, "cpus": os.cpu_count()}
    for mode, results in runs.items():
        first = results[0]
        report[mode] = {
            "R": first["R"], "window_s": first["window_s"], "api": first["api"], "customers": first["customers"],
            "rounds": len(results),
            **{key: statistics.median(r[key] for r in results)
               for key in ("requests", "elapsed_s", "achieved_per_s", "utilisation", "utilisation_steady",
                           "limit_answers", "capacity_per_s")},
            "capacity_over_R": round(statistics.median(r["capacity_per_s"] for r in results) / first["R"], 2),
            "utilisation_each_round": [r["utilisation"] for r in results],
            "limit_answers_each_round": [r["limit_answers"] for r in results],
            "all_complete": all(r["complete"] and r["error"] is None for r in results),
        }
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
