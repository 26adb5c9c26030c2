"""``siyu demo``: every installed platform's sandbox, synced into one database, in one command.

It starts each plugin's sandbox on a loopback port, writes ``DIR/siyu.toml`` with one account per
platform pointing at it (and a phone key in ``DIR/siyu.key`` the first time), migrates
``DIR/siyu.db``, syncs every account, stitches the fans into members, posts orders' points and prints the report.
Running it again syncs again: nothing is duplicated.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer

from hub.cli.context import get_context
from hub.cli.output import JsonOption, console, emit, table
from hub.config import load_settings
from hub.errors import NotFound
from hub.people.phones import generate_phone_key
from hub.people.queries import count_people
from hub.platform.sandbox import account_toml, build_sandbox, free_port, serve_asgi
from hub.storage import database as storage
from hub.storage.tokens import clear_tokens
from hub.sync.run import run_sync
from hub.sync.tuning import tuned_for_sync

__all__ = ["demo"]

HEADER = """\
# Written by `siyu demo`: one account per installed platform, each pointing at its sandbox on
# loopback.  Regenerated on every run (the sandboxes' ports change); the database is kept.
[database]
url = "sqlite:///siyu.db"

[security]
phone_key = "file:siyu.key"
"""


def demo(
    ctx: typer.Context,
    directory: Path = typer.Option(Path("demo"), "--dir", help="Where the demo's config and database live."),
    fans: int = typer.Option(300, "--fans", min=1, max=1_000_000, help="Fans in each sandbox."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sandboxes' data."),
    as_json: bool = JsonOption,
) -> None:
    """Sync every installed platform's sandbox into DIR/siyu.db, stitch members, print the report."""
    state = get_context(ctx)
    host = state.host
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "siyu.key"
    if not key.exists():
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate_phone_key() + "\n")
    with ExitStack() as servers:
        tables = []
        for platform in sorted(host.platforms):
            base_url = f"http://127.0.0.1:{free_port()}"
            try:
                spec = build_sandbox(host, platform, seed=seed, fans=fans, base_url=base_url)
            except NotFound:
                continue  # this platform ships no sandbox yet
            servers.enter_context(serve_asgi(spec.app, port=int(base_url.rsplit(":", 1)[1])))
            tables.append(account_toml({**spec.account, "id": "demo"}))
        config = directory / "siyu.toml"
        config.write_text(HEADER + "\n" + "\n".join(tables), encoding="utf-8")
        settings = load_settings(host, config)
        engine = storage.create_engine(settings.database_url)
        try:
            storage.upgrade(engine)
            clear_tokens(engine)  # the sandboxes are new: tokens of the last run mean nothing to them
            with tuned_for_sync():
                run = run_sync(host, settings, engine)
            people = count_people(engine)
        finally:
            engine.dispose()
    report = run.as_dict()
    doc: dict[str, Any] = {"ok": report["ok"], "config": str(config), "streams": report["streams"], **people,
                           "apply": report["apply"]}

    def render(d: dict[str, Any]) -> None:
        table("siyu demo: sync", ["account", "stream", "pages", "inserted", "updated", "unchanged", "retries", "result"], [
            (f"{s['platform']}:{s['account_id']}", s["stream"], s["pages"], s["inserted"], s["updated"], s["unchanged"],
             s["retries"], s["error"] or ("complete" if s["complete"] else "stopped"))
            for s in d["streams"]
        ])
        console.print(f"{d['fans']} fans, {d['members']} members in {directory / 'siyu.db'}.")
        console.print(f"Try: siyu --config {d['config']} fans list --limit 5")

    emit(doc, as_json, render)
    if not doc["ok"]:
        raise typer.Exit(1)
