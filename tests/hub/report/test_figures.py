"""The report's figures against a database whose every row the test wrote, on both backends."""

from __future__ import annotations

import json

from hub.cli import main
from hub.report import compute_figures, render_html
from tests.hub.report.rows import NOW, fill

def test_an_empty_database_gives_every_section_with_zeros(engine):
    f = compute_figures(engine, now=NOW, accounts=[("wecom", "hq")])
    assert f["sync"]["accounts"][0]["platform"] == "wecom" and f["sync"]["accounts"][0]["last_run"] is None
    f = compute_figures(engine, now=NOW)
    assert f["fans"] == {"total": 0, "by_platform": {}, "by_account": []}
    assert f["members"]["total"] == 0 and f["overlap"]["members"] == 0
    assert [d["platforms"] for d in f["overlap"]["by_degree"]] == [1, 2, 3, 4, 5]
    assert f["points"]["series"] == [] and set(f["points"]["totals"].values()) == {0}
    assert f["cards"]["cards"] == 0 and f["sync"]["accounts"] == []
    page = render_html(f)
    assert "No fans yet" in page and "<script" not in page


def test_figures_count_what_the_tables_hold(engine):
    fill(engine)
    f = compute_figures(engine, now=NOW)
    assert f["platforms"] == ["alipay", "douyin", "kuaishou", "wecom", "xiaohongshu"]
    assert f["fans"]["total"] == 9
    assert f["fans"]["by_platform"] == {"alipay": 1, "douyin": 5, "kuaishou": 1, "wecom": 1, "xiaohongshu": 1}
    douyin_hq = next(a for a in f["fans"]["by_account"] if (a["platform"], a["account_id"]) == ("douyin", "hq"))
    assert douyin_hq == {"platform": "douyin", "account_id": "hq", "fans": 4, "following": 4, "stitched": 2}
    assert f["members"] == {"total": 3, "merged": 1, "with_balance": 2, "balance": 750, "unstitched_fans": 2}

    overlap = f["overlap"]
    assert overlap["members"] == 3
    assert [d["members"] for d in overlap["by_degree"]] == [1, 1, 1, 0, 0]
    assert overlap["combinations"] == [
        {"platforms": ["douyin"], "members": 1},
        {"platforms": ["kuaishou", "xiaohongshu"], "members": 1},
        {"platforms": ["alipay", "douyin", "wecom"], "members": 1},
    ]
    assert overlap["set_sizes"] == {"alipay": 1, "douyin": 2, "kuaishou": 1, "wecom": 1, "xiaohongshu": 1}

    tiers = {t["platform"]: t["counts"] for t in f["tiers"]["by_platform"]}
    assert tiers["douyin"] == {"prospect": 2, "passerby": 0, "fond": 1, "devoted": 1, "none": 1}
    assert f["tiers"]["labels"]["devoted"] == "真爱"

    points = f["points"]
    assert points["totals"] == {"earned": 1250, "redeemed": -300, "reversed": -100, "expired": -100, "transferred": 0}
    assert points["entries"]["transferred"] == 2
    assert points["granularity"] == "day"
    assert [p["period"] for p in points["series"]] == ["2026-05-01", "2026-05-02", "2026-05-03"]
    assert points["series"][0] == {"period": "2026-05-01", "earned": 1200, "redeemed": -300, "reversed": 0,
                                   "expired": 0, "transferred": 0}
    assert points["series"][1]["earned"] == 0
    assert points["outstanding"] == 750

    cards = f["cards"]
    assert (cards["cards"], cards["in_step"], cards["behind"], cards["queued"], cards["dead"]) == (3, 2, 1, 1, 1)
    assert {(a["platform"], a["in_step"], a["behind"]) for a in cards["by_account"]} == {("alipay", 1, 0), ("douyin", 1, 1)}

    sync = {(a["platform"], a["account_id"]): a for a in f["sync"]["accounts"]}
    assert set(sync) == {("alipay", "hq"), ("douyin", "hq"), ("douyin", "store1"), ("kuaishou", "hq"),
                         ("wecom", "hq"), ("xiaohongshu", "hq")}
    douyin = sync[("douyin", "hq")]
    assert douyin["lag_seconds"] == 300 and douyin["last_run"] == "2026-05-20T11:55:00+00:00"
    assert [(s["stream"], s["complete"], s["lag_seconds"]) for s in douyin["streams"]] == [
        ("fans", True, 7200), ("orders", False, 300)]
    assert douyin["outbox_dead"] == 1 and douyin["last_error"] == "rejected: card not found"
    wecom = sync[("wecom", "hq")]
    assert (wecom["webhooks_failed"], wecom["webhooks_waiting"], wecom["lag_seconds"]) == (1, 1, 86400)
    assert wecom["last_error"] == "unknown member"
    assert sync[("kuaishou", "hq")]["last_run"] is None
    assert f["sync"]["errors"] == 2 and "not recorded" in f["sync"]["missing"]


def test_figures_are_plain_json(engine):
    fill(engine)
    f = compute_figures(engine, now=NOW)
    assert json.loads(json.dumps(f)) == f


def test_the_command_prints_the_figures_and_writes_the_page(engine, database_url, tmp_path, capsys):
    fill(engine)
    page = tmp_path / "report.html"
    assert main(["report", "--db", database_url, "--json", "--html", str(page)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["html"] == str(page)
    assert doc["report"]["fans"]["total"] == 9 and doc["report"]["members"]["total"] == 3
    html = page.read_text(encoding="utf-8")
    assert "潜在" in html and "真爱" in html and 'data-chart="upset"' in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched from anywhere
    assert main(["report", "--db", database_url]) == 0
    assert "Tier funnel" in capsys.readouterr().out


def test_an_unwritable_html_path_is_one_line_error(engine, database_url, tmp_path, capsys):
    assert main(["report", "--db", database_url, "--html", str(tmp_path / "no" / "such" / "r.html")]) == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and len(err.strip().splitlines()) == 1
