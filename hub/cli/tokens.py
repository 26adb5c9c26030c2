"""``siyu tokens list|clear``: the stored access tokens' expiries, and forgetting them.

A token is never printed.  Clearing is for a platform that no longer knows the stored token (a
restarted sandbox, a revoked authorisation): the next call fetches a fresh one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from hub.cli.context import get_context
from hub.cli.output import JsonOption, console, emit, hint, table

__all__ = ["tokens_app"]

tokens_app = typer.Typer(help="List stored access tokens' expiries (never the tokens) and clear them.",
                         no_args_is_help=True)

PlatformOption = typer.Option(None, "--platform", help="Only this platform's tokens.")
AccountOption = typer.Option(None, "--account", help="Only this account id's tokens.")


def _state(expires_at: datetime | None, now: datetime) -> str:
    if expires_at is None:
        return "-"
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return "expired" if expires_at <= now else "valid"


@tokens_app.command("list")
def list_(ctx: typer.Context, platform: str | None = PlatformOption, account: str | None = AccountOption,
          as_json: bool = JsonOption) -> None:
    """Show each stored token's account and expiry (never the token)."""
    from hub.storage.tokens import list_tokens

    engine = get_context(ctx).engine()
    try:
        rows = list_tokens(engine, platform=platform, account_id=account)
    finally:
        engine.dispose()
    now = datetime.now(UTC)
    for row in rows:
        row["state"] = _state(row["expires_at"], now)

    def render(r: dict[str, Any]) -> None:
        if not r["tokens"]:
            console.print("no stored tokens" + (" match" if platform or account else ""))
            return
        table("Stored tokens", ["platform", "account", "expires at (UTC)", "state", "refresh token",
                                "refresh expires at", "updated at"],
              [(t["platform"], t["account_id"], t["expires_at"], t["state"], t["has_refresh_token"],
                t["refresh_expires_at"], t["updated_at"]) for t in r["tokens"]])

    emit({"ok": True, "tokens": rows}, as_json, render)


@tokens_app.command("clear")
def clear(ctx: typer.Context, platform: str | None = PlatformOption, account: str | None = AccountOption,
          as_json: bool = JsonOption) -> None:
    """Forget stored tokens (all, one platform's, or one account's); the next call fetches new ones."""
    from hub.storage.tokens import clear_tokens

    engine = get_context(ctx).engine()
    try:
        cleared = clear_tokens(engine, platform=platform, account_id=account)
    finally:
        engine.dispose()
    emit({"ok": True, "cleared": cleared, "platform": platform, "account_id": account}, as_json,
         lambda r: console.print(hint(f"{r['cleared']} stored token(s) cleared; the next sync fetches new ones "
                                      "(`siyu tokens list` shows what is left)")))
