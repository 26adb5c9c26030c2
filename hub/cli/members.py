"""``siyu members``: show, find, merge, split, undo and stitch."""

from __future__ import annotations

import getpass
from typing import Any

import typer

from hub.cli.context import get_context
from hub.cli.ledger import ID_MAX
from hub.cli.output import JsonOption, console, emit, hint, human, table
from hub.errors import InvalidPosting, NotFound
from hub.people import identity, members, queries

__all__ = ["members_app"]

members_app = typer.Typer(help="Members: one person across platforms.", no_args_is_help=True)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # pragma: no cover - no user name in a bare container
        return "cli"


def _change(c: members.Change) -> dict[str, Any]:
    return {"ok": True, **c.__dict__}


@members_app.command("show")
def show(ctx: typer.Context, member: int = typer.Argument(..., min=1, max=ID_MAX, help="Member id."),
         as_json: bool = JsonOption) -> None:
    """Show a member: balance, level, fans, cards, members merged into it and its audit trail."""
    engine = get_context(ctx).engine()
    try:
        result = {"ok": True, **queries.describe_member(engine, member)}
    finally:
        engine.dispose()

    def render(r: dict[str, Any]) -> None:
        console.print(f"member {r['member_id']}: balance {r['balance']}, level {r['level']}, lifetime "
                      f"{r['lifetime_points']}" + (f"; merged from {human(r['merged_from'])}" if r["merged_from"] else ""))
        table("Fans", ["fan", "platform", "account", "uid", "tier"],
              [(f["fan_id"], f["platform"], f["account_id"], f["platform_uid"], f["tier"]) for f in r["fans"]])
        table("Changes", ["id", "action", "from", "to", "points", "actor", "reason"],
              [(c["id"], c["action"], c["member_id"], c["other_member_id"], c["points"], c["actor"], c["reason"])
               for c in r["changes"]])

    emit(result, as_json, render)


@members_app.command("find")
def find(
    ctx: typer.Context,
    phone: str | None = typer.Option(None, "--phone", help="A mobile number (matched by its keyed hash)."),
    platform: str | None = typer.Option(None, "--platform", help="Platform name, with --uid."),
    uid: str | None = typer.Option(None, "--uid", help="The fan's id on that platform."),
    account: str | None = typer.Option(None, "--account", help="Limit to one account of the platform."),
    as_json: bool = JsonOption,
) -> None:
    """Find the members of fans with a phone number, or with a platform user id."""
    state = get_context(ctx)
    if (phone is None) == (platform is None or uid is None):
        raise InvalidPosting("give either --phone, or --platform and --uid")
    engine = state.engine()
    try:
        if phone is not None:
            try:
                found = queries.fans_with_phone(engine, state.settings.phones, phone)
            except ValueError as exc:
                raise InvalidPosting(f"--phone: {exc}") from None
        else:
            found = queries.fans_with_uid(engine, platform, uid, account_id=account)
    finally:
        engine.dispose()
    if not found:
        raise NotFound("no fan matches")
    result = {"ok": True, "members": sorted({f["member_id"] for f in found if f["member_id"]}), "fans": found}
    emit(result, as_json, lambda r: table("Matching fans", ["member", "fan", "platform", "account", "uid"],
                                          [(f["member_id"], f["fan_id"], f["platform"], f["account_id"],
                                            f["platform_uid"]) for f in r["fans"]]))


@members_app.command("merge")
def merge(
    ctx: typer.Context,
    survivor: int = typer.Argument(..., min=1, max=ID_MAX, help="The member that stays."),
    merged: int = typer.Argument(..., min=1, max=ID_MAX, help="The member merged into it."),
    reason: str = typer.Option(..., "--reason", help="Why, for the audit."),
    as_json: bool = JsonOption,
) -> None:
    """Merge member B into member A, moving its fans, points and cards (audited, undoable)."""
    state = get_context(ctx)
    c = members.merge(state.engine(), survivor, merged, reason=reason, actor=_actor(), host=state.host,
                      policy=state.policy)
    emit(_change(c), as_json, lambda r: console.print(hint(
        f"change {r['change_id']}: member {merged} merged into {survivor}, {r['points']} points and "
        f"{len(r['fan_ids'])} fan(s) moved; undo with `siyu members undo {r['change_id']} --reason \"...\"`")))


@members_app.command("split")
def split(
    ctx: typer.Context,
    member: int = typer.Argument(..., min=1, max=ID_MAX, help="The member to split."),
    fan: list[str] = typer.Option(..., "--fan", help="PLATFORM:ACCOUNT:UID of a fan to move out (repeatable)."),
    reason: str = typer.Option(..., "--reason", help="Why, for the audit."),
    as_json: bool = JsonOption,
) -> None:
    """Move fans (and the points they earned) out of a member into a new member."""
    refs = [members.FanRef.parse(f) for f in fan]
    state = get_context(ctx)
    c = members.split(state.engine(), member, refs, reason=reason, actor=_actor(), policy=state.policy)
    emit(_change(c), as_json, lambda r: console.print(
        f"change {r['change_id']}: {len(r['fan_ids'])} fan(s) and {r['points']} points moved from member "
        f"{member} to new member {r['other_member_id']}; undo with "
        + hint(f"`siyu members undo {r['change_id']} --reason \"...\"`")))


@members_app.command("undo")
def undo(
    ctx: typer.Context,
    change: int = typer.Argument(..., min=1, max=ID_MAX, help="The merge or split to undo (see `members show`)."),
    reason: str = typer.Option(..., "--reason", help="Why, for the audit."),
    as_json: bool = JsonOption,
) -> None:
    """Undo a merge or a split, once."""
    state = get_context(ctx)
    c = members.undo(state.engine(), change, reason=reason, actor=_actor(), policy=state.policy)
    emit(_change(c), as_json, lambda r: console.print(
        f"change {r['change_id']} undid change {change}: {r['points']} points moved to member {r['other_member_id']}"))


@members_app.command("stitch")
def stitch(
    ctx: typer.Context,
    limit: int | None = typer.Option(None, "--limit", min=2, max=ID_MAX,
                                     help="Block a key value shared by more fans than this "
                                          "(default: [ledger] identity_key_limit, 20)."),
    as_json: bool = JsonOption,
) -> None:
    """Give every fan without a member one, joining fans that share identity keys."""
    state = get_context(ctx)
    engine = state.engine()
    report = identity.stitch_all(engine, host=state.host, limit=limit or state.settings.ledger.identity_key_limit)
    emit({"ok": True, **report.__dict__}, as_json, lambda r: console.print(
        f"{r['fans']} fan(s) stitched, {r['members_created']} member(s) created, {r['merges']} merge(s); "
        f"{len(r['blocked'])} key value(s) blocked" + "".join(
            f"\n  blocked {b['kind']} key shared by {b['fan_count']} fans" for b in r["blocked"])))


@members_app.command("tiers")
def tiers(
    ctx: typer.Context,
    member: int | None = typer.Option(None, "--member", min=1, max=ID_MAX, help="Only this member's fans."),
    as_json: bool = JsonOption,
) -> None:
    """Recompute fan tiers (prospect → passerby → fond → devoted) through ``decide_tier``."""
    state = get_context(ctx)
    changed = members.refresh_tiers(state.engine(), host=state.host, member_id=member)
    emit({"ok": True, "changed": changed}, as_json, lambda r: console.print(f"{r['changed']} fan tier(s) changed"))
