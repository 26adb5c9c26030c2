"""``siyu outbox drain|list|retry``: send queued card updates and messages, inspect and revive them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

import typer

from hub.cli.context import get_context
from hub.cli.output import JsonOption, console, emit, table
from hub.errors import ConfigError
from hub.outbox.drain import DEFAULT_LEASE, STATUSES, Drainer
from hub.outbox.items import list_items, retry_dead

__all__ = ["outbox_app"]

outbox_app = typer.Typer(help="Send queued card updates and messages; list and retry them.", no_args_is_help=True)


@outbox_app.command("drain")
def drain(
    ctx: typer.Context,
    platform: str | None = typer.Option(None, "--platform", help="Only this platform's accounts."),
    account: str | None = typer.Option(None, "--account", help="Only accounts with this id."),
    limit: int | None = typer.Option(None, "--limit", min=1, max=2**31 - 1, help="Stop after this many items."),
    lease: float = typer.Option(DEFAULT_LEASE, "--lease", min=1.0, max=86_400.0,
                                help="Seconds before a crashed drainer's item is taken over."),
    as_json: bool = JsonOption,
) -> None:
    """Send every due item, in order per target, with retries; exit 1 if any item went dead."""
    state = get_context(ctx)
    settings = state.settings
    accounts = [a for a in settings.accounts
                if (platform is None or a.platform == platform) and (account is None or a.id == account)]
    if not accounts and (platform is not None or account is not None):
        raise ConfigError("no configured account matches --platform/--account")
    engine = state.engine()
    logging.basicConfig(level=logging.WARNING)
    try:
        drainer = Drainer(engine, state.host, settings, accounts=accounts, lease=lease)
        summary = asyncio.run(drainer.drain(limit=limit))
    finally:
        engine.dispose()
    result = {"ok": summary.dead == 0, "sent": summary.sent, "dead": summary.dead,
              "superseded": summary.superseded, "lost": summary.lost, "retries": summary.retries,
              "items": [asdict(item) for item in summary.items]}

    def render(r: dict[str, Any]) -> None:
        console.print(f"sent {r['sent']}, dead {r['dead']}, superseded {r['superseded']}, "
                      f"retries {r['retries']}" + (f", lost {r['lost']}" if r["lost"] else ""))
        failed = [i for i in r["items"] if i["status"] != "done"]
        if failed:
            table(None, ["id", "platform", "account", "kind", "target", "status", "error"],
                  [(i["id"], i["platform"], i["account_id"], i["kind"], i["target"], i["status"], i["error"])
                   for i in failed])

    emit(result, as_json, render)
    if summary.dead:
        raise typer.Exit(1)


@outbox_app.command("list")
def list_(
    ctx: typer.Context,
    status: str | None = typer.Option(None, "--status", help=f"One of {', '.join(STATUSES)}."),
    platform: str | None = typer.Option(None, "--platform"),
    account: str | None = typer.Option(None, "--account"),
    limit: int = typer.Option(100, "--limit", min=1, max=100_000),
    as_json: bool = JsonOption,
) -> None:
    """List outbox items, newest first (payloads are not shown)."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"must be one of {', '.join(STATUSES)}", param_hint="--status")
    engine = get_context(ctx).engine()
    try:
        items = list_items(engine, status=status, platform=platform, account_id=account, limit=limit)
    finally:
        engine.dispose()
    emit({"ok": True, "items": items}, as_json, lambda doc: table(
        "Outbox", ["id", "platform", "account", "kind", "target", "status", "attempts", "last error"],
        [(r["id"], r["platform"], r["account_id"], r["kind"], r["target"], r["status"], r["attempts"],
          r["last_error"]) for r in doc["items"]]))


@outbox_app.command("retry")
def retry(
    ctx: typer.Context,
    ids: list[int] | None = typer.Argument(None, help="Dead items to retry (default: every dead item)."),
    platform: str | None = typer.Option(None, "--platform"),
    account: str | None = typer.Option(None, "--account"),
    as_json: bool = JsonOption,
) -> None:
    """Move dead items back to pending, for the next drain."""
    engine = get_context(ctx).engine()
    try:
        moved = retry_dead(engine, ids=ids or None, platform=platform, account_id=account)
    finally:
        engine.dispose()
    emit({"ok": True, "retried": moved}, as_json,
         lambda r: console.print(f"{len(r['retried'])} dead item(s) back to pending"
                                 + (f": {', '.join(map(str, r['retried']))}" if r["retried"] else "")))
