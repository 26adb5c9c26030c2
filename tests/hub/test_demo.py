"""``siyu demo`` end to end on a small population: people recognised on several platforms, every
platform with cards showing cards read back from its sandbox equal to the ledger, ``ledger
verify`` clean, test-only platforms left out, and a second run that adds nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hub.cli import main
from hub.plugins import load_plugins
from schemas import Capability

BUILT_INS = ["alipay", "douyin", "kuaishou", "wecom", "xiaohongshu"]
PEOPLE = "150"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(list(args))
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc["demo"]["problems"] if "demo" in doc else doc
    assert doc["ok"] is True
    return doc


def carding() -> set[str]:
    host = load_plugins()
    return {p for p in BUILT_INS if Capability.CARDS in host.adapter_class(p).capabilities}


def test_the_demo_runs_the_story_end_to_end_and_a_second_run_adds_nothing(
        tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "demo"
    args = ("demo", "--dir", str(directory), "--people", PEOPLE, "--db", database_url, "--json")
    first = run(capsys, *args)["demo"]

    assert first["platforms"] == BUILT_INS  # testplat and weibo are installed here, and left out
    assert first["steps"]["sync"]["errors"] == []
    recognised = first["recognised"]
    assert sum(n for k, n in recognised.items() if int(k) >= 2) > 0 and recognised.get("4", 0) > 0
    assert first["steps"]["callbacks"]["alipay_cards_activated"] > 0
    assert first["steps"]["callbacks"]["douyin_members_joined"] > 0

    # every platform with cards shows cards, each read back from its sandbox equal to the ledger
    assert set(first["cards"]) == carding()
    for platform, cards in first["cards"].items():
        assert cards["cards"] > 0 and cards["read_back"] == cards["cards"] == cards["in_step"], platform
        assert cards["all_in_step"] and all(c["in_step"] for c in cards["sample"])
    assert first["ledger_verify"] == {"ok": True, "violations": 0, "first": []}

    refund, ledger = first["steps"]["refund"], first["steps"]["ledger"]
    assert refund["ok"] and refund["points_reversed"] > 0
    assert ledger["gift_new"] and ledger["expired_points"] >= ledger["gift"] and ledger["redemption_new"]
    points = first["points"]
    assert points["earned"] > 0 and points["reversed"] < 0 and points["redeemed"] < 0 and points["expired"] < 0
    assert first["added"]["fans"] > 0 and first["added"]["member_cards"] > 0
    assert (directory / "siyu.key").stat().st_mode & 0o777 == 0o600

    second = run(capsys, *args)["demo"]
    assert second["added"] == {k: 0 for k in first["added"]}
    assert second["steps"]["sync"]["inserted"] == 0
    assert not second["steps"]["ledger"]["gift_new"] and not second["steps"]["ledger"]["redemption_new"]
    assert second["steps"]["ledger"]["member_id"] == ledger["member_id"]
    assert second["recognised"] == recognised and second["fans"] == first["fans"]
    assert all(c["all_in_step"] for c in second["cards"].values()) and second["ledger_verify"]["ok"]

    # the hub's own report agrees: every card in step, and the verify command is clean
    report = run(capsys, "--config", str(directory / "siyu.toml"), "report", "--json")["report"]
    assert report["cards"]["cards"] == report["cards"]["in_step"] > 0 and report["cards"]["behind"] == 0
    assert run(capsys, "--config", str(directory / "siyu.toml"), "ledger", "verify", "--json")["ok"]


def test_the_demo_prints_a_report_for_people(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path / "demo"), "--people", "60"]) == 0
    out = capsys.readouterr().out
    assert "People recognised on k platforms" in out and "Ledger verify: clean." in out
    assert "testplat" not in out and "weibo" not in out
