"""The demo's report opened in headless Chromium: every chart is there and its numbers are ``--json``'s.

The browser is Debian's ``chromium`` (``.ci/run`` installs it with ``fonts-noto-cjk``), driven
through its command line: ``--dump-dom`` gives the page as the browser built it, ``--screenshot``
a PNG of it.  Without a ``chromium`` binary the test is skipped, unless ``SIYU_REQUIRE_BROWSER=1``
(as CI sets), which makes it fail.  With ``SIYU_WRITE_REPORT_PNG=1`` the screenshot is copied to
``docs/report.png``, the picture the README shows.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from hub.cli import main
from hub.storage import database as storage
from tests.hub.report.rows import fill

ROOT = Path(__file__).resolve().parents[3]
BUILT_INS = "alipay,douyin,kuaishou,wecom,xiaohongshu"
DEMO_PEOPLE = "400"
WINDOW = (1280, 1800)
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def _chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        reason = "no chromium binary on PATH (Debian: apt-get install chromium fonts-noto-cjk; .ci/run does it)"
        if os.environ.get("SIYU_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SIYU_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return binary


def _browse(binary: str, page: Path, profile: Path, *extra: str) -> str:
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}", *extra, page.as_uri()]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Dom(HTMLParser):
    """Every element's data- attributes with the chart (or row) it sits in, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str | None, dict[str, str]]] = []
        self.text: list[str] = []
        self._charts: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        data = {k[5:]: v or "" for k, v in attrs if k.startswith("data-")}
        chart = data.get("chart")
        inside = self._charts[-1][1] if self._charts else None
        if tag not in VOID:
            self._charts.append((tag, chart or inside))
        if data and not chart:
            self.elements.append((inside, data))

    def handle_endtag(self, tag: str) -> None:
        if any(open_tag == tag for open_tag, _ in self._charts):
            while self._charts.pop()[0] != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def items(self, chart: str | None, key: str) -> list[dict[str, str]]:
        return [d for c, d in self.elements if c == chart and key in d]


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def _report(argv: list[str], page: Path, capsys: pytest.CaptureFixture[str], *options: str) -> dict[str, Any]:
    """``siyu ARGV report OPTIONS --html PAGE --json``: the report's figures."""
    assert main([*argv, "report", *options, "--html", str(page), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True
    return doc["report"]


def check_page(binary: str, report: dict[str, Any], page: Path, profile: Path) -> None:
    """Open ``page`` in the browser and compare each chart's data- attributes with ``report``."""
    dom = Dom()
    dom.feed(_browse(binary, page, profile, "--dump-dom"))
    text = "".join(dom.text)
    for label in ("潜在", "路人", "好感", "真爱", "跨平台识别"):
        assert label in text

    tiles = {d["figure"]: int(d["value"]) for d in dom.items(None, "figure") if "flow" not in d and "platform" not in d
             and d["figure"] != "generated_at"}
    assert tiles == {"fans.total": report["fans"]["total"], "members.total": report["members"]["total"],
                     "overlap.multi": sum(d["members"] for d in report["overlap"]["by_degree"] if d["platforms"] > 1),
                     "points.outstanding": report["points"]["outstanding"], "cards.behind": report["cards"]["behind"],
                     "sync.errors": report["sync"]["errors"]}

    bars = {(d["platform"], d["account"]): int(d["value"]) for d in dom.items("fans", "value")}
    assert bars == {(a["platform"], a["account_id"]): a["fans"] for a in report["fans"]["by_account"]}

    degrees = {int(d["degree"]): int(d["value"]) for d in dom.items("overlap-degree", "value")}
    assert degrees == {d["platforms"]: d["members"] for d in report["overlap"]["by_degree"]}
    assert list(degrees) == [1, 2, 3, 4, 5]

    columns = [(d["platforms"], int(d["value"])) for d in dom.items("upset", "platforms")]
    assert columns == [(",".join(c["platforms"]), c["members"]) for c in report["overlap"]["combinations"]]
    rows = {d["platform"]: int(d["value"]) for d in dom.items("upset", "platform")}
    assert rows == report["overlap"]["set_sizes"]

    steps = {(d["platform"], d["tier"]): int(d["value"]) for d in dom.items("tiers", "tier")}
    assert steps == {(t["platform"], k): n for t in report["tiers"]["by_platform"] for k, n in t["counts"].items()}

    flows = report["points"]["flows"]
    periods = [{"period": d["period"], **{f: int(d[f]) for f in flows}} for d in dom.items("points", "period")]
    assert periods == report["points"]["series"]
    totals = {d["flow"]: int(d["value"]) for d in dom.items(None, "flow")}
    assert totals == report["points"]["totals"]

    cards = {(d["platform"], d["account"]): (int(d["value"]), int(d["rest"])) for d in dom.items("cards", "rest")}
    assert cards == {(a["platform"], a["account_id"]): (a["in_step"], a["behind"]) for a in report["cards"]["by_account"]}

    sync = {(d["platform"], d["account"]): d["lag"] for d in dom.items("sync", "lag")}
    assert sync == {(a["platform"], a["account_id"]): "" if a["lag_seconds"] is None else str(a["lag_seconds"])
                    for a in report["sync"]["accounts"]}



def test_a_report_of_known_rows_in_chromium_shows_the_json_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = _chromium()
    url = f"sqlite:///{tmp_path / 'siyu.db'}"
    engine = storage.create_engine(url)
    try:
        storage.upgrade(engine)
        fill(engine)
    finally:
        engine.dispose()
    page = tmp_path / "report.html"
    report = _report([], page, capsys, "--db", url)
    assert report["cards"]["by_account"] and len(report["overlap"]["combinations"]) == 3
    check_page(binary, report, page, tmp_path / "profile")


def test_the_demo_report_in_chromium_shows_the_json_numbers_and_makes_the_png(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``siyu demo`` into tmp, ``siyu report --html FILE --json``, the page checked and photographed."""
    binary = _chromium()
    code = main(["demo", "--dir", str(tmp_path / "demo"), "--people", DEMO_PEOPLE, "--json"])
    demo = json.loads(capsys.readouterr().out)["demo"]
    assert code == 0, demo["problems"]
    assert demo["platforms"] == BUILT_INS.split(",")  # the demo a user gets: no test-only platforms
    page = tmp_path / "report.html"
    report = _report(["--config", str(tmp_path / "demo" / "siyu.toml")], page, capsys)
    assert report["fans"]["total"] > 0 and report["points"]["series"]
    assert sum(d["members"] for d in report["overlap"]["by_degree"] if d["platforms"] > 1) > 0
    assert report["cards"]["cards"] == report["cards"]["in_step"] > 0  # every card read back in step
    check_page(binary, report, page, tmp_path / "profile")

    shot = tmp_path / "report.png"
    _browse(binary, page, tmp_path / "profile", f"--screenshot={shot}")
    assert _png_size(shot) == WINDOW and shot.stat().st_size > 50_000  # a page drawn, not a blank one
    if os.environ.get("SIYU_WRITE_REPORT_PNG") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "report.png")
