"""The report's figures against a database whose every row the test wrote, on both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from hub.cli import main
from hub.report import compute_figures, render_html
from schemas.tables import (
    FanRow,
    LedgerEntryRow,
    MemberCardRow,
    MemberRow,
    OutboxRow,
    SyncCheckpointRow,
    WebhookEventRow,
)

NOW = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
DAY1 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
DAY3 = datetime(2026, 5, 3, 23, 59, tzinfo=UTC)


def _stamped(**row):
    return {"inserted_at": NOW, "updated_at": NOW, **row}


def _fan(uid, platform, member_id, tier=None, account="hq", follow="following"):
    return _stamped(platform=platform, account_id=account, platform_uid=uid, member_id=member_id, tier=tier,
                    follow_state=follow, gender="unknown", tags=[], follows=[], interactions={}, identity_keys={},
                    needs_stitch=False, needs_card=False)


def _entry(n, member_id, kind, points, at, reverses=None):
    return {"idempotency_key": f"k{n}", "member_id": member_id, "kind": kind, "points": points, "reason": "t",
            "reverses_entry_id": reverses, "body_hash": "0" * 64, "created_at": at, "entry_id": n}


def _fill(engine):
    with engine.begin() as conn:
        conn.execute(sa.insert(MemberRow.__table__), [
            _stamped(member_id=1, merged_into=None, level=1, lifetime_points=1200, balance=700),
            _stamped(member_id=2, merged_into=None, level=0, lifetime_points=50, balance=50),
            _stamped(member_id=3, merged_into=None, level=0, lifetime_points=0, balance=0),
            _stamped(member_id=4, merged_into=1, level=0, lifetime_points=0, balance=0),
        ])
        conn.execute(sa.insert(FanRow.__table__), [
            _fan("d1", "douyin", 1, "devoted"), _fan("w1", "wecom", 1, None),
            _fan("a4", "alipay", 4, None, follow="unknown"),            # a merged member's fan counts for member 1
            _fan("d2", "douyin", 2, "fond"), _fan("d2b", "douyin", 2, "prospect", account="store1"),
            _fan("k3", "kuaishou", 3, None, follow="unfollowed"), _fan("x3", "xiaohongshu", 3, None),
            _fan("d5", "douyin", None, "prospect"),                      # not stitched yet
            _fan("d6", "douyin", None, "mystery"),                       # a tier the hub does not know
        ])
        conn.execute(sa.insert(LedgerEntryRow.__table__), [
            _entry(1, 1, "earn", 1200, DAY1), _entry(2, 1, "redeem", -300, DAY1),
            _entry(3, 1, "expiry", -100, DAY3), _entry(4, 1, "reversal", -100, DAY3, reverses=None),
            _entry(5, 2, "earn", 50, DAY3), _entry(6, 4, "transfer_out", -20, DAY3), _entry(7, 1, "transfer_in", 20, DAY3),
        ])
        conn.execute(sa.insert(MemberCardRow.__table__), [
            _stamped(member_id=1, platform="douyin", account_id="hq", card_no="c1", level=1, balance=700, status="active"),
            _stamped(member_id=2, platform="douyin", account_id="hq", card_no="c2", level=0, balance=10, status="active"),
            _stamped(member_id=4, platform="alipay", account_id="hq", card_no="c4", level=1, balance=700, status="active"),
            _stamped(member_id=3, platform="alipay", account_id="hq", card_no="c3", level=0, balance=5, status="closed"),
        ])
        conn.execute(sa.insert(OutboxRow.__table__), [
            _stamped(platform="douyin", account_id="hq", kind="card_update", target="card:2", payload={}, status="pending",
                     attempts=0, last_error=None, available_at=NOW),
            _stamped(platform="douyin", account_id="hq", kind="card_update", target="card:2", payload={}, status="dead",
                     attempts=5, last_error="rejected: card not found", available_at=NOW),
        ])
        conn.execute(sa.insert(SyncCheckpointRow.__table__), [
            {"platform": "douyin", "account_id": "hq", "stream": "fans", "cursor": None,
             "updated_at": NOW - timedelta(hours=2)},
            {"platform": "douyin", "account_id": "hq", "stream": "orders", "cursor": "c-9",
             "updated_at": NOW - timedelta(minutes=5)},
            {"platform": "wecom", "account_id": "hq", "stream": "fans", "cursor": None,
             "updated_at": NOW - timedelta(days=1)},
        ])
        conn.execute(sa.insert(WebhookEventRow.__table__), [
            {"platform": "wecom", "account_id": "hq", "dedupe_key": "e1", "status": "failed", "payload": {},
             "error": "unknown member", "received_at": NOW},
            {"platform": "wecom", "account_id": "hq", "dedupe_key": "e2", "status": "received", "payload": {},
             "error": None, "received_at": NOW},
            {"platform": "wecom", "account_id": "hq", "dedupe_key": "e3", "status": "processed", "payload": {},
             "error": None, "received_at": NOW},
        ])


def test_an_empty_database_gives_every_section_with_zeros(engine):
    f = compute_figures(engine, now=NOW)
    assert f["fans"] == {"total": 0, "by_platform": {}, "by_account": []}
    assert f["members"]["total"] == 0 and f["overlap"]["members"] == 0
    assert [d["platforms"] for d in f["overlap"]["by_degree"]] == [1, 2, 3, 4, 5]
    assert f["points"]["series"] == [] and set(f["points"]["totals"].values()) == {0}
    assert f["cards"]["cards"] == 0 and f["sync"]["accounts"] == []
    page = render_html(f)
    assert "No fans yet" in page and "<script" not in page


def test_figures_count_what_the_tables_hold(engine):
    _fill(engine)
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
    assert sync[("kuaishou", "hq")]["last_run"] is None
    assert f["sync"]["errors"] == 2 and "not recorded" in f["sync"]["missing"]


def test_figures_are_plain_json(engine):
    _fill(engine)
    f = compute_figures(engine, now=NOW)
    assert json.loads(json.dumps(f)) == f


def test_the_command_prints_the_figures_and_writes_the_page(engine, database_url, tmp_path, capsys):
    _fill(engine)
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
