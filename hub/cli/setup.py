"""Setting up and inspecting a deployment: ``init``, ``db``, ``config`` and ``plugins``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from hub.storage import database as storage
from hub.cli.context import get_context
from hub.cli.output import JsonOption, console, emit, hint, table
from hub.config import DEFAULT_DATABASE_URL, find_config
from hub.errors import ConfigError, HubError
from hub.people.phones import generate_phone_key

__all__ = ["config_app", "db_app", "init", "plugins"]

db_app = typer.Typer(help="Create and migrate the database.", no_args_is_help=True)
config_app = typer.Typer(help="Check siyu.toml and that the database answers.", no_args_is_help=True)

STARTER = """\
# siyu.toml — the configuration of one siyu-hub deployment.
# A string written "env:NAME" is read from environment variable NAME; "file:PATH" from a file
# (relative to this file's folder).  Check this file with `siyu config check`.

[database]
# SQLite (a file next to this one) is the embedded default.  For PostgreSQL:
#   url = "postgresql+psycopg://user@127.0.0.1:5432/siyu"
url = "{database_url}"

[security]
# The key of the phone-number hashes.  Keep it secret and never change it: the hashes are how
# one person is recognised across platforms.  `siyu init` wrote it to {key_file} (mode 600).
phone_key = "file:{key_file}"
# The Fernet key that encrypts what the database keeps of secrets at rest: the platforms' access
# and refresh tokens, and phone numbers (without it only their hashes are kept, and tokens are in
# clear).  `siyu init` wrote it to {encryption_key_file} (mode 600); back it up with the database.
phone_encryption_key = "file:{encryption_key_file}"

# One [[accounts]] table per brand account on a platform (`siyu plugins` lists the platforms).
# [[accounts]]
# platform = "wecom"
# id = "hq"                      # your name for the account, unique per platform
# name = "Brand HQ"
# base_url = "http://127.0.0.1:8101"   # optional: point at a sandbox instead of production
# ...the platform's own keys, e.g. secret = "env:WECOM_SECRET"
"""


def init(
    ctx: typer.Context,
    database_url: str = typer.Option(DEFAULT_DATABASE_URL, "--database-url", help="Where the database lives."),
    as_json: bool = JsonOption,
) -> None:
    """Write a starter siyu.toml and a phone key, then create and migrate the database."""
    state = get_context(ctx)
    path = find_config(state.config_path)
    key_path = path.parent / "siyu.key"
    encryption_key_path = path.parent / "siyu.encryption.key"
    for existing in (path, key_path, encryption_key_path):
        if existing.exists():
            raise ConfigError(f"{existing} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    url = database_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = f"sqlite:///{(path.parent / url.removeprefix('sqlite:///')).resolve()}"
    created_file = _sqlite_file(url)
    existed = created_file.exists() if created_file else True
    engine = storage.create_engine(url)
    try:
        _, revision = storage.upgrade(engine)
    except HubError:
        if created_file and not existed:
            for leftover in (created_file, *(Path(f"{created_file}{s}") for s in ("-wal", "-shm"))):
                leftover.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()
    from cryptography.fernet import Fernet

    for secret_path, secret in ((key_path, generate_phone_key()), (encryption_key_path, Fernet.generate_key().decode())):
        fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it will hold secrets
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(STARTER.format(database_url=database_url, key_file=key_path.name,
                                encryption_key_file=encryption_key_path.name))
    result = {"ok": True, "config": str(path), "phone_key_file": str(key_path),
              "encryption_key_file": str(encryption_key_path),
              "database": storage.safe_url(url), "revision": revision}
    emit(result, as_json, lambda r: console.print(hint(
        f"Wrote {r['config']} and {r['phone_key_file']}; database {r['database']} is at revision "
        f"{r['revision']}.\nNext: add [[accounts]] to {r['config']}, then `siyu config check`."
    )))


def _sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None


def _engine(url: str, create_dirs: bool) -> Any:
    """An engine for ``url``; a SQLite file's missing folder is refused unless ``create_dirs``."""
    try:
        return storage.create_engine(url, create_dirs=create_dirs)
    except HubError as exc:
        if "does not exist" in str(exc):
            raise ConfigError(hint(f"{exc}; check [database] url, or pass `siyu db upgrade --create-dirs`")) from None
        raise


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    create_dirs: bool = typer.Option(False, "--create-dirs",
                                     help="Create a SQLite file's missing folders (else a missing folder is refused)."),
    as_json: bool = JsonOption,
) -> None:
    """Apply pending migrations to the configured database."""
    url = get_context(ctx).settings.database_url
    engine = _engine(url, create_dirs)
    try:
        before, after = storage.upgrade(engine)
    finally:
        engine.dispose()
    result = {"ok": True, "database": storage.safe_url(url), "from": before, "to": after}
    emit(result, as_json, lambda r: console.print(
        f"{r['database']}: " + ("already at" if r["from"] == r["to"] else f"{r['from'] or 'empty'} →")
        + f" revision {r['to']}"
    ))


