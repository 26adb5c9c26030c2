"""Rows a test writes straight into the tables, so that every figure of the report is known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

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


def fill(engine: sa.Engine) -> None:
    """Four members (one merged), nine fans on five platforms, every ledger kind, cards in step and
    behind, queued and dead card updates, checkpoints and callbacks (figures: test_figures.py)."""
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


