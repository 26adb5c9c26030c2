"""``siyu sync`` and ``siyu fans``: pull platforms into the database, and read what was pulled."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from hub.sync.apply import ApplySummary, apply_pending
from hub.cli.context import get_context
from hub.cli.output import JsonOption, console, emit, table
from hub.errors import ConfigError, NotFound
from hub.sync.engine import STREAMS, StreamSummary, prepare_for_sync, sync_accounts
from schemas.tables import FanRow

__all__ = ["apply", "fans_app", "sync"]

fans_app = typer.Typer(help="Read synced fans.", no_args_is_help=True)


def sync(
    ctx: typer.Context,
    platform: str | None = typer.Option(None, "--platform", help="Only this platform's accounts."),
    account: str | None = typer.Option(None, "--account", help="Only this account id."),
    stream: str | None = typer.Option(None, "--stream", help=f"Only this stream ({', '.join(STREAMS)})."),
    full: bool = typer.Option(False, "--full", help="Start every stream from the beginning (nothing is duplicated)."),
    max_pages: int | None = typer.Option(None, "--max-pages", min=1,
                                         help="Stop each stream after this many pages (resumable)."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, max=64, help="Accounts synced at once."),
    apply: bool = typer.Option(True, "--apply/--no-apply",
                               help="Then stitch fans into members and post orders' and events' points."),
    as_json: bool = JsonOption,
) -> None:
    """Sync every account's streams, then stitch members and post points; exit 1 if a stream failed."""
    state = get_context(ctx)
    settings = state.settings
    if stream is not None and stream not in STREAMS:
        raise ConfigError(f"unknown stream {stream!r} (streams: {', '.join(STREAMS)})")
    if platform is not None:
        state.host.adapter_class(platform)
    if not any((platform is None or a.platform == platform) and (account is None or a.id == account)
               for a in settings.accounts):
        raise ConfigError("no configured account matches --platform/--account")
    engine = state.engine()
    prepare_for_sync()
    show_progress = not as_json and sys.stderr.isatty()
    try:
        if show_progress:
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.fields[pages]} pages"),
                          TextColumn("{task.completed} records"), TimeElapsedColumn(), transient=False) as bar:
                tasks: dict[tuple[str, str, str], Any] = {}

                def progress(p: str, a: str, s: str, pages: int, items: int) -> None:
                    key = (p, a, s)
                    if key not in tasks:
                        tasks[key] = bar.add_task(f"{p}:{a} {s}", total=None, pages=0)
                    bar.update(tasks[key], advance=items, pages=pages)

                summaries = asyncio.run(sync_accounts(state.host, settings, engine, platform=platform,
                                                      account_id=account, stream=stream, full=full,
                                                      max_pages=max_pages, concurrency=concurrency,
                                                      progress=progress))
        else:
            summaries = asyncio.run(sync_accounts(state.host, settings, engine, platform=platform, account_id=account,
                                                  stream=stream, full=full, max_pages=max_pages,
                                                  concurrency=concurrency))
        applied = apply_pending(engine, state.host, settings) if apply else None
    finally:
        engine.dispose()
    failed = [s for s in summaries if s.error]
    doc = {"ok": not failed, "streams": [s.as_dict() for s in summaries],
           "apply": asdict(applied) if applied else None}
    emit(doc, as_json, lambda _: (_render(summaries), applied and _render_apply(applied)))
    if failed:
        raise typer.Exit(1)


def apply(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Stitch fans into members and post pending orders' and points events' points."""
    state = get_context(ctx)
    engine = state.engine()
    try:
        applied = apply_pending(engine, state.host, state.settings)
    finally:
        engine.dispose()
    emit({"ok": True, **asdict(applied)}, as_json, lambda _: _render_apply(applied))


def _render_apply(a: ApplySummary) -> None:
    console.print(f"members: {a.fans_stitched} fans stitched ({a.members_created} new members, {a.merges} merges, "
                  f"{len(a.blocked_keys)} keys blocked, {a.buyers_added} buyers added); "
                  f"points: {a.orders_applied} orders, {a.points_events_applied} points events posted")
    for error in a.errors[:20]:
        console.print(f"  not applied: {error}")
    if len(a.errors) > 20:
        console.print(f"  … and {len(a.errors) - 20} more (see --json)")


def _render(summaries: list[StreamSummary]) -> None:
    table("Sync", ["account", "stream", "pages", "inserted", "updated", "unchanged", "retries", "seconds", "result"], [
        (f"{s.platform}:{s.account_id}", s.stream, s.pages, s.inserted, s.updated, s.unchanged, s.retries, s.seconds,
         ("error: " + s.error) if s.error else ("complete" if s.complete else "stopped"))
        for s in summaries
    ])
    for s in summaries:
        for note in s.notes:
            console.print(f"note {s.platform}:{s.account_id} {s.stream}: {note}")


FAN_COLUMNS = ("platform", "account_id", "platform_uid", "nickname", "union_id", "follow_state", "followed_at",
               "tier", "tags", "interactions", "member_id", "updated_at")


def _fan_doc(row: Any) -> dict[str, Any]:
    doc = {c: row[c] for c in FAN_COLUMNS}
    doc["has_phone"] = row["phone_hash"] is not None
    doc["follows"] = row["follows"]
    return doc


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
    t = FanRow.__table__
    query = sa.select(t).order_by(t.c.platform, t.c.account_id, t.c.platform_uid).limit(limit)
    if platform:
        query = query.where(t.c.platform == platform)
    if account:
        query = query.where(t.c.account_id == account)
    with engine.connect() as conn:
        rows = [_fan_doc(r) for r in conn.execute(query).mappings()]
    engine.dispose()
    emit(rows, as_json, lambda items: table(None, ["platform", "account", "uid", "nickname", "follow", "tier", "member"], [
        (r["platform"], r["account_id"], r["platform_uid"], r["nickname"], r["follow_state"], r["tier"], r["member_id"])
        for r in items
    ]))


@fans_app.command("show")
def fans_show(ctx: typer.Context, platform: str, account: str, uid: str, as_json: bool = JsonOption) -> None:
    """Show one synced fan."""
    engine = get_context(ctx).engine()
    t = FanRow.__table__
    with engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.platform == platform, t.c.account_id == account,
                                              t.c.platform_uid == uid)).mappings().first()
    engine.dispose()
    if row is None:
        raise NotFound(f"no fan {platform}:{account}:{uid}")
    emit(_fan_doc(row), as_json, lambda d: table(None, ["field", "value"], list(d.items())))