@db_app.command("status")
def db_status(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Show the database's schema revision and whether it is current."""
    url = get_context(ctx).settings.database_url
    engine = _engine(url, False)
    try:
        current = storage.current_revision(engine)
    finally:
        engine.dispose()
    head = storage.head_revision()
    result = {"ok": True, "database": storage.safe_url(url), "current": current, "head": head,
              "up_to_date": current == head}
    emit(result, as_json, lambda r: console.print(hint(
        f"{r['database']}: revision {r['current'] or '(none)'}, latest {r['head']}"
        + ("" if r["up_to_date"] else " — run `siyu db upgrade`")
    )))


@config_app.command("check")
def config_check(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Validate siyu.toml against the installed plugins, naming every bad key; check the database answers."""
    settings = get_context(ctx).settings
    database = _database_check(settings.database_url)
    result = {
        "ok": database["reachable"],
        "config": str(settings.path),
        "database": storage.safe_url(settings.database_url),
        "database_check": database,
        "accounts": [
            {"platform": a.platform, "id": a.id, "name": a.name, "base_url": a.base_url}
            for a in settings.accounts
        ],
    }

    def render(r: dict[str, Any]) -> None:
        console.print(f"{r['config']} is valid; database {r['database']}: {r['database_check']['message']}")
        table(None, ["platform", "id", "name", "base_url"],
              [(a["platform"], a["id"], a["name"], a["base_url"]) for a in r["accounts"]])

    emit(result, as_json, render)
    if not result["ok"]:
        raise typer.Exit(1)


def _database_check(url: str) -> dict[str, Any]:
    """Whether the database answers and is at the latest revision, without creating anything."""
    found: dict[str, Any] = {"reachable": False, "revision": None, "head": storage.head_revision(),
                             "up_to_date": False}
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.exists():  # reachable when its folder is there
        found["reachable"] = sqlite_file.parent.is_dir()
        found["message"] = hint(f"no database file at {sqlite_file} yet: run `siyu db upgrade`" if found["reachable"]
                                else f"folder {sqlite_file.parent} does not exist: check [database] url, "
                                     "or run `siyu db upgrade --create-dirs`")
        return found
    try:
        engine = storage.create_engine(url, create_dirs=False)
        try:
            found["revision"] = storage.current_revision(engine)
        finally:
            engine.dispose()
    except HubError as exc:
        found["message"] = f"not reachable: {exc}"
        return found
    found["reachable"] = True
    found["up_to_date"] = found["revision"] == found["head"]
    found["message"] = (f"reachable, at revision {found['revision']}" if found["up_to_date"] else
                        hint(f"reachable, at revision {found['revision'] or '(none)'}, latest {found['head']}: "
                             "run `siyu db upgrade`"))
    return found


def plugins(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List installed plugins, their platforms, versions, capabilities and hooks."""
    host = get_context(ctx).host
    rows: list[dict[str, Any]] = []
    with_platform = set()
    for platform, info in sorted(host.platforms.items()):
        with_platform.add(info.plugin)
        rows.append({
            "platform": platform,
            "plugin": info.distribution or info.plugin,
            "entry_point": info.plugin,
            "version": info.version,
            "capabilities": sorted(str(c) for c in info.adapter.capabilities),
            "hooks": host.plugin_hooks(info.plugin),
        })
    for name, dist in sorted(host.distributions.items()):
        if name not in with_platform:
            rows.append({"platform": None, "plugin": dist.metadata["name"], "entry_point": name,
                         "version": dist.version, "capabilities": [], "hooks": host.plugin_hooks(name)})

    def render(doc: dict[str, Any]) -> None:
        table("Installed plugins", ["platform", "plugin", "version", "capabilities", "hooks"], [
            (r["platform"] or "-", r["plugin"], r["version"],
             ", ".join(r["capabilities"]) or "(none yet)", ", ".join(r["hooks"])) for r in doc["plugins"]
        ])

    emit({"ok": True, "plugins": rows}, as_json, render)
