"""``siyu status``: each daemon job's last run, outcome, duration, next due time and lag, and the
outbox's depth and oldest age (:func:`hub.daemon.state.snapshot`, as ``/metrics`` reads it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer

from hub.cli.context import get_context
from hub.cli.output import JsonOption, console, emit, table
from hub.daemon.state import snapshot

__all__ = ["status"]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _when(iso: str | None) -> str:
    return "-" if iso is None else datetime.fromisoformat(iso).strftime("%m-%d %H:%M:%S")


def status(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Show each scheduled job's last run and the outbox backlog."""
    engine = get_context(ctx).engine()
    try:
        doc = snapshot(engine)
    finally:
        engine.dispose()
    doc = {"ok": not any(j["failures"] for j in doc["jobs"]), **doc}

    def render(d: dict[str, Any]) -> None:
        table("Jobs (times in UTC)", ["job", "outcome", "last run", "duration", "next due", "lag", "failures", "error"],
              [(j["name"], j["outcome"] or "-", _when(j["started_at"]),
                "-" if j["duration_seconds"] is None else f"{j['duration_seconds']:.1f}s",
                _when(j["next_due_at"]), _age(j["lag_seconds"]), j["failures"], (j["error"] or "")[:80])
               for j in d["jobs"]])
        o = d["outbox"]
        console.print(f"outbox: {o['depth']} waiting, oldest {_age(o['oldest_age_seconds'])}, {o['dead']} dead")

    emit(doc, as_json, render)
