"""Reading people (hub.people.queries) and clearing tokens (hub.storage.tokens): what the CLI prints."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from hub.errors import NotFound
from hub.people import members, queries
from hub.storage.tokens import clear_tokens
from hub.sync.store import upsert
from schemas import Fan
from schemas.tables import TokenRow, utcnow
from tests.hub.helpers_members import PHONES, add_fan, new_member


def test_fans_are_listed_in_order_filtered_and_never_with_their_number(engine):
    with engine.begin() as conn:
        upsert(conn, [Fan(platform="wecom", account_id="hq", platform_uid="w2", nickname="B", phone="13800138000"),
                      Fan(platform="wecom", account_id="hq", platform_uid="w1", nickname="A"),
                      Fan(platform="douyin", account_id="ent", platform_uid="d1")], PHONES)
    listed = queries.list_fans(engine)
    assert [(f["platform"], f["platform_uid"]) for f in listed] == [("douyin", "d1"), ("wecom", "w1"), ("wecom", "w2")]
    assert set(listed[0]) == {*queries.FAN_FIELDS, "has_phone", "follows"}  # no hash, no number
    assert [f["has_phone"] for f in listed] == [False, False, True]
    assert [f["platform_uid"] for f in queries.list_fans(engine, platform="wecom", limit=1)] == ["w1"]
    assert queries.list_fans(engine, platform="wecom", account_id="other") == []
    one = queries.get_fan(engine, "wecom", "hq", "w2")
    assert (one["nickname"], one["has_phone"], one["tags"]) == ("B", True, [])
    with pytest.raises(NotFound, match="no fan wecom:hq:nobody"):
        queries.get_fan(engine, "wecom", "hq", "nobody")


def test_a_member_is_described_by_its_survivor_and_found_by_phone_or_uid(engine):
    first, second = new_member(engine), new_member(engine)
    add_fan(engine, "douyin", "d1", phone="13800138000", member_id=first)
    add_fan(engine, "kuaishou", "k1", account="shop", member_id=second)
    add_fan(engine, "kuaishou", "k1", account="other")  # the same uid on another account, no member yet
    change = members.merge(engine, first, second, reason="same person", actor="test")
    described = queries.describe_member(engine, second)
    assert (described["member_id"], described["asked_for"], described["merged_from"]) == (first, second, [second])
    assert [f["platform_uid"] for f in described["fans"]] == ["d1", "k1"]
    assert [(c["id"], c["action"]) for c in described["changes"]] == [(change.change_id, "merge")]
    with pytest.raises(NotFound):
        queries.describe_member(engine, 999)
    by_phone = queries.fans_with_phone(engine, PHONES, "+86 138-0013-8000")
    assert [(f["platform_uid"], f["member_id"]) for f in by_phone] == [("d1", first)]
    assert [(f["account_id"], f["member_id"]) for f in queries.fans_with_uid(engine, "kuaishou", "k1")] == [
        ("shop", first), ("other", None)]
    assert [f["account_id"] for f in queries.fans_with_uid(engine, "kuaishou", "k1", account_id="other")] == ["other"]
    assert queries.fans_with_uid(engine, "kuaishou", "nobody") == []
    with pytest.raises(ValueError):
        queries.fans_with_phone(engine, PHONES, "12345")
    assert queries.count_people(engine) == {"fans": 3, "members": 1}


def test_tokens_are_cleared_for_everyone_or_for_one_platform_or_account(engine):
    tokens = TokenRow.__table__
    later = utcnow() + timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(sa.insert(tokens), [dict(platform=p, account_id=a, access_token="t", expires_at=later, extra={},
                                              updated_at=later)
                                         for p, a in [("wecom", "hq"), ("wecom", "shop"), ("douyin", "hq")]])

    def left():
        with engine.connect() as conn:
            return sorted(conn.execute(sa.select(tokens.c.platform, tokens.c.account_id)).all())

    assert clear_tokens(engine, "wecom", "shop") == 1
    assert left() == [("douyin", "hq"), ("wecom", "hq")]
    assert clear_tokens(engine, "douyin") == 1 and left() == [("wecom", "hq")]
    assert clear_tokens(engine) == 1 and left() == []
    assert clear_tokens(engine) == 0
