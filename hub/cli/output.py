"""How commands speak: one JSON object on stdout with ``--json``, tables otherwise.

Every ``--json`` document has one shape: ``ok``, the payload under named keys (``"fans": […]``,
``"fan": {…}``) and, when not ok, ``error``.  Tables go to a terminal as rich tables; to a pipe or
a file they are plain columns at full width, never cut.  Values are shown as a person reads them
(``门店, 会员`` and ``-``, never ``['门店', '会员']`` or ``None``).  Rich is imported when a table
is drawn, not when the command starts.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from hub.errors import ConfigError, HubError

__all__ = ["JsonOption", "command_name", "console", "emit", "err_console", "human", "report_error", "table"]

JsonOption = typer.Option(False, "--json", help="Print one JSON object on stdout.")


class _LazyConsole:
    """A :class:`rich.console.Console` made on first use (rich costs ~50 ms to import)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


console: Any = _LazyConsole(highlight=False, soft_wrap=True, markup=False)
err_console: Any = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)


def command_name() -> str:
    """How to write ``siyu`` in a hint so that it works as printed: ``siyu`` when that is on the
    PATH and is this program, else the path it was run by (``.venv/bin/siyu``)."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "siyu"
    if Path(argv0).name != "siyu":  # run as ``python -m hub.cli`` or inside a test
        found = shutil.which("siyu")
        here = Path(sys.executable).parent / "siyu"
        if found is None and here.exists():
            return _short(here)
        return "siyu" if found else f"{_short(Path(sys.executable))} -m hub.cli"
    on_path = shutil.which("siyu")
    if on_path and Path(on_path).resolve() == Path(argv0).resolve():
        return "siyu"
    return _short(Path(argv0) if os.sep in argv0 else Path(shutil.which(argv0) or argv0))


def _short(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


_config_arg: list[str] = []


def use_config_in_hints(path: Path | None) -> None:
    """Hints name ``--config PATH`` when the command was given one, so that they work as printed."""
    _config_arg[:] = [] if path is None else ["--config", shlex.quote(str(path))]


def hint(text: str) -> str:
    """``text`` with every ```siyu …``` written as the command was run: :func:`command_name` and
    the ``--config`` it was given (a hint that works as printed)."""
    prefix = " ".join([command_name(), *_config_arg])
    return text if prefix == "siyu" else text.replace("`siyu ", f"`{prefix} ")


def human(value: Any) -> str:
    """One value as a person reads it: lists joined by commas, no ``None``, times without
    microseconds, mappings as ``key=value``."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={human(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(human(v) for v in items) or "-"
    return str(value)


def _jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def emit(data: Mapping[str, Any], as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` (an object with ``ok`` and the payload under named keys) as JSON, or hand
    it to ``render`` for people."""
    if not isinstance(data, Mapping) or "ok" not in data:
        raise TypeError("emit() takes an object with 'ok' and the payload under named keys")
    if as_json:
        sys.stdout.write(json.dumps(_jsonable(data), ensure_ascii=False, indent=2) + "\n")
    else:
        render(data)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table: rich on a terminal; plain columns at full width to a pipe or a file."""
    cells = [[human(cell) for cell in row] for row in rows]
    if not sys.stdout.isatty():
        _plain_table(title, columns, cells)
        return
    from rich.table import Table

    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in cells:
        grid.add_row(*row)
    console.print(grid)


def _plain_table(title: str | None, columns: Sequence[str], rows: list[list[str]]) -> None:
    from unicodedata import east_asian_width

    def width(text: str) -> int:
        return sum(2 if east_asian_width(ch) in "WF" else 1 for ch in text)

    widths = [max([width(c), *(width(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    lines = [title] if title else []
    for row in [list(columns), *rows]:
        padded = [cell + " " * (w - width(cell)) for cell, w in zip(row, widths, strict=False)]
        lines.append("  ".join(padded).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")


def report_error(exc: HubError, as_json: bool) -> None:
    """One line on stderr; with ``--json`` also a JSON object on stdout."""
    message = hint(str(exc))
    if as_json:
        doc: dict[str, Any] = {"ok": False, "error": {"type": type(exc).__name__, "message": message}}
        if isinstance(exc, ConfigError) and exc.problems:
            doc["error"]["problems"] = [{"key": k, "problem": p} for k, p in exc.problems]
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    err_console.print(f"[bold red]Error:[/] {message}", markup=True)
