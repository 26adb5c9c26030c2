from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas import Fan, FanTier, LedgerEntry, LedgerKind, Message, Order, OrderStatus, PointsEvent

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def fields_of(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in err["loc"]) for err in exc.errors()}


def test_fan_normalises_phone_and_hides_it_from_repr_and_errors():
    fan = Fan(platform="wecom", account_id="hq", platform_uid="wm1", phone="138 0013 8000", tier="fond")
    assert fan.phone == "+8613800138000"
    assert fan.tier is FanTier.FOND
    assert "8000" not in repr(fan) and "8000" not in str(fan)
    with pytest.raises(ValidationError) as info:
        Fan(platform="wecom", account_id="hq", platform_uid="wm1", phone="555-0100")
    assert fields_of(info.value) == {"phone"}
    assert "555-0100" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"platform_uid": ""}, "platform_uid"),
        ({"platform_uid": "   "}, "platform_uid"),
        ({"account_id": None}, "account_id"),
        ({"tier": "superfan"}, "tier"),
        ({"gender": "x"}, "gender"),
        ({"interactions": {"likes": -1}}, "interactions.likes"),
        ({"followed_at": datetime(2024, 1, 1)}, "followed_at"),
        ({"nicknam": "typo"}, "nicknam"),
    ],
)
def test_fan_rejects_bad_fields_by_name(overrides, field):
    data = {"platform": "douyin", "account_id": "ent", "platform_uid": "u1", **overrides}
    with pytest.raises(ValidationError) as info:
        Fan(**data)
    assert field in fields_of(info.value)


def order(**overrides):
    data = dict(platform="kuaishou", account_id="shop", order_id="o1", buyer_uid="b1", amount_fen=1999,
                status="paid", paid_at=NOW)
    return Order(**{**data, **overrides})


def test_order_money_is_integer_fen():
    assert order().amount_fen == 1999
    for bad in (-1, 19.99, "1999"):
        with pytest.raises(ValidationError) as info:
            order(amount_fen=bad)
        assert "amount_fen" in fields_of(info.value)
    with pytest.raises(ValidationError, match="refunded_fen exceeds amount_fen"):
        order(refunded_fen=2000)
    with pytest.raises(ValidationError) as info:
        order(status="lost")
    assert fields_of(info.value) == {"status"}
    assert order(status=OrderStatus.REFUNDED, refunded_fen=1999).status is OrderStatus.REFUNDED


def test_points_event_delta_is_a_nonzero_integer():
    base = dict(platform="douyin", account_id="ent", event_id="e1", fan_uid="u1", reason="checkin", occurred_at=NOW)
    assert PointsEvent(delta=-5, **base).delta == -5
    with pytest.raises(ValidationError, match="delta must not be zero"):
        PointsEvent(delta=0, **base)
    with pytest.raises(ValidationError) as info:
        PointsEvent(delta=1.5, **base)
    assert fields_of(info.value) == {"delta"}


def test_ledger_entry_sign_must_match_kind():
    base = dict(idempotency_key="k", member_id=1, reason="r", created_at=NOW)
    assert LedgerEntry(kind=LedgerKind.EARN, points=10, **base).points == 10
    with pytest.raises(ValidationError, match="removes points"):
        LedgerEntry(kind=LedgerKind.REDEEM, points=10, **base)
    with pytest.raises(ValidationError, match="adds points"):
        LedgerEntry(kind=LedgerKind.EARN, points=-10, **base)


def test_message_requires_direction_and_aware_time():
    msg = Message(platform="douyin", account_id="ent", platform_msg_id="m1", direction="inbound",
                  content_type="text", body={"text": "hi"}, sent_at=NOW)
    assert msg.direction == "inbound"
    with pytest.raises(ValidationError) as info:
        Message(platform="douyin", account_id="ent", platform_msg_id="m1", direction="sideways",
                content_type="text", sent_at=datetime(2024, 1, 1))
    assert fields_of(info.value) == {"direction", "sent_at"}


def test_many_validates_a_page_as_the_constructor_does():
    rows = [{"platform": "douyin", "account_id": "ent", "platform_uid": f"u{i}", "phone": "138 0013 8000",
             "union_id": None, "followed_at": NOW} for i in range(3)]
    fans = Fan.many(row for row in rows)  # any iterable of field mappings
    assert fans == [Fan(**row) for row in rows] and all(type(f) is Fan for f in fans)
    assert fans[0].phone == "+8613800138000"
    assert fans[1].model_fields_set == {"platform", "account_id", "platform_uid", "phone", "union_id", "followed_at"}


def test_many_names_the_bad_record_by_index_and_hides_its_input():
    rows = [{"platform": "douyin", "account_id": "ent", "platform_uid": "u1"},
            {"platform": "douyin", "account_id": "ent", "platform_uid": "u2", "phone": "555-0100"},
            {"platform": "douyin", "account_id": "ent", "platform_uid": "u3", "followed_at": datetime(2024, 1, 1)}]
    with pytest.raises(ValidationError) as info:
        Fan.many(rows)
    assert fields_of(info.value) == {"1.phone", "2.followed_at"}
    assert "555-0100" not in str(info.value)
    assert Order.many([]) == []
