"""API calls per 1,000 customers: a full WeCom sync of the sandbox corp, counted by the sandbox.

WeCom keeps tags and remarks per staff relation, so one pass over ``batch/get_by_user`` (100
relations a call) holds everything the hub stores: the default sync costs about one call per 100
relations plus a token and the staff list.  ``complete_follows = true`` reads every customer whole
with ``externalcontact/get`` as well (one call per customer per page it is on); it is measured on a
smaller corp and reported per 1,000 customers too.  The figures are counts, not timings, so they
do not depend on the machine.

    .venv/bin/python benchmarks/bench_calls.py --customers 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from databases import throwaway  # noqa: E402
from hub.config import parse_settings  # noqa: E402
from hub.plugins import load_plugins  # noqa: E402
from hub.storage import database as storage  # noqa: E402
from hub.sync.engine import sync_accounts  # noqa: E402
from hub.testing import serve_asgi  # noqa: E402
from plugins.wecom.sandbox import make_app  # noqa: E402
from plugins.wecom.sandbox_data import Settings, account_settings  # noqa: E402


def measure(customers: int, folder: Path, backend: str, **options: object) -> dict[str, object]:
    host = load_plugins()
    sandbox = Settings(seed=7, minute_seconds=1.0)  # the documented per-minute budget, a second long
    app = make_app(customers, settings=sandbox)
    relations = len(app.state.sandbox.corp.relations)
    url, drop = throwaway(backend, folder)
    try:
        engine = storage.create_engine(url)
        storage.upgrade(engine)
        with serve_asgi(app) as base:
            raw = {"database": {"url": url}, "security": {"phone_key": "bench-phone-key-0123456789abcdef"},
                   "accounts": [{**account_settings(base, sandbox, "hq"), **options}]}
            settings = parse_settings(raw, host)
            started = time.monotonic()
            [summary] = asyncio.run(sync_accounts(host, settings, engine, stream="fans"))
            seconds = time.monotonic() - started
            calls = {k: v for k, v in httpx.get(f"{base}/_admin/stats").json().items() if v}
        engine.dispose()
    finally:
        drop()
    total = sum(calls.values())
    return {"customers": customers, "relations": relations, "complete": summary.complete, "error": summary.error,
            "fans": summary.inserted, "calls": calls, "calls_total": total,
            "calls_per_1000_customers": round(total * 1000 / customers, 1),
            "calls_per_1000_relations": round(total * 1000 / relations, 1),
            "hub_counted_calls": summary.api_calls, "seconds": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--complete-customers", type=int, default=2_000,
                        help="corp size for the complete_follows = true run (0: skip it)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = {"default": measure(args.customers, folder, args.backend)}
        if args.complete_customers:
            out["complete_follows"] = measure(args.complete_customers, folder, args.backend, complete_follows=True)
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
