"""The hookspecs are the plugin author's reference: keep them documented and tested."""

import ast
import inspect
from pathlib import Path

import pytest

from hub import hookspecs

SPECS = [
    (name, fn)
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "siyu_spec")
]


def test_the_required_hooks_exist():
    names = {name for name, _ in SPECS}
    assert {"register_platforms", "track_event", "identity_keys", "decide_tier", "earn_points",
            "register_commands"} <= names


@pytest.mark.parametrize(("name", "fn"), SPECS, ids=[n for n, _ in SPECS])
def test_every_hookspec_documents_each_argument(name, fn):
    doc = inspect.getdoc(fn)
    assert doc, f"{name} has no docstring"
    for arg in inspect.signature(fn).parameters:
        assert f":param {arg}:" in doc, f"{name} does not document {arg}"


def test_firstresult_is_declared_where_one_answer_is_wanted():
    firsts = {name for name, fn in SPECS if fn.siyu_spec.get("firstresult")}
    assert firsts == {"decide_tier", "earn_points"}


def test_every_hook_has_a_test():
    """Each hook needs a ``test_hook_<name>`` in tests/hub/test_hooks.py."""
    tree = ast.parse((Path(__file__).parent / "test_hooks.py").read_text())
    tested = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    missing = [name for name, _ in SPECS if f"test_hook_{name}" not in tested]
    assert not missing
