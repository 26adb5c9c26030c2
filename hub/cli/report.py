"""``siyu report [--html FILE] [--json]``: the figures a brand looks at, as text, JSON and one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hub.cli.context import get_context
from hub.cli.output import JsonOption, console, emit, table
from hub.errors import ConfigError
from hub.report import compute_figures, render_html
from hub.storage import database as storage

__all__ = ["render_report", "report"]


def report(
    ctx: typer.Context,
    html: Path | None = typer.Option(None, "--html", help="Also write the report as one self-contained HTML page here."),
    database: str | None = typer.Option(None, "--db", help="Read this database URL instead of siyu.toml's (no configured accounts then)."),
    as_json: bool = JsonOption,
) -> None:
    """Fans, members, people across platforms, tier funnels, points, cards and sync health."""
    accounts: list[tuple[str, str]] = []
    if database is None:
        settings = get_context(ctx).settings
        database = settings.database_url
        accounts = [(a.platform, a.id) for a in settings.accounts]
    engine = storage.open_database(database)
    try:
        figures = compute_figures(engine, accounts=accounts)
    finally:
        engine.dispose()
    if html is not None:
        try:
            html.write_text(render_html(figures), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {html}: {exc.strerror or exc}") from exc
    doc: dict[str, Any] = {"ok": True, "report": figures}
    if html is not None:
        doc["html"] = str(html)
    emit(doc, as_json, render_report)


def render_report(doc: dict[str, Any]) -> None:
    """The report's figures as tables (``doc``: ``report``, and ``html`` where the page was written)."""
    f = doc["report"]
    table("Fans", ["account", "fans", "following", "stitched"],
          [(f"{a['platform']}:{a['account_id']}", a["fans"], a["following"], a["stitched"]) for a in f["fans"]["by_account"]])
    m = f["members"]
    console.print(f"{m['total']} members ({m['merged']} merged away), {m['balance']} points held; "
                  f"{m['unstitched_fans']} fans not stitched.")
    table("People by platforms recognised on", ["platforms", "members"],
          [(d["platforms"], d["members"]) for d in f["overlap"]["by_degree"]])
    order = [*f["tiers"]["order"], f["tiers"]["no_tier"]]
    labels = {**f["tiers"]["labels"], f["tiers"]["no_tier"]: "未分层"}
    table("Tier funnel", ["platform", *(labels[t] for t in order)],
          [(t["platform"], *(t["counts"][k] for k in order)) for t in f["tiers"]["by_platform"]])
    p = f["points"]
    table("Points", ["flow", "entries", "points"], [(k, p["entries"][k], p["totals"][k]) for k in p["flows"]])
    c = f["cards"]
    console.print(f"Cards: {c['cards']} active, {c['in_step']} in step, {c['behind']} behind, "
                  f"{c['queued']} updates queued, {c['dead']} dead.")
    table("Sync health", ["account", "streams", "last run", "lag s", "callbacks failed", "outbox dead"],
          [(f"{a['platform']}:{a['account_id']}", ", ".join(s["stream"] for s in a["streams"]) or "never",
            a["last_run"] or "", a["lag_seconds"], a["webhooks_failed"], a["outbox_dead"]) for a in f["sync"]["accounts"]])
    console.print(f"Note: {f['sync']['missing']}.")
    if doc.get("html"):
        console.print(f"Wrote {doc['html']}.")
