"""``siyu ledger`` and ``siyu members`` end to end, in process, on both backends, with --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hub.storage import database as storage
from hub.cli import main

from .helpers_members import PHONES, add_fan


@pytest.fixture
def siyu(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "siyu.toml").write_text(
        f'[database]\nurl = "{database_url}"\n[security]\nphone_key = "test-phone-key-0123456789abcdef"\n')
    monkeypatch.setenv("SIYU_CONFIG", str(tmp_path / "siyu.toml"))

    def run(*args: str, code: int = 0) -> Any:
        capsys.readouterr()
        assert main([*args, "--json"]) == code
        out, err = capsys.readouterr()
        doc = json.loads(out)
        return doc, err

    return run


def engine_of(database_url: str) -> sa.Engine:
    return storage.open_database(database_url)


def test_ledger_commands(siyu, database_url: str) -> None:
    engine = engine_of(database_url)
    add_fan(engine, "douyin", "d1", phone="13800138000")
    add_fan(engine, "wecom", "w1", phone="13800138000")
    add_fan(engine, "alipay", "a1")
    doc, _ = siyu("members", "stitch")
    assert (doc["fans"], doc["members_created"]) == (3, 2)
    doc, err = siyu("members", "find", "--phone", "138 0013 8000")
    assert len(doc["members"]) == 1 and len(doc["fans"]) == 2
    m = doc["members"][0]
    doc, _ = siyu("ledger", "post", "--member", str(m), "--points", "300", "--reason", "welcome", "--key", "w-1",
                  "--expires-at", "2030-01-01T00:00:00+08:00")
    assert doc["created"] and doc["balance"] == 300
    entry = doc["entry"]["entry_id"]
    doc, _ = siyu("ledger", "post", "--member", str(m), "--points", "300", "--reason", "welcome", "--key", "w-1",
                  "--expires-at", "2030-01-01T00:00:00+08:00")
    assert not doc["created"] and doc["entry"]["entry_id"] == entry
    doc, err = siyu("ledger", "post", "--member", str(m), "--points", "301", "--reason", "welcome", "--key", "w-1",
                    code=1)
    assert doc["error"]["type"] == "IdempotencyConflict" and "w-1" in err
    doc, _ = siyu("ledger", "redeem", "--member", str(m), "--points", "301", "--key", "r-1", code=1)
    assert doc["error"]["type"] == "Overdraw"
    doc, _ = siyu("ledger", "redeem", "--member", str(m), "--points", "100", "--key", "r-1")
    assert doc["balance"] == 200
    doc, _ = siyu("ledger", "reverse", str(doc["entry"]["entry_id"]), "--key", "undo-r-1")
    assert doc["balance"] == 300
    doc, _ = siyu("ledger", "post", "--member", str(m), "--points", "0", "--reason", "x", "--key", "z", code=2)
    assert doc["ok"] is False and doc["error"]["type"] == "UsageError" and "--points" in doc["error"]["message"]
    doc, _ = siyu("ledger", "post", "--member", "999", "--points", "5", "--reason", "x", "--key", "z", code=1)
    assert doc["error"]["type"] == "NotFound"
    doc, _ = siyu("ledger", "expire", "--as-of", "2030-01-01T00:00:00+08:00")
    assert doc["points"] == 300
    doc, _ = siyu("ledger", "expire", "--as-of", "2030-01-02T00:00:00+08:00")
    assert doc["expired"] == []
    doc, _ = siyu("ledger", "balance", str(m))
    assert (doc["balance"], doc["lifetime_points"]) == (0, 300)
    doc, _ = siyu("ledger", "history", str(m))
    assert [e["kind"] for e in doc["entries"]] == ["earn", "redeem", "reversal", "expiry", "expiry"]
    doc, _ = siyu("ledger", "verify")
    assert doc == {"ok": True, "violations": []}
    doc, _ = siyu("ledger", "expire", "--as-of", "2030-01-01", code=1)
    assert "zone" in doc["error"]["message"]


def test_members_commands(siyu, database_url: str) -> None:
    engine = engine_of(database_url)
    a = add_fan(engine, "douyin", "d1")
    b = add_fan(engine, "kuaishou", "k1")
    siyu("members", "stitch")
    doc, _ = siyu("members", "find", "--platform", "douyin", "--uid", "d1")
    ma = doc["members"][0]
    doc, _ = siyu("members", "find", "--platform", "kuaishou", "--uid", "k1")
    mb = doc["members"][0]
    siyu("ledger", "post", "--member", str(mb), "--points", "40", "--reason", "r", "--key", "k")
    doc, _ = siyu("members", "merge", str(ma), str(mb), "--reason", "same phone on paper form")
    assert doc["points"] == 40 and doc["fan_ids"] == [b]
    change = doc["change_id"]
    doc, _ = siyu("members", "merge", str(ma), str(ma), "--reason", "x", code=1)
    assert doc["error"]["type"] == "MergeRefused"
    doc, _ = siyu("members", "merge", str(mb), str(ma), "--reason", "x", code=1)
    assert doc["error"]["type"] == "MergeRefused"
    doc, _ = siyu("members", "show", str(mb))
    assert doc["member_id"] == ma and doc["balance"] == 40 and doc["merged_from"] == [mb]
    assert {f["fan_id"] for f in doc["fans"]} == {a, b}
    assert doc["changes"][0]["reason"] == "same phone on paper form" and doc["changes"][0]["actor"].startswith("cli")
    doc, _ = siyu("members", "split", str(ma), "--fan", "kuaishou:hq:k1", "--reason", "different people")
    assert doc["points"] == 0  # the points were posted without a fan: they stay
    doc, _ = siyu("members", "split", str(ma), "--fan", "kuaishou:hq:k1", "--reason", "again", code=1)
    assert doc["error"]["type"] == "MergeRefused"
    doc, _ = siyu("members", "undo", str(change), "--reason", "oops")
    doc, _ = siyu("members", "undo", str(change), "--reason", "oops", code=1)
    assert doc["error"]["type"] == "MergeRefused"
    doc, _ = siyu("members", "find", "--phone", "12345", code=1)
    assert "12345" not in doc["error"]["message"]
    doc, _ = siyu("ledger", "verify")
    assert doc["ok"]


def test_verify_lists_violations_and_exits_1(siyu, database_url: str) -> None:
    engine = engine_of(database_url)
    add_fan(engine, "douyin", "d1")
    siyu("members", "stitch")
    siyu("ledger", "post", "--member", "1", "--points", "10", "--reason", "r", "--key", "k")
    with engine.begin() as conn:  # tamper behind the ledger's back
        conn.execute(sa.text("UPDATE members SET balance = 15 WHERE member_id = 1"))
    doc, err = siyu("ledger", "verify", code=1)
    assert not doc["ok"]
    assert {v["check"] for v in doc["violations"]} == {"balance", "lots"}
    assert PHONES is not None


def test_tiers_command(siyu, database_url: str) -> None:
    engine = engine_of(database_url)
    add_fan(engine, "douyin", "d1")
    doc, _ = siyu("members", "tiers")
    assert doc == {"ok": True, "changed": 1}
    doc, _ = siyu("members", "tiers")
    assert doc["changed"] == 0


def test_level_thresholds_come_from_the_ledger_section(database_url: str, tmp_path: Path, monkeypatch, capsys) -> None:
    config = tmp_path / "siyu.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n[security]\nphone_key = "test-phone-key-0123456789abcdef"\n'
                      '[ledger]\nlevel_thresholds = [10, 20]\n')
    monkeypatch.setenv("SIYU_CONFIG", str(config))
    engine = engine_of(database_url)
    add_fan(engine, "douyin", "d1")
    assert main(["members", "stitch", "--json"]) == 0
    capsys.readouterr()
    member = engine.connect().execute(sa.text("SELECT member_id FROM fans")).scalar_one()
    assert main(["ledger", "post", "--member", str(member), "--points", "25", "--reason", "r", "--key", "k",
                 "--json"]) == 0
    capsys.readouterr()
    assert main(["members", "show", str(member), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["level"] == 2
    assert main(["ledger", "verify", "--json"]) == 0
    engine.dispose()
