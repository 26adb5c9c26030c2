"""``siyu demo``: every built-in platform's sandbox, run through the hub end to end, in one command.

Thin: it parses, runs :func:`hub.demo.story.run_demo` (with a progress bar on a terminal) and
prints what happened.  Running it again into the same directory duplicates nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from hub.cli.context import get_context
from hub.cli.output import JsonOption, console, emit, hint, table

__all__ = ["demo"]


def demo(
    ctx: typer.Context,
    directory: Path = typer.Option(Path("demo"), "--dir", help="Where the demo's siyu.toml, key and database live."),
    people: int = typer.Option(2000, "--people", min=1, max=1_000_000, help="People in the shared population."),
    seed: int = typer.Option(0, "--seed", help="Seed of the population and the sandboxes' data."),
    database: str | None = typer.Option(None, "--db", help="A database URL instead of DIR/siyu.db."),
    as_json: bool = JsonOption,
) -> None:
    """Sync, stitch, earn, refund, redeem, expire, take callbacks, push cards and read them back."""
    from hub.demo.story import STEPS, DemoOptions, run_demo
    from hub.sync.tuning import tuned_for_sync

    host = get_context(ctx).host
    options = DemoOptions(directory=directory, people=people, seed=seed, database_url=database)
    with tuned_for_sync():
        if not as_json and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[note]}"),
                          TimeElapsedColumn(), transient=True) as bar:
                task = bar.add_task("siyu demo", total=len(STEPS), note="")

                def advance(step: str, done: int, total: int | None) -> None:
                    note = f"{done} pages" if step == "sync" and done else ""
                    at = STEPS.index(step) if step in STEPS else len(STEPS)
                    bar.update(task, description=f"siyu demo: {step}", note=note, completed=at)

                doc = run_demo(host, options, advance)
        else:
            doc = run_demo(host, options)
    emit({"ok": doc["ok"], "demo": doc}, as_json, lambda d: _render(d["demo"]))
    if not doc["ok"]:
        raise typer.Exit(1)


def _render(d: dict[str, Any]) -> None:
    from hub.cli.report import render_report

    s = d["steps"]
    console.print(f"siyu demo: {d['people']} people on {', '.join(d['platforms'])}, in {d['seconds']} s.")
    console.print(f"Sync: {s['sync']['inserted']} records new, {s['sync']['updated']} updated, "
                  f"{s['sync']['unchanged']} unchanged in {s['sync']['pages']} pages.")
    for error in s["sync"]["errors"]:
        console.print(f"  {error}")
    table("People recognised on k platforms", ["platforms", "members"], sorted(d["recognised"].items()))
    cb = s["callbacks"]
    console.print(f"Callbacks: {cb.get('alipay_cards_activated', 0)} Alipay cards activated, "
                  f"{cb.get('douyin_members_joined', 0)} Douyin 来客 joins, a follow and a stranger's message.")
    if s.get("refund"):
        console.print(f"Refund: Kuaishou order {s['refund']['order_id']} refunded, "
                      f"{s['refund']['points_reversed']} points reversed.")
    if s.get("ledger"):
        led = s["ledger"]
        console.print(f"Member {led['member_id']}: a {led['gift']}-point gift expired ({led['expired_points']} points), "
                      f"{led['redeemed']} points redeemed; balance {led['balance']}.")
    pb = s["push_back"]
    console.print(f"Push-back: {pb['sent']} card updates sent, {pb['dead']} dead.")
    table("Cards read back from each sandbox", ["platform", "cards", "read back", "equal to the ledger"],
          [(p, c["cards"], c["read_back"], c["in_step"]) for p, c in sorted(d["cards"].items())])
    v = d["ledger_verify"]
    console.print("Ledger verify: clean." if v["ok"] else f"Ledger verify: {v['violations']} violations.")
    console.print(f"Added this run: {', '.join(f'{k} {n}' for k, n in d['added'].items())}.")
    for problem in d["problems"]:
        console.print(f"Problem: {problem}")
    console.print()
    render_report({"report": d["report"], "html": d["report_html"]})
    console.print(hint(f"Open {d['report_html']}, or try `siyu --config {d['config']} fans list`."))
