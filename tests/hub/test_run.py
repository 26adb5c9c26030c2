"""One sync run (hub.sync.run): the entry point of `siyu sync` and `siyu demo`."""

import gc
import json
import sys

import pytest

import hub.cli.sync
from hub.cli import main
from hub.errors import ConfigError, UnknownPlatform
from hub.plugins import load_plugins
from hub.sync.run import SyncRun, check_selection, run_sync
from hub.sync.tuning import YOUNG_COLLECTION_THRESHOLD
from hub.testing import serve_asgi
from siyu_testplatform.sandbox import make_app
from tests.hub.sandboxes import settings_for, toml_for, tp_account

HOST = load_plugins()


def test_a_selection_that_names_nothing_is_refused(database_url):
    settings = settings_for(HOST, database_url, tp_account("http://127.0.0.1:9"))
    with pytest.raises(ConfigError, match="unknown stream 'likes'"):
        check_selection(HOST, settings, stream="likes")
    with pytest.raises(ConfigError, match="no configured account matches"):
        check_selection(HOST, settings, account_id="elsewhere")
    with pytest.raises(UnknownPlatform):
        check_selection(HOST, settings, platform="no-such-platform")
    check_selection(HOST, settings, platform="testplat", account_id="main", stream="fans")


def test_a_run_syncs_then_applies_and_leaves_the_interpreter_as_it_was(engine, database_url):
    state = gc.get_threshold(), sys.getswitchinterval(), gc.get_freeze_count()
    with serve_asgi(make_app(120)) as url:
        settings = settings_for(HOST, database_url, tp_account(url, page_size=50))
        run = run_sync(HOST, settings, engine, stream="fans")
        assert isinstance(run, SyncRun) and run.ok
        [fans] = run.streams
        assert (fans.stream, fans.inserted, fans.pages, fans.complete) == ("fans", 120, 3, True)
        assert run.applied is not None and run.applied.fans_stitched == 120
        doc = run.as_dict()
        assert doc["ok"] and doc["streams"][0]["inserted"] == 120 and doc["apply"]["fans_stitched"] == 120
        again = run_sync(HOST, settings, engine, stream="fans", apply=False)
        assert again.applied is None and again.as_dict()["apply"] is None and again.streams[0].inserted == 0
    assert (gc.get_threshold(), sys.getswitchinterval(), gc.get_freeze_count()) == state


def test_siyu_sync_runs_the_core_entry_point_in_a_tuned_interpreter(tmp_path, database_url, capsys, monkeypatch):
    seen = []

    def spy(*args, **kwargs):
        seen.append((gc.get_threshold()[0], gc.get_freeze_count() > 0))
        return run_sync(*args, **kwargs)

    monkeypatch.setattr(hub.cli.sync, "run_sync", spy)
    before = gc.get_threshold(), sys.getswitchinterval(), gc.get_freeze_count()
    with serve_asgi(make_app(60)) as url:
        config = tmp_path / "siyu.toml"
        config.write_text(toml_for({"database": {"url": database_url}, "security": {"phone_key": "k" * 32},
                                    "accounts": [tp_account(url, page_size=50)]}))
        assert main(["--config", str(config), "sync", "--stream", "fans", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["streams"][0]["inserted"] == 60 and doc["apply"]["fans_stitched"] == 60
    assert seen == [(max(YOUNG_COLLECTION_THRESHOLD, before[0][0]), True)]
    assert (gc.get_threshold(), sys.getswitchinterval(), gc.get_freeze_count()) == before
