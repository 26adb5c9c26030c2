"""``siyu ledger``: post, redeem, reverse, balance, history, expire and verify."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from hub import ledger
from hub.cli.context import get_context
from hub.cli.output import JsonOption, console, emit, table
from hub.errors import InvalidPosting
from hub.ledger import Posted

__all__ = ["ID_MAX", "POINTS_MAX", "ledger_app", "parse_time"]

ID_MAX = 2**31 - 1
"""The largest id a row can have (the id columns are INTEGER, 32-bit on PostgreSQL)."""
POINTS_MAX = 2**31 - 1
"""The most points one entry can carry (the points columns are INTEGER, 32-bit on PostgreSQL)."""

ledger_app = typer.Typer(help="The points ledger: post, redeem, reverse, expire, verify.", no_args_is_help=True)


def parse_time(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 time with its zone (``2026-06-30T23:59:59+08:00``); a naive time is refused."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidPosting(f"{name}: not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise InvalidPosting(f"{name}: say which zone, e.g. {text}+08:00")
    return value


def _posted(p: Posted) -> dict[str, Any]:
    return {"ok": True, "created": p.created, "member_id": p.member_id, "balance": p.balance,
            "entry": p.entry.model_dump(mode="json")}


def _say(r: dict[str, Any]) -> None:
    e = r["entry"]
    verb = "posted" if r["created"] else "already posted (same key), nothing written:"
    console.print(f"{verb} entry {e['entry_id']} ({e['kind']} {e['points']:+d}); member {r['member_id']} "
                  f"balance {r['balance']}")


@ledger_app.command("post")
def post(
    ctx: typer.Context,
    member: int = typer.Option(..., "--member", min=1, max=ID_MAX, help="Member id (a merged member's survivor is credited)."),
    points: int = typer.Option(..., "--points", min=1, max=POINTS_MAX, help="Points to credit, a positive whole number."),
    reason: str = typer.Option(..., "--reason", help="Why, for the history."),
    key: str = typer.Option(..., "--key", help="Idempotency key: the same key again writes nothing."),
    expires_at: str | None = typer.Option(None, "--expires-at", help="When these points expire (ISO 8601 with zone)."),
    as_json: bool = JsonOption,
) -> None:
    """Credit earned points to a member."""
    state = get_context(ctx)
    expiry = parse_time(expires_at, "--expires-at")
    if expiry is not None and expiry <= datetime.now(UTC):
        raise InvalidPosting(f"--expires-at: {expiry.isoformat()} is in the past; these points would expire at once")
    p = ledger.post(state.engine(), member_id=member, points=points, reason=reason, key=key, policy=state.policy,
                    expires_at=expiry, host=state.host)
    emit(_posted(p), as_json, _say)


@ledger_app.command("redeem")
def redeem(
    ctx: typer.Context,
    member: int = typer.Option(..., "--member", min=1, max=ID_MAX, help="Member id."),
    points: int = typer.Option(..., "--points", min=1, max=POINTS_MAX, help="Points to spend, a positive whole number."),
    key: str = typer.Option(..., "--key", help="Idempotency key."),
    reason: str = typer.Option("redeemed", "--reason", help="Why, for the history."),
    as_json: bool = JsonOption,
) -> None:
    """Spend a member's points, oldest unexpired first; refused (nothing written) if it would overdraw."""
    state = get_context(ctx)
    p = ledger.redeem(state.engine(), member_id=member, points=points, key=key, reason=reason, host=state.host,
                      policy=state.policy)
    emit(_posted(p), as_json, _say)


@ledger_app.command("reverse")
def reverse(
    ctx: typer.Context,
    entry_id: int = typer.Argument(..., min=1, max=ID_MAX, help="The entry to reverse."),
    key: str = typer.Option(..., "--key", help="Idempotency key of the reversal."),
    reason: str | None = typer.Option(None, "--reason", help="Why, for the history."),
    as_json: bool = JsonOption,
) -> None:
    """Append the reversal of an entry (an entry is reversed once)."""
    state = get_context(ctx)
    p = ledger.reverse(state.engine(), entry_id, key=key, reason=reason, host=state.host, policy=state.policy)
    emit(_posted(p), as_json, _say)


@ledger_app.command("balance")
def balance(ctx: typer.Context, member: int = typer.Argument(..., min=1, max=ID_MAX, help="Member id."),
            as_json: bool = JsonOption) -> None:
    """Show a member's balance, usable points, lifetime points, level and open lots."""
    result = {"ok": True, **ledger.balance(get_context(ctx).engine(), member)}

    def render(r: dict[str, Any]) -> None:
        via = "" if r["member_id"] == r["asked_for"] else f" (member {r['asked_for']} was merged into it)"
        console.print(f"member {r['member_id']}{via}: balance {r['balance']}, usable now {r['available']}, "
                      f"lifetime {r['lifetime_points']}, level {r['level']}")
        table(None, ["lot", "remaining", "earned at", "expires at"],
              [(lot["lot_id"], lot["remaining"], lot["earned_at"], lot["expires_at"] or "never") for lot in r["lots"]])

    emit(result, as_json, render)


@ledger_app.command("history")
def history(
    ctx: typer.Context,
    member: int = typer.Argument(..., min=1, max=ID_MAX, help="Member id."),
    limit: int | None = typer.Option(None, "--limit", min=1, max=ID_MAX, help="Only the last N entries."),
    as_json: bool = JsonOption,
) -> None:
    """List a member's ledger entries, oldest first."""
    rows = [e.model_dump(mode="json") for e in ledger.history(get_context(ctx).engine(), member, limit=limit)]
    emit({"ok": True, "member_id": member, "entries": rows}, as_json, lambda r: table(
        f"Ledger of member {member}", ["entry", "time", "kind", "points", "reason", "reverses", "key"],
        [(e["entry_id"], e["created_at"], e["kind"], f"{e['points']:+d}", e["reason"], e["reverses_entry_id"],
          e["idempotency_key"]) for e in r["entries"]]))


@ledger_app.command("expire")
def expire(
    ctx: typer.Context,
    as_of: str | None = typer.Option(None, "--as-of", help="Expire lots due at or before this time (default now)."),
    as_json: bool = JsonOption,
) -> None:
    """Write an expiry entry for each lot that is due; each lot expires exactly once."""
    state = get_context(ctx)
    written = ledger.expire(state.engine(), as_of=parse_time(as_of, "--as-of"), host=state.host, policy=state.policy)
    result = {"ok": True, "expired": [_posted(p) for p in written],
              "points": -sum(p.entry.points for p in written)}
    emit(result, as_json, lambda r: console.print(
        f"{len(r['expired'])} expiry entries, {r['points']} points expired"))


@ledger_app.command("verify")
def verify(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Recompute every invariant from the entries; exit 1 listing each violation."""
    state = get_context(ctx)
    found = ledger.verify(state.engine(), policy=state.policy)
    result = {"ok": not found, "violations": [v.__dict__ for v in found]}

    def render(r: dict[str, Any]) -> None:
        if r["ok"]:
            console.print("ledger verified: every invariant holds")
        for v in r["violations"]:
            console.print(f"VIOLATION {v['check']}: {v['subject']}: {v['detail']}")

    emit(result, as_json, render)
    if found:
        raise typer.Exit(1)
