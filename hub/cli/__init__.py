"""The ``siyu`` command.

Exit codes: 0 success; 1 a user error, reported in one line (``--debug`` shows the traceback);
2 a usage error.  Every command takes ``--json`` and then prints one JSON document on stdout.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import typer

from hub.cli import setup, sync
from hub.cli.daemon import daemon
from hub.cli.demo import demo
from hub.cli.context import Context
from hub.cli.ledger import ledger_app
from hub.cli.members import members_app
from hub.cli.outbox import outbox_app
from hub.cli.output import report_error
from hub.cli.report import report
from hub.cli.sandbox import sandbox
from hub.cli.serve import serve
from hub.cli.status import status
from hub.errors import HubError
from hub.plugins import PluginHost, load_plugins

__all__ = ["build_app", "main"]


def build_app(context: Context) -> typer.Typer:
    """The root application with the built-in commands and those plugins register."""
    app = typer.Typer(
        name="siyu",
        help="siyu-hub: one database, one member and one points ledger across private-domain platforms.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        config: Path | None = typer.Option(None, "--config", "-c", help="siyu.toml to use (else $SIYU_CONFIG, else ./siyu.toml)."),
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    ) -> None:
        context.config_path = config
        context.debug = debug or context.debug
        ctx.obj = context

    app.command("init")(setup.init)
    app.command("plugins")(setup.plugins)
    app.add_typer(setup.db_app, name="db")
    app.add_typer(setup.config_app, name="config")
    app.add_typer(members_app, name="members")
    app.add_typer(ledger_app, name="ledger")
    app.command("sync")(sync.sync)
    app.command("apply")(sync.apply)
    app.add_typer(sync.fans_app, name="fans")
    app.command("serve")(serve)
    app.command("daemon")(daemon)
    app.command("status")(status)
    app.add_typer(outbox_app, name="outbox")
    app.command("sandbox")(sandbox)
    app.command("demo")(demo)
    app.command("report")(report)
    context.host.hook.register_commands(cli=app)
    return app


def main(argv: list[str] | None = None, *, host: PluginHost | None = None) -> int:
    """Run ``siyu`` with ``argv``; returns the exit code.

    :param argv: the arguments (default: ``sys.argv[1:]``).
    :param host: the plugins to use (default: load them from entry points); tests pass their own.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    context = Context(debug="--debug" in args or bool(os.environ.get("SIYU_DEBUG")))
    as_json = "--json" in args
    try:
        context._host = host or load_plugins()
        build_app(context)(args=args, prog_name="siyu")  # standalone: usage errors exit 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except HubError as exc:
        if context.debug:
            traceback.print_exc()
        report_error(exc, as_json)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
