import inspect

import hub
import schemas


def test_hub_all_is_sorted_and_complete():
    public = {name for name in vars(hub) if not name.startswith("_") or name == "__version__"}
    public -= {name for name, value in vars(hub).items() if inspect.ismodule(value)}
    assert hub.__all__ == sorted(hub.__all__)
    assert set(hub.__all__) == public


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
