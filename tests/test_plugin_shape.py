"""Every platform plugin keeps the one plugin shape (docs/plugins.md): the same modules, and
imports between them that run one way (so there is no cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = {
    **{f"plugins.{p.name}": p for p in sorted((ROOT / "plugins").iterdir()) if (p / "adapter.py").exists()},
    "siyu_testplatform": ROOT / "tests" / "siyu-testplatform" / "siyu_testplatform",
}

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
"""Module → the plugin modules it may import."""

REQUIRED = set(ALLOWED) - {"sandbox_data"}


def plugin_imports(package: str, path: Path) -> tuple[set[str], set[str]]:
    """``(own modules, other packages)`` that ``path`` imports (``plugins.x`` named whole)."""
    own, other = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == package:
                names += [f"{package}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith(package + "."):
                own.add(name[len(package) + 1:].split(".")[0])
            elif name != package:
                parts = name.split(".")
                other.add(".".join(parts[:2]) if parts[0] == "plugins" else parts[0])
    return own, other


def test_all_five_built_in_platforms_are_plugins_of_the_shape():
    assert {"plugins.wecom", "plugins.douyin", "plugins.alipay", "plugins.kuaishou", "plugins.xiaohongshu"} \
        <= set(PLUGINS)


@pytest.mark.parametrize("package", sorted(PLUGINS))
def test_the_modules_of_the_shape_and_no_other(package):
    modules = {p.stem for p in PLUGINS[package].glob("*.py")}
    assert REQUIRED <= modules <= set(ALLOWED), sorted(modules ^ set(ALLOWED))


@pytest.mark.parametrize("package", sorted(PLUGINS))
def test_imports_run_one_way(package):
    for path in sorted(PLUGINS[package].glob("*.py")):
        own, other = plugin_imports(package, path)
        allowed = ALLOWED[path.stem]
        assert own <= allowed, f"{package}.{path.stem} imports {sorted(own - allowed)}"
        others = {o for o in other if o.startswith("plugins") or o in ("siyu_testplatform", "siyu_weibo")}
        assert not others, f"{package}.{path.stem} imports another plugin: {sorted(others)}"


def test_the_allowed_graph_has_no_cycle():
    state: dict[str, int] = {}

    def visit(module: str) -> None:
        assert state.get(module) != 1, f"cycle through {module}"
        if state.get(module) == 2:
            return
        state[module] = 1
        for target in ALLOWED[module]:
            visit(target)
        state[module] = 2

    for module in ALLOWED:
        visit(module)
