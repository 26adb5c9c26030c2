"""``siyu config check`` refuses malformed keys and numbers out of range, naming the key, not its value."""

from __future__ import annotations

import json

import pytest

from hub.cli import main

WECOM = ('[[accounts]]\nplatform = "wecom"\nid = "hq"\ncorp_id = "wwCORP"\nsecret = "s"\ntoken = "tok"\n'
         'encoding_aes_key = "{key}"\n')


def check(tmp_path, capsys, monkeypatch, text: str) -> tuple[int, dict, str]:
    monkeypatch.setenv("SIYU_PHONE_KEY", "x" * 32)
    config = tmp_path / "siyu.toml"
    config.write_text('[database]\nurl = "sqlite:///siyu.db"\n' + text)
    code = main(["--config", str(config), "config", "check", "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


@pytest.mark.parametrize("key", ["A" * 41, "A" * 44, "A" * 42 + "!"])
def test_a_malformed_encoding_aes_key_fails_config_check(tmp_path, capsys, monkeypatch, key):
    code, doc, err = check(tmp_path, capsys, monkeypatch, WECOM.format(key=key))
    assert code == 1
    assert {p["key"] for p in doc["error"]["problems"]} == {"accounts[0].encoding_aes_key"}
    assert key not in json.dumps(doc) and key not in err


def test_a_well_formed_encoding_aes_key_passes(tmp_path, capsys, monkeypatch):
    code, doc, _ = check(tmp_path, capsys, monkeypatch, WECOM.format(key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"))
    assert code == 0 and doc["ok"]


@pytest.mark.parametrize("section, line, key", [
    ("ledger", "earned_points_expire_days = 10000000", "ledger.earned_points_expire_days"),
    ("ledger", "points_per_yuan = 100000000000", "ledger.points_per_yuan"),
    ("ledger", "level_thresholds = [1000, 10000000000000]", "ledger.level_thresholds"),
    ("daemon", "sync_interval_seconds = 1e300", "daemon.sync_interval_seconds"),
    ("daemon", "outbox_interval_seconds = inf", "daemon.outbox_interval_seconds"),
    ("outbox", "give_up_after_hours = 1e20", "outbox.give_up_after_hours"),
])
def test_numbers_out_of_range_fail_config_check(tmp_path, capsys, monkeypatch, section, line, key):
    code, doc, _ = check(tmp_path, capsys, monkeypatch, f"[{section}]\n{line}\n")
    assert code == 1
    assert {p["key"] for p in doc["error"]["problems"]} == {key}
