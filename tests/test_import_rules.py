"""The dependency rule, checked on the source: ``schemas ← hub ← plugins``.

A plugin (built-in or the example plugins under tests/) imports the plugin SDK, ``hub`` itself,
never one of its sub-modules (``hub.testing`` is allowed in a plugin's tests only), and the hub
never imports a plugin by name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_TREES = [ROOT / "plugins", ROOT / "tests" / "siyu-weibo", ROOT / "tests" / "siyu-testplatform"]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (``from hub import x`` counts as ``hub``), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def plugin_sources() -> list[Path]:
    return sorted(p for tree in PLUGIN_TREES for p in tree.rglob("*.py"))


def test_the_plugin_trees_hold_the_built_ins_and_the_examples():
    names = {p.relative_to(ROOT).parts[:2] for p in plugin_sources()}
    assert {("plugins", "wecom"), ("plugins", "douyin"), ("tests", "siyu-weibo")} <= names


@pytest.mark.parametrize("path", plugin_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_plugin_imports_only_the_sdk_of_the_hub(path):
    offending = [f"{path.relative_to(ROOT)}:{line}: {module}" for line, module in imported_modules(path)
                 if module.startswith("hub.")]
    assert not offending, "import what a plugin needs from `hub` itself:\n" + "\n".join(offending)


def test_the_hub_and_schemas_never_import_a_plugin():
    offending = []
    for tree in (ROOT / "hub", ROOT / "schemas"):
        for path in tree.rglob("*.py"):
            for line, module in imported_modules(path):
                if module.split(".")[0] in ("plugins", "siyu_weibo", "siyu_testplatform"):
                    offending.append(f"{path.relative_to(ROOT)}:{line}: {module}")
                if tree.name == "schemas" and module.split(".")[0] == "hub":
                    offending.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert not offending, "\n".join(offending)


def test_the_rule_catches_a_sub_module_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import hub\nfrom hub import Adapter\nfrom hub.platform.auth import TokenAuth\n"
                      "import hub.errors as e\n")
    assert [m for _, m in imported_modules(sample) if m.startswith("hub.")] == ["hub.platform.auth", "hub.errors"]
