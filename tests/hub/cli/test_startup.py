"""``import hub`` and ``siyu --help`` start without the heavy modules; built-in commands load on use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hub.cli import COMMANDS, load_command, short_help

# the heaviest modules `python -X importtime -c "import hub.cli"` showed before commands loaded on use
HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "pydantic", "pydantic_core", "httpx", "httpcore", "starlette",
         "uvicorn", "cryptography", "jinja2", "procrastinate", "prometheus_client", "rich", "tenacity",
         "pluggy", "schemas", "plugins", "hub.plugins", "hub.config", "hub.storage", "hub.adapter")


def loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)}


def test_import_hub_loads_nothing_heavy():
    assert heavy(loaded_after("import hub")) == set()


def test_siyu_help_loads_nothing_heavy():
    code = ("import contextlib, io\nfrom hub.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    assert main(['--help']) == 0\n"
            "assert 'tokens' in out.getvalue() and 'fans' in out.getvalue()\n")
    assert heavy(loaded_after(code)) == set()
    assert heavy(loaded_after(code.replace("'--help'", "'-h'"))) == set()


def test_a_plugin_still_gets_the_sdk_from_import_hub():
    modules = loaded_after("import hub\nassert hub.Adapter.__name__ == 'Adapter'\nfrom hub import hookimpl, NotFound")
    assert "hub.adapter" in modules


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_lazy_command_loads_and_its_listed_help_is_its_own(name):
    command = load_command(name)
    assert command.name == name
    first_line = (command.help or "").strip().split("\n\n")[0].replace("\n", " ")
    assert " ".join(first_line.split()) == short_help(name) != ""


def test_every_command_module_is_listed():
    from pathlib import Path

    import hub.cli

    modules = {p.stem for p in Path(hub.cli.__file__).parent.glob("*.py")} - {"__init__", "__main__", "context",
                                                                             "output"}
    assert modules == {m.rsplit(".", 1)[1] for m, _ in COMMANDS.values()}
