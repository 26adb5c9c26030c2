"""How commands speak: one JSON document on stdout with ``--json``, rich tables otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import typer
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.table import Table

from hub.errors import ConfigError, HubError

__all__ = ["JsonOption", "console", "emit", "err_console", "report_error", "table"]

console = Console(highlight=False, soft_wrap=True, markup=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOption = typer.Option(False, "--json", help="Print one JSON document on stdout.")


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON, or hand it to ``render`` for people."""
    if as_json:
        sys.stdout.write(json.dumps(to_jsonable_python(data), ensure_ascii=False, indent=2) + "\n")
    else:
        render(data)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(grid)


def report_error(exc: HubError, as_json: bool) -> None:
    """One line on stderr; with ``--json`` also a JSON document on stdout."""
    if as_json:
        doc: dict[str, Any] = {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}}
        if isinstance(exc, ConfigError) and exc.problems:
            doc["error"]["problems"] = [{"key": k, "problem": p} for k, p in exc.problems]
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    err_console.print(f"[bold red]Error:[/] {exc}", markup=True)
