"""``siyu sync`` and ``siyu fans``: pull platforms into the database, and read what was pulled."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from hub.cli.context import get_context
from hub.cli.output import JsonOption, console, emit, table
from hub.sync.engine import STREAMS, StreamSummary
from hub.sync.run import check_selection, run_sync
from hub.sync.tuning import tuned_for_sync

if TYPE_CHECKING:
    from hub.sync.apply import ApplySummary

__all__ = ["apply", "fans_app", "sync"]

fans_app = typer.Typer(help="Read synced fans.", no_args_is_help=True)


def sync(
    ctx: typer.Context,
    platform: str | None = typer.Option(None, "--platform", help="Only this platform's accounts."),
    account: str | None = typer.Option(None, "--account", help="Only this account id."),
    stream: str | None = typer.Option(None, "--stream", help=f"Only this stream ({', '.join(STREAMS)})."),
    full: bool = typer.Option(False, "--full", help="Start every stream from the beginning (nothing is duplicated)."),
    max_pages: int | None = typer.Option(None, "--max-pages", min=1, max=2**31 - 1,
                                         help="Stop each stream after this many pages (resumable)."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, max=64, help="Accounts synced at once."),
    apply: bool = typer.Option(True, "--apply/--no-apply",
                               help="Then stitch fans into members and post orders' and events' points."),
    as_json: bool = JsonOption,
) -> None:
    """Sync every account's streams, then stitch members and post points; exit 1 if a stream failed."""
    state = get_context(ctx)
    check_selection(state.host, state.settings, platform=platform, account_id=account, stream=stream)
    engine = state.engine()
    try:
        with ExitStack() as stack:
            progress = None
            if not as_json and sys.stderr.isatty():
                progress = _progress_bar(stack.enter_context(Progress(
                    SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.fields[pages]} pages"),
                    TextColumn("{task.completed} records"), TimeElapsedColumn(), transient=False)))
            with tuned_for_sync():
                run = run_sync(state.host, state.settings, engine, platform=platform, account_id=account,
                               stream=stream, full=full, max_pages=max_pages, concurrency=concurrency, apply=apply,
                               progress=progress)
    finally:
        engine.dispose()
    emit(run.as_dict(), as_json, lambda _: (_render(run.streams), run.applied and _render_apply(run.applied)))
    if not run.ok:
        raise typer.Exit(1)


def _progress_bar(bar: Progress) -> Any:
    """A progress callback that shows a line per stream on ``bar``."""
    tasks: dict[tuple[str, str, str], Any] = {}

    def progress(p: str, a: str, s: str, pages: int, items: int) -> None:
        key = (p, a, s)
        if key not in tasks:
            tasks[key] = bar.add_task(f"{p}:{a} {s}", total=None, pages=0)
        bar.update(tasks[key], advance=items, pages=pages)

    return progress


def apply(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Complete stored callbacks, stitch fans into members, post pending orders' and points events' points."""
    state = get_context(ctx)
    engine = state.engine()
    from hub.sync.apply import apply_pending
    from hub.webhooks.process import process_pending_blocking

    try:  # stored callbacks first: their follow-ups call the platforms, then their records apply
        callbacks = process_pending_blocking(state.host, state.settings, engine)
        applied = apply_pending(engine, state.host, state.settings)
    finally:
        engine.dispose()
    emit({"ok": True, "callbacks": callbacks, **asdict(applied)}, as_json, lambda _: _render_apply(applied))


def _render_apply(a: ApplySummary) -> None:
    console.print(f"members: {a.fans_stitched} fans stitched ({a.members_created} new members, {a.merges} merges, "
                  f"{len(a.blocked_keys)} keys blocked, {a.buyers_added} buyers added); "
                  f"points: {a.orders_applied} orders, {a.points_events_applied} points events posted")
    for error in a.errors[:20]:
        console.print(f"  not applied: {error}")
    if len(a.errors) > 20:
        console.print(f"  … and {len(a.errors) - 20} more (see --json)")


def _render(summaries: list[StreamSummary]) -> None:
    table("Sync", ["account", "stream", "pages", "inserted", "updated", "unchanged", "retries", "API calls",
                   "calls/1,000", "seconds", "result"], [
        (f"{s.platform}:{s.account_id}", s.stream, s.pages, s.inserted, s.updated, s.unchanged, s.retries, s.api_calls,
         "" if s.calls_per_1000 is None else s.calls_per_1000, s.seconds,
         ("error: " + s.error) if s.error else ("complete" if s.complete else "stopped"))
        for s in summaries
    ])
    for s in summaries:
        for note in s.notes:
            console.print(f"note {s.platform}:{s.account_id} {s.stream}: {note}")


@fans_app.command("list")
def fans_list(
    ctx: typer.Context,
    platform: str | None = typer.Option(None, "--platform"),
    account: str | None = typer.Option(None, "--account"),
    limit: int = typer.Option(50, "--limit", min=1, max=100_000),
    as_json: bool = JsonOption,
) -> None:
    """List synced fans (phone numbers are never shown: only whether one is known)."""
    engine = get_context(ctx).engine()
    try:
        from hub.people.queries import list_fans

        rows = list_fans(engine, platform=platform, account_id=account, limit=limit)
    finally:
        engine.dispose()
    emit({"ok": True, "fans": rows}, as_json, lambda doc: table(
        None, ["platform", "account", "uid", "nickname", "follow", "tier", "member"],
        [(r["platform"], r["account_id"], r["platform_uid"], r["nickname"], r["follow_state"], r["tier"],
          r["member_id"]) for r in doc["fans"]]))


@fans_app.command("show")
def fans_show(ctx: typer.Context, platform: str, account: str, uid: str, as_json: bool = JsonOption) -> None:
    """Show one synced fan."""
    engine = get_context(ctx).engine()
    try:
        from hub.people.queries import get_fan

        fan = get_fan(engine, platform, account, uid)
    finally:
        engine.dispose()
    emit({"ok": True, "fan": fan}, as_json, lambda doc: table(None, ["field", "value"], list(doc["fan"].items())))
