"""The Douyin plugin keeps the one plugin shape: which of its modules may import which."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[3] / "plugins" / "douyin"

ALLOWED = {
    "__init__": {"adapter"},
    "adapter": {"auth", "mapping", "webhooks", "wire"},
    "auth": {"wire"},
    "webhooks": {"mapping", "wire"},
    "mapping": {"wire"},
    "wire": set(),
    "sandbox": {"sandbox_data", "wire"},  # an independent reading: never adapter, auth, mapping, webhooks
    "sandbox_data": {"wire"},
}
"""Module → the plugin modules it may import (the arrows run one way, so there is no cycle)."""


def plugin_imports(path: Path) -> tuple[set[str], set[str]]:
    """``(plugin modules, other top-level packages)`` that ``path`` imports."""
    own, other = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "plugins.douyin"
                                     else [])
        for name in names:
            if name.startswith("plugins.douyin."):
                own.add(name.split(".")[2])
            elif name != "plugins.douyin":
                other.add(name.split(".")[0])
    return own, other


def test_every_module_of_the_shape_is_there_and_no_other():
    assert {p.stem for p in PLUGIN.glob("*.py")} == set(ALLOWED)


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_imports_run_one_way(module):
    own, other = plugin_imports(PLUGIN / f"{module}.py")
    assert own <= ALLOWED[module], f"{module} imports {sorted(own - ALLOWED[module])}"
    assert "plugins" not in other  # no other plugin


def test_the_allowed_graph_has_no_cycle():
    seen: dict[str, int] = {}

    def visit(module: str) -> None:
        assert seen.get(module) != 1, f"cycle through {module}"
        if seen.get(module) == 2:
            return
        seen[module] = 1
        for target in ALLOWED[module]:
            visit(target)
        seen[module] = 2

    for module in ALLOWED:
        visit(module)
