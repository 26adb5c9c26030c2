import inspect

import hub
import schemas


def test_hub_all_is_sorted_and_complete():
    # hub exports lazily (PEP 562): dir() lists what getattr resolves, loaded or not
    values = {name: getattr(hub, name) for name in dir(hub)}
    public = {name for name in values if not name.startswith("_") or name == "__version__"}
    public -= {name for name, value in values.items() if inspect.ismodule(value)}
    assert hub.__all__ == sorted(hub.__all__)
    assert set(hub.__all__) == public
    assert all(values[name] is not None for name in hub.__all__)


def test_hub_exports_resolve_to_their_definitions():
    import hub.adapter
    import hub.errors

    assert hub.Adapter is hub.adapter.Adapter
    assert hub.NotFound is hub.errors.NotFound
    assert hub.Capability is schemas.Capability
    from hub import Adapter, hookimpl  # noqa: F401 - the way plugins import
    assert hookimpl is hub.hookimpl and hookimpl.project_name == "siyu"
    try:
        hub.NoSuchName
    except AttributeError as exc:
        assert "NoSuchName" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an unknown name must raise AttributeError")


def test_schemas_all_is_sorted_and_complete():
    public = {name for name, value in vars(schemas).items() if not name.startswith("_") and not inspect.ismodule(value)}
    assert schemas.__all__ == sorted(schemas.__all__)
    assert set(schemas.__all__) == public


def test_schemas_import_nothing_of_hub_or_plugins():
    import subprocess
    import sys

    code = "import sys, schemas, schemas.tables; print(sorted(m for m in sys.modules if m.split('.')[0] in ('hub', 'plugins')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
