"""Every Douyin request the adapter makes, pinned with respx: method, path, query, headers, body."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

import hub
from schemas import Gender, MemberCard, Message
from tests.plugins.douyin.rig import ACCOUNT, FAN, NOW, OK, Rig, failed, ok


# -- fans --------------------------------------------------------------------------------------

async def test_fans_pages_with_open_id_cursor_count_and_the_access_token_header():
    rig = Rig(page_size=2)
    route = rig.router.get("/fans/list/").mock(side_effect=[
        httpx.Response(200, json=ok({"list": [FAN, {**FAN, "open_id": "fan-2", "union_id": "", "gender": 0}],
                                     "total": "3", "cursor": "2", "has_more": True})),
        httpx.Response(200, json=ok({"list": [{**FAN, "open_id": "fan-3", "gender": 2}], "total": 3, "cursor": 3,
                                     "has_more": "false"})),
    ])
    async with rig.client:
        first = await rig.adapter.fetch_fans(ACCOUNT, None)
        second = await rig.adapter.fetch_fans(ACCOUNT, first.next_cursor)
    one, two = route.calls
    for call, cursor in ((one, "0"), (two, "2")):
        req = call.request
        assert req.method == "GET" and req.url.path == "/fans/list/"
        assert dict(req.url.params) == {"open_id": "ent-open", "cursor": cursor, "count": "2"}
        assert req.headers["access-token"] == "act.configured" and req.content == b""
    assert [f.platform_uid for f in first.items] == ["fan-1", "fan-2"] and first.next_cursor == "2:2"
    fan = first.items[0]
    assert (fan.union_id, fan.nickname, fan.avatar_url, fan.gender, fan.follow_state) == (
        "u-1", "张伟", "https://x/1.jpeg", Gender.MALE, "following")
    assert first.items[1].union_id is None and first.items[1].gender is Gender.UNKNOWN
    assert second.items[0].gender is Gender.FEMALE and second.next_cursor is None
    assert first.notes == second.notes == ()


async def test_the_5000_cap_is_reported_not_hidden():
    rig = Rig()
    rig.router.get("/fans/list/").respond(json=ok({"list": [FAN], "total": 12000, "cursor": 4999, "has_more": False}))
    async with rig.client:
        page = await rig.adapter.fetch_fans(ACCOUNT, "4980:4998")
    [note] = page.notes
    assert "at most 5,000" in note and "12,000" in note and page.next_cursor is None


async def test_has_more_without_a_new_cursor_is_an_error_not_a_loop():
    rig = Rig()
    rig.router.get("/fans/list/").respond(json=ok({"list": [], "total": 9, "cursor": 40, "has_more": True}))
    async with rig.client:
        with pytest.raises(hub.PermanentError, match="has_more without a new cursor"):
            await rig.adapter.fetch_fans(ACCOUNT, "40:40")


# -- private messages --------------------------------------------------------------------------

def reply(**body) -> Message:
    return Message(platform="douyin", account_id="ent", platform_msg_id="out-1", conversation_id="conv-9",
                   fan_uid="fan-1", direction="outbound", content_type=body.pop("content_type", "text"),
                   body={"reply_to": "7255", **body}, sent_at=NOW)


async def test_a_text_reply_goes_back_into_its_conversation():
    rig = Rig()
    send = rig.router.post("/im/send/msg/").respond(json=ok(msg_id="dy-msg-1"))
    async with rig.client:
        result = await rig.adapter.send_message(ACCOUNT, reply(text="有的,亲"))
    req = send.calls.last.request
    assert dict(req.url.params) == {"open_id": "ent-open"} and req.headers["access-token"] == "act.configured"
    assert req.headers["content-type"] == "application/json"
    assert json.loads(req.content) == {"msg_id": "7255", "conversation_id": "conv-9", "to_user_id": "fan-1",
                                       "content": {"msg_type": 1, "text": {"text": "有的,亲"}},
                                       "scene": "im_reply_msg"}
    assert result == hub.PushResult(accepted=True, reference="dy-msg-1")


@pytest.mark.parametrize(("message", "content"), [
    (reply(content_type="image", media_id="img-1"), {"msg_type": 2, "image": {"media_id": "img-1"}}),
    (reply(content_type="card", card_id="c-1"), {"msg_type": 8, "retain_consult_card": {"card_id": "c-1"}}),
    (reply(content_type="card", card_template_id="t-1", app_id="tt01", path="pages/a"),
     {"msg_type": 10, "applet_card": {"card_template_id": "t-1", "app_id": "tt01", "path": "pages/a"}}),
])
async def test_image_and_card_content(message, content):
    rig = Rig()
    send = rig.router.post("/im/send/msg/").respond(json=ok({"msg_id": "in-data"}))
    async with rig.client:
        result = await rig.adapter.send_message(ACCOUNT, message)
    assert json.loads(send.calls.last.request.content)["content"] == content
    assert result.reference == "in-data"


async def test_a_refusal_is_reported_clearly():
    rig = Rig()
    rig.router.post("/im/send/msg/").respond(json=failed(28001007, "参数不合法"))
    async with rig.client:
        result = await rig.adapter.send_message(ACCOUNT, reply(text="hi"))
    assert not result.accepted and "Douyin refused the message" in result.detail and "28001007" in result.detail


@pytest.mark.parametrize(("message", "why"), [
    (reply(text="hi", reply_to=None), "body.reply_to"),
    (reply(text="hi", reply_to_at=(NOW - timedelta(hours=30)).isoformat()), "outside the reply window"),
    (reply(content_type="video", item_id="v"), "text (body.text), image"),
    (reply(text=""), "text (body.text), image"),
])
async def test_what_cannot_be_sent_is_refused_without_calling_douyin(message, why):
    rig = Rig()
    rig.router.assert_all_called = False
    send = rig.router.post("/im/send/msg/")
    async with rig.client:
        result = await rig.adapter.send_message(ACCOUNT, message)
    assert not result.accepted and why in result.detail and not send.called


# -- 来客 member cards -------------------------------------------------------------------------

def card(member_id: int, open_id: str | None, balance: int, level: int) -> MemberCard:
    return MemberCard(member_id=member_id, platform="douyin", account_id="ent", card_no=open_id, balance=balance,
                      level=level)


async def test_a_card_push_sends_cents_and_level_with_the_client_token():
    rig = Rig()
    token = rig.router.post("/oauth/client_token/").respond(json={"data": {"access_token": "clt.app",
                                                                           "expires_in": 7200, **OK},
                                                                  "message": "success"})
    update = rig.router.post("/goodlife/v1/member/user/update/").respond(json=ok())
    async with rig.client:
        first = await rig.adapter.push_card(ACCOUNT, card(1, "fan-1", 1234, 2))
        second = await rig.adapter.push_card(ACCOUNT, card(1, "fan-1", 1234, 2))  # a retry
    req = token.calls.last.request
    assert len(token.calls) == 1 and req.headers["content-type"] == "application/json"
    assert json.loads(req.content) == {"client_key": "awkey", "client_secret": "s3cret-value",
                                       "grant_type": "client_credential"}
    bodies = [json.loads(c.request.content) for c in update.calls]
    for call, body in zip(update.calls, bodies, strict=True):
        assert call.request.headers["access-token"] == "clt.app" and call.request.url.params == httpx.QueryParams()
        [member] = body["members"]
        assert isinstance(member.pop("update_time"), int)
        assert body == {"account_id": "7001", "members": [{"open_id": "fan-1", "points_amount_cent": 123400,
                                                             "user_level": 3}]}
    assert first.accepted and second.accepted and first.reference == "LOG1"
    # a second credential: stored apart from the user token, under "<account>#client"
    assert rig.token("ent#client").access_token == "clt.app" and rig.token("ent") is None


async def test_cards_go_in_batches_of_five_and_a_card_without_open_id_is_not_sent():
    rig = Rig(member_token="user", level_offset=0)
    update = rig.router.post("/goodlife/v1/member/user/update/").respond(json=ok())
    cards = [card(i, f"fan-{i}", i, 20 if i == 3 else 0) for i in range(1, 8)] + [card(9, None, 5, 1)]
    async with rig.client:
        results = await rig.adapter.update_members(ACCOUNT, cards)
    sizes = [len(json.loads(c.request.content)["members"]) for c in update.calls]
    assert sizes == [5, 2] and all(c.request.headers["access-token"] == "act.configured" for c in update.calls)
    levels = [m["user_level"] for c in update.calls for m in json.loads(c.request.content)["members"]]
    assert levels == [1, 1, 10, 1, 1, 1, 1]  # clamped into Douyin's 1..10
    assert [r.accepted for r in results] == [True] * 7 + [False] and "card_no" in results[-1].detail


async def test_no_merchant_configured_is_a_config_error():
    rig = Rig(life_account_id=None)
    rig.router.assert_all_called = False
    async with rig.client:
        with pytest.raises(hub.PlatformConfigError, match="life_account_id"):
            await rig.adapter.push_card(ACCOUNT, card(1, "fan-1", 1, 1))


async def test_client_token_throttling_is_a_rate_limit():
    rig = Rig()
    rig.router.post("/oauth/client_token/").respond(json={"data": {"error_code": 10020, "description": "频率"},
                                                          "message": "error"})
    rig.router.assert_all_called = False
    async with rig.client:
        with pytest.raises(hub.RateLimited) as caught:
            await rig.adapter.push_card(ACCOUNT, card(1, "fan-1", 1, 1))
    assert caught.value.retry_after == 300.0
