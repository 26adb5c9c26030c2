"""The ``siyu`` command.

Exit codes: 0 success; 1 a user error, reported in one line (``--debug`` shows the traceback);
2 a usage error.  Every command takes ``--json`` and then prints one JSON document on stdout.
"""

from __future__ import annotations

import os
import sys
import traceback
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import typer.core
import typer.main

from hub.cli.context import Context
from hub.cli.output import err_console, report_error
from hub.errors import HubError

if TYPE_CHECKING:
    from hub.plugins import PluginHost

__all__ = ["build_app", "main"]


# name: (module, attribute, the short help shown by ``siyu --help``).  A command's module is
# imported when the command runs (or its own --help is asked for), so ``siyu --help`` starts
# without the database, the HTTP client or the plugins; a test checks the short helps match.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("hub.cli.setup", "init", "Write a starter siyu.toml and a phone key, then create and migrate the database."),
    "plugins": ("hub.cli.setup", "plugins", "List installed plugins, their platforms, versions, capabilities and hooks."),
    "db": ("hub.cli.setup", "db_app", "Create and migrate the database."),
    "config": ("hub.cli.setup", "config_app", "Check siyu.toml and that the database answers."),
    "tokens": ("hub.cli.tokens", "tokens_app", "List stored access tokens' expiries (never the tokens) and clear them."),
    "members": ("hub.cli.members", "members_app", "Members: one person across platforms."),
    "ledger": ("hub.cli.ledger", "ledger_app", "The points ledger: post, redeem, reverse, expire, verify."),
    "sync": ("hub.cli.sync", "sync", "Sync every account's streams, then stitch members and post points; exit 1 if a stream failed."),
    "apply": ("hub.cli.sync", "apply", "Stitch fans into members and post pending orders' and points events' points."),
    "fans": ("hub.cli.sync", "fans_app", "Read synced fans."),
    "serve": ("hub.cli.serve", "serve", "Receive platform callbacks at /webhooks/PLATFORM/ACCOUNT (and answer /healthz)."),
    "daemon": ("hub.cli.daemon", "daemon", "Sync every account on schedule, apply callbacks within seconds, drain the outbox; until SIGTERM."),
    "status": ("hub.cli.status", "status", "Show each scheduled job's last run and the outbox backlog."),
    "outbox": ("hub.cli.outbox", "outbox_app", "Send queued card updates and messages; list and retry them."),
    "sandbox": ("hub.cli.sandbox", "sandbox", "Run PLATFORM's sandbox until interrupted; print the account settings that point at it."),
    "demo": ("hub.cli.demo", "demo", "Sync every installed platform's sandbox into DIR/siyu.db, stitch members, print the report."),
    "report": ("hub.cli.report", "report", "Fans, members, people across platforms, tier funnels, points, cards and sync health."),
}


def load_command(name: str) -> Any:
    """The click command (or group) of built-in command ``name``, importing its module."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command: Any = typer.main.get_group(target)
    else:
        single = typer.Typer()
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(typer.core.TyperGroup):
    """The root group: built-in commands load on use; plugins load when a name is not built in."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(n for n in super().list_commands(ctx) if n not in COMMANDS)]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True  # the listing needs each command's short help only
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in COMMANDS:
            if self._listing:
                return typer.core.TyperCommand(name=cmd_name, help=COMMANDS[cmd_name][2])
            self.add_command(load_command(cmd_name), cmd_name)
            return self.commands[cmd_name]
        context = ctx.find_root().obj if ctx is not None else None
        if isinstance(context, Context) and context._host is None and not self._listing:
            self._add_plugin_commands(context)
            return self.commands.get(cmd_name)
        return None

    def _add_plugin_commands(self, context: Context) -> None:
        extra = typer.Typer()
        context.host.hook.register_commands(cli=extra)
        if extra.registered_commands or extra.registered_groups:
            for name, command in typer.main.get_group(extra).commands.items():
                self.commands.setdefault(name, command)


def build_app(context: Context) -> typer.Typer:
    """The root application with the built-in commands and those plugins register.

    Plugins' commands are registered at once when ``context`` already has its plugins (tests pass
    them); otherwise the plugins load when a command name is not a built-in one, and ``siyu --help``
    lists the built-in commands (``siyu plugins`` shows which plugins add commands).
    """
    app = typer.Typer(
        name="siyu",
        help="siyu-hub: one database, one member and one points ledger across private-domain platforms.",
        epilog="Plugins may add commands: `siyu plugins` lists the hooks each one implements.",
        cls=LazyGroup,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"], "obj": context},
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

    if context._host is not None:
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
        context._host = host
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
    except Exception as exc:  # a bug, not bad input: one line, the traceback with --debug
        if context.debug:
            raise
        err_console.print(f"[bold red]Error:[/] unexpected {type(exc).__name__}; run again with --debug "
                          "for the traceback", markup=True)
        return 1
    return 0
