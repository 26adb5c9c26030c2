"""Douyin callbacks: verified on the raw bytes first, then parsed (content parsed a second time)."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime

import pytest

import hub
from plugins.douyin import DouyinAdapter
from schemas import Account, ContentType, Direction, Fan, FollowState, Message

SECRET = "dy-secret-for-callbacks"
OWN = "ent-open-id"
ACCOUNT = Account(platform="douyin", account_id="ent")


def adapter(**overrides) -> DouyinAdapter:
    options = {"client_key": "awkey", "client_secret": SECRET, "open_id": OWN, "access_token": "act.x",
               "refresh_token": "rft.x", **overrides}
    return DouyinAdapter(config=DouyinAdapter.Config(**options), client=None)  # type: ignore[arg-type]


def request(body: bytes, *, signature: str | None = "compute", msg_id: str | None = "msg-1", method: str = "POST"):
    headers = {"Content-Type": "application/json"}
    if signature == "compute":
        signature = hashlib.sha1(SECRET.encode() + body).hexdigest()
    if signature is not None:
        headers["X-Douyin-Signature"] = signature
    if msg_id is not None:
        headers["Msg-Id"] = msg_id
    return hub.WebhookRequest(method=method, path="/webhooks/douyin/ent", query={}, headers=headers, body=body)


def envelope(event: str, content, *, sender: str = "fan-1", receiver: str = OWN) -> bytes:
    return json.dumps({"event": event, "from_user_id": sender, "to_user_id": receiver, "client_key": "awkey",
                       "content": content if isinstance(content, dict) and event == "verify_webhook"
                       else json.dumps(content, ensure_ascii=False), "log_id": "L1"}, ensure_ascii=False).encode()


async def parse(body: bytes, **kw) -> hub.WebhookResult:
    return await adapter().parse_webhook(ACCOUNT, request(body, **kw))


async def test_the_challenge_is_echoed_when_signed_with_the_hand_computed_digest():
    body = b'{"event":"verify_webhook","client_key":"","content":{"challenge":12345}}'
    digest = hashlib.sha1(b"dy-secret-for-callbacks" + body).hexdigest()
    result = await parse(body, signature=digest, msg_id=None)
    assert json.loads(result.body) == {"challenge": 12345} and result.status_code == 200
    assert result.media_type == "application/json" and result.events == () and result.dedupe_key is None


@pytest.mark.parametrize("signature", [None, "", "0" * 40, "not-hex", hashlib.sha1(b"other" + b"x").hexdigest()])
async def test_a_missing_or_forged_signature_is_rejected_before_parsing(signature):
    body = b"this is not even JSON"  # parsing would fail with 400: the 401 proves the order
    with pytest.raises(hub.WebhookRejected) as caught:
        await parse(body, signature=signature if signature is not None else None)
    assert caught.value.status_code == 401


async def test_a_one_byte_changed_body_is_rejected():
    body = envelope("im_receive_msg", {"server_message_id": "s1"})
    good = hashlib.sha1(SECRET.encode() + body).hexdigest()
    tampered = body.replace(b"s1", b"s2")
    with pytest.raises(hub.WebhookRejected) as caught:
        await parse(tampered, signature=good)
    assert caught.value.status_code == 401


async def test_a_get_is_refused_and_a_signed_non_event_is_a_400():
    with pytest.raises(hub.WebhookRejected) as caught:
        await parse(b"{}", method="GET")
    assert caught.value.status_code == 405
    for body in (b"{not json", b'["event"]', b'{"no_event": 1}'):
        with pytest.raises(hub.WebhookRejected) as caught:
            await parse(body)
        assert caught.value.status_code == 400


async def test_an_unsigned_challenge_is_echoed_only_when_configured():
    body = envelope("verify_webhook", {"challenge": 777}, sender="")
    with pytest.raises(hub.WebhookRejected):
        await parse(body, signature=None)
    lenient = adapter(verify_challenge_signature=False)
    result = await lenient.parse_webhook(ACCOUNT, request(body, signature=None))
    assert json.loads(result.body) == {"challenge": 777}
    other = envelope("im_receive_msg", {})
    with pytest.raises(hub.WebhookRejected):  # only the challenge is exempt
        await lenient.parse_webhook(ACCOUNT, request(other, signature=None))


IM = {"conversation_short_id": "conv-9", "server_message_id": "7255", "conversation_type": 1,
      "message_type": "text", "text": "还有货吗", "source": "", "create_time": 1700000000123,
      "user_infos": [{"open_id": "fan-1", "nick_name": "小明", "avatar": "https://a/1.jpeg"},
                     {"open_id": OWN, "nick_name": "品牌号", "avatar": "https://a/0.jpeg"}]}


async def test_a_received_message_keeps_its_conversation_for_the_reply():
    result = await parse(envelope("im_receive_msg", IM), msg_id="m-42")
    message, fan = result.events
    assert isinstance(message, Message) and isinstance(fan, Fan)
    assert (message.platform_msg_id, message.conversation_id, message.fan_uid) == ("7255", "conv-9", "fan-1")
    assert message.direction is Direction.INBOUND and message.content_type is ContentType.TEXT
    assert message.body == {"message_type": "text", "text": "还有货吗", "conversation_type": 1}
    assert message.sent_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)  # milliseconds
    assert (fan.platform_uid, fan.nickname, fan.avatar_url) == ("fan-1", "小明", "https://a/1.jpeg")
    assert fan.model_fields_set == {"platform", "account_id", "platform_uid", "nickname", "avatar_url",
                                    "interactions_added"}
    assert fan.interactions_added == {"messages": 1}
    assert result.dedupe_key == "im:7255" and result.status_code == 200 and result.body == b""


async def test_a_sent_message_is_outbound_to_the_receiver():
    content = {**IM, "message_type": "image", "text": "", "source": "awkey", "user_infos": []}
    result = await parse(envelope("im_send_msg", content, sender=OWN, receiver="fan-7"))
    [message] = result.events
    assert message.direction is Direction.OUTBOUND and message.fan_uid == "fan-7"
    assert message.content_type is ContentType.IMAGE and message.body == {
        "message_type": "image", "source": "awkey", "conversation_type": 1}


async def test_a_follow_sets_the_follow_state_and_counts_an_interaction():
    result = await parse(envelope("new_follow_action", {"action_type": 1, "action_time": "1700000000"}))
    [fan] = result.events
    assert fan.follow_state is FollowState.FOLLOWING and fan.followed_at == datetime(2023, 11, 14, 22, 13, 20,
                                                                                     tzinfo=UTC)
    assert fan.model_fields_set == {"platform", "account_id", "platform_uid", "follow_state", "followed_at",
                                    "interactions_added"}
    assert fan.interactions_added == {"follows": 1}


async def test_a_member_join_brings_the_phone_as_an_identity_key_and_raw_keeps_no_phone():
    content = {"account_id": "7000", "open_id": "fan-3", "mobile": "13800138000"}
    result = await parse(envelope("life_member_join", content))
    [fan] = result.events
    assert fan.platform_uid == "fan-3" and fan.phone == "+8613800138000"
    assert result.raw["event"] == "life_member_join" and "mobile" not in result.raw["content"]
    assert "13800138000" not in json.dumps(result.raw)


async def test_a_member_join_with_an_odd_phone_keeps_the_member(caplog):
    caplog.set_level(logging.INFO, "siyu.douyin")
    result = await parse(envelope("life_member_join", {"account_id": "7000", "mobile": "+1 555 0100"}))
    [fan] = result.events
    assert fan.platform_uid == "fan-1" and fan.phone is None
    assert "555" not in caplog.text


async def test_a_member_join_opens_the_card_and_a_leave_closes_it():
    joined = await parse(envelope("life_member_join", {"account_id": "7000", "open_id": "fan-3"}))
    left = await parse(envelope("life_member_leave", {"account_id": "7000", "open_id": "fan-3"}))
    assert [(f.platform_uid, f.card_status) for f in joined.events] == [("fan-3", "active")]
    assert [(f.platform_uid, f.card_status) for f in left.events] == [("fan-3", "closed")]
    assert left.events[0].model_fields_set == {"platform", "account_id", "platform_uid", "card_status"}


@pytest.mark.parametrize(("event", "status"), [("authorize", "active"), ("unauthorize", "unauthorised")])
async def test_authorisation_events_report_the_account_status(event, status):
    result = await parse(envelope(event, {"scopes": ["im.direct_message"]}), msg_id=f"id-{event}")
    [account] = result.events
    assert (account.platform, account.status) == ("douyin", status)
    assert result.dedupe_key.startswith("sha256:") and result.raw["event"] == event


@pytest.mark.parametrize("event", ["create_video", "brand_new"])
async def test_events_without_records_are_kept_under_their_body_digest(event):
    result = await parse(envelope(event, {"scopes": ["im.direct_message"], "mobile": "13800138000"}),
                         msg_id=f"id-{event}")
    assert result.events == [] and result.dedupe_key.startswith("sha256:") and result.status_code == 200
    assert result.raw["event"] == event and result.raw["content"] == {"scopes": ["im.direct_message"]}


async def test_a_known_event_missing_its_fields_is_acknowledged_without_records(caplog):
    result = await parse(envelope("im_receive_msg", {"text": "no ids"}), msg_id="m-odd")
    assert result.events == [] and result.dedupe_key.startswith("sha256:")
    assert "im_receive_msg event not understood" in caplog.text and "no ids" not in caplog.text


# -- replays through the receiver: identity from the signed body, event-time order ------------

def _stored_app(database_url, engine):
    from hub.webhooks.receiver import create_app
    from tests.plugins.douyin.test_e2e import HOST, account, settings_for

    settings = settings_for(database_url, account("http://127.0.0.1:9"))
    return create_app(HOST, settings, engine, apply_pending_on_start=False)


async def _deliver_all(app, bodies_and_ids):
    import httpx

    from plugins.douyin.sandbox_data import signed_headers

    statuses = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
        for body, msg_id in bodies_and_ids:
            response = await client.post("/webhooks/douyin/ent", content=body, headers=signed_headers(body, msg_id=msg_id))
            statuses.append(response.status_code)
    await app.state.receiver.aclose()
    return statuses


def _body(event, content, sender="fan-r1"):
    from plugins.douyin.sandbox_data import OPEN_ID, event_body

    return event_body(event, content, from_user_id=sender, to_user_id=OPEN_ID)


def _table(engine, table, **where):
    from tests.plugins.douyin.test_e2e import rows

    return rows(engine, table, **where)


async def test_a_replayed_message_or_follow_under_new_or_missing_msg_ids_counts_once(database_url, engine):
    from schemas.tables import FanRow, WebhookEventRow

    message = _body("im_receive_msg", {"conversation_short_id": "c-1", "server_message_id": "s-1",
                                       "message_type": "text", "text": "hi", "create_time": 1_700_000_000_000})
    follow = _body("new_follow_action", {"action_type": 1, "action_time": 1_700_000_100}, sender="fan-r2")
    deliveries = [(message, "a"), (message, "b"), (message, None), (follow, "f1"), (follow, "f2"), (follow, None),
                  (follow, "x" * 1000)]
    assert await _deliver_all(_stored_app(database_url, engine), deliveries) == [200] * 7
    assert len(_table(engine, WebhookEventRow)) == 2
    [talker] = _table(engine, FanRow, platform_uid="fan-r1")
    [follower] = _table(engine, FanRow, platform_uid="fan-r2")
    assert talker["interactions"] == {"messages": 1} and follower["interactions"] == {"follows": 1}


async def test_a_replayed_unauthorize_does_not_undo_a_later_authorize(database_url, engine):
    from schemas.tables import AccountRow

    unauthorize, authorize = _body("unauthorize", {"scopes": ["im"]}), _body("authorize", {"scopes": ["im"]})
    deliveries = [(unauthorize, "u1"), (authorize, "a1"), (unauthorize, "u-replay")]
    assert await _deliver_all(_stored_app(database_url, engine), deliveries) == [200] * 3
    [row] = _table(engine, AccountRow, platform="douyin", account_id="ent")
    assert row["status"] == "active"


async def test_a_replayed_leave_does_not_close_a_card_joined_after_it(database_url, engine):
    from schemas.tables import FanRow

    leave = _body("life_member_leave", {"open_id": "fan-r3"}, sender="fan-r3")
    join = _body("life_member_join", {"open_id": "fan-r3"}, sender="fan-r3")
    deliveries = [(leave, "l1"), (join, "j1"), (leave, "l-replay"), (leave, None)]
    assert await _deliver_all(_stored_app(database_url, engine), deliveries) == [200] * 4
    [fan] = _table(engine, FanRow, platform_uid="fan-r3")
    assert fan["card_status"] == "active"


async def test_an_event_older_than_one_applied_changes_nothing(database_url, engine):
    from schemas.tables import FanRow, WebhookEventRow

    join = _body("life_member_join", {"open_id": "fan-r4", "event_time": 1_700_000_200}, sender="fan-r4")
    late_leave = _body("life_member_leave", {"open_id": "fan-r4", "event_time": 1_700_000_100}, sender="fan-r4")
    assert await _deliver_all(_stored_app(database_url, engine), [(join, "j"), (late_leave, "l")]) == [200, 200]
    [fan] = _table(engine, FanRow, platform_uid="fan-r4")
    assert fan["card_status"] == "active"
    assert [e["status"] for e in _table(engine, WebhookEventRow)] == ["processed", "processed"]


async def test_a_deeply_nested_signed_body_is_a_4xx_not_a_500():
    nested = b'{"event":"x","content":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    with pytest.raises(hub.WebhookRejected) as caught:
        await parse(nested)
    assert caught.value.status_code == 400
    deep: list = []
    for _ in range(40):
        deep = [deep]
    nested_content = _body("im_receive_msg", {"a": deep})
    result = await parse(nested_content)  # nested inside the content string: stored without records
    assert result.events == []


async def test_an_unsigned_body_is_not_parsed_when_challenges_need_no_signature():
    nested = b'{"event":"verify_webhook","content":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    unsigned = adapter(verify_challenge_signature=False)
    with pytest.raises(hub.WebhookRejected) as caught:
        await unsigned.parse_webhook(ACCOUNT, request(nested, signature=None))
    assert caught.value.status_code == 401
    challenge = b'{"event":"verify_webhook","content":{"challenge":7}}'
    result = await unsigned.parse_webhook(ACCOUNT, request(challenge, signature=None))
    assert json.loads(result.body) == {"challenge": 7}
