"""The ``siyu`` command.

Exit codes: 0 success; 1 a user error, reported in one line (``--debug`` shows the traceback);
2 a usage error.  Every command takes ``-h`` and ``--json``; with ``--json`` it prints one JSON
object on stdout (``ok``, the payload under named keys, ``error`` when not ok), usage errors too.

Start-up is kept light (``siyu --help`` imports neither the database, the HTTP client nor the
plugins): a command's module is imported when it runs, and ``tests/hub/cli/test_startup.py``
keeps the heavy modules out of ``import hub`` and ``siyu --help``.
"""

from __future__ import annotations

import json
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
from hub.cli.output import command_name, err_console, report_error, use_config_in_hints
from hub.errors import HubError

if TYPE_CHECKING:
    from hub.plugins import PluginHost

__all__ = ["build_app", "main"]


# name: (module, attribute).  A command's module is imported when the command runs (or its own
# --help is asked for), so ``siyu --help`` starts without the database, the HTTP client or the
# plugins; the listing reads each command's help from its module's source (:func:`short_help`).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("hub.cli.setup", "init"),
    "plugins": ("hub.cli.setup", "plugins"),
    "db": ("hub.cli.setup", "db_app"),
    "config": ("hub.cli.setup", "config_app"),
    "tokens": ("hub.cli.tokens", "tokens_app"),
    "members": ("hub.cli.members", "members_app"),
    "ledger": ("hub.cli.ledger", "ledger_app"),
    "sync": ("hub.cli.sync", "sync"),
    "apply": ("hub.cli.sync", "apply"),
    "fans": ("hub.cli.sync", "fans_app"),
    "serve": ("hub.cli.serve", "serve"),
    "daemon": ("hub.cli.daemon", "daemon"),
    "status": ("hub.cli.status", "status"),
    "outbox": ("hub.cli.outbox", "outbox_app"),
    "sandbox": ("hub.cli.sandbox", "sandbox"),
    "demo": ("hub.cli.demo", "demo"),
    "report": ("hub.cli.report", "report"),
}


def short_help(name: str) -> str:
    """The help of built-in command ``name`` without importing its module: the first paragraph of
    its function's docstring, or the ``help=`` of its ``typer.Typer(...)``."""
    import ast
    from importlib.util import find_spec

    module, attribute = COMMANDS[name]
    spec = find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    with open(spec.origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attribute:
            text = ast.get_docstring(node) or ""
            return " ".join(text.split("\n\n")[0].split())
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == attribute for t in node.targets)
                and isinstance(node.value, ast.Call)):
            for keyword in node.value.keywords:
                if keyword.arg == "help" and isinstance(keyword.value, ast.Constant):
                    return " ".join(str(keyword.value.value).split())
    return ""


def load_command(name: str) -> Any:
    """The click command (or group) of built-in command ``name``, importing its module."""
    module, attribute = COMMANDS[name]
    target = getattr(import_module(module), attribute)
    if isinstance(target, typer.Typer):
        target.rich_markup_mode = None
        target._add_completion = False  # as add_typer() would: the root has no completion options
        command: Any = typer.main.get_group(target)
    else:
        single = typer.Typer(rich_markup_mode=None, add_completion=False)
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
                return typer.core.TyperCommand(name=cmd_name, help=short_help(cmd_name))
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
        rich_markup_mode=None,  # plain help and one-line usage errors, without importing rich
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
        use_config_in_hints(config)
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
    from typer._click.exceptions import ClickException  # the click this typer carries
    try:
        context._host = host
        code = build_app(context)(args=args, prog_name=command_name(), standalone_mode=False)
        return code if isinstance(code, int) else 0
    except ClickException as exc:  # a usage error: exit 2, and with --json an object saying so
        if as_json:
            doc = {"ok": False, "error": {"type": "UsageError", "message": exc.format_message()}}
            sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        exc.show()
        return exc.exit_code
    except typer.Abort:
        err_console.print("Aborted.")
        return 1
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
