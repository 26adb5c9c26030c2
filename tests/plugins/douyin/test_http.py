"""Every Douyin request the adapter makes, pinned with respx: method, path, query, headers, body."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
import respx

import hub
from hub.platform.tokens import MemoryTokenStore
from hub.platform.client import build_client
from hub.platform.retry import RetryPolicy
from plugins.douyin import DouyinAdapter
from plugins.douyin.auth import DouyinAuth
from schemas import Account, Gender, MemberCard, Message

BASE = "https://open.douyin.com"
ACCOUNT = Account(platform="douyin", account_id="ent")
NOW = datetime.now(UTC)
OK = {"error_code": 0, "description": ""}


def ok(data=None, **top):
    return {"data": {**(data or {}), **OK}, "extra": {"error_code": 0, "sub_error_code": 0, "logid": "LOG1"}, **top}


def failed(code, description="nope"):
    return {"data": {"error_code": code, "description": description},
            "extra": {"error_code": code, "description": description, "sub_error_code": 0}}


class Rig:
    def __init__(self, retry=None, **overrides):
        options = {"client_key": "awkey", "client_secret": "s3cret-value", "open_id": "ent-open",
                   "access_token": "act.configured", "refresh_token": "rft.configured",
                   "access_token_expires_at": NOW + timedelta(days=10),
                   "refresh_token_expires_at": NOW + timedelta(days=29), "life_account_id": "7001",
                   **overrides}
        self.router = respx.Router(base_url=BASE, assert_all_called=True)
        self.client = build_client(DouyinAdapter, "ent", base_url=BASE, retry=retry or RetryPolicy(attempts=1),
                                   transport=httpx.MockTransport(self.router.async_handler))
        self.adapter = DouyinAdapter(config=DouyinAdapter.Config(**options), client=self.client)
        self.client.adapter = self.adapter
        self.store = MemoryTokenStore()
        self.adapter.account_id, self.adapter.token_store = "ent", self.store  # as the hub sets them
        self.client.auth = DouyinAuth(self.adapter, self.store, "ent")

    def token(self, key="ent"):
        return self.store.load("douyin", key)


def form(request: httpx.Request) -> dict[str, str]:
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    return {k: v[0] for k, v in parse_qs(request.content.decode(), keep_blank_values=True).items()}


FAN = {"open_id": "fan-1", "union_id": "u-1", "nickname": "张伟", "avatar": "https://x/1.jpeg", "city": "上海",
       "province": "上海", "country": "中国", "gender": "1"}


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


# -- tokens ------------------------------------------------------------------------------------

async def test_an_unknown_expiry_refreshes_first_with_the_documented_form():
    rig = Rig(access_token_expires_at=None)
    refresh = rig.router.post("/oauth/refresh_token/").respond(json={"data": {
        "access_token": "act.new", "expires_in": "1296000", "refresh_expires_in": "2000000",
        "refresh_token": "rft.configured", "open_id": "ent-open", "scope": "fans.list", **OK}, "message": "success"})
    fans = rig.router.get("/fans/list/").respond(json=ok({"list": [], "has_more": False}))
    async with rig.client:
        await rig.adapter.fetch_fans(ACCOUNT, None)
    req = refresh.calls.last.request
    assert req.method == "POST" and req.url.params == httpx.QueryParams()
    assert form(req) == {"client_key": "awkey", "grant_type": "refresh_token", "refresh_token": "rft.configured"}
    assert "access-token" not in req.headers
    assert fans.calls.last.request.headers["access-token"] == "act.new"
    token = rig.token()
    assert token.access_token == "act.new" and token.extra["renewals"] == 0
    assert timedelta(days=14) < token.expires_at - NOW < timedelta(days=16)
    assert timedelta(days=23) < token.refresh_expires_at - NOW < timedelta(days=24)


async def test_an_expired_token_code_mid_flight_refreshes_once_and_resends():
    rig = Rig()
    rig.router.post("/oauth/refresh_token/").respond(json={"data": {"access_token": "act.2", "expires_in": 1296000,
                                                                    **OK}, "message": "success"})
    answers = [failed(28001008, "access_token过期"), ok({"list": [FAN], "has_more": False})]
    seen = []  # the flow re-sends the same request object, so headers are read as it goes out

    def answer(request):
        seen.append(request.headers["access-token"])
        return httpx.Response(200, json=answers[len(seen) - 1])

    rig.router.get("/fans/list/").mock(side_effect=answer)
    async with rig.client:
        page = await rig.adapter.fetch_fans(ACCOUNT, None)
    assert seen == ["act.configured", "act.2"]
    assert len(page.items) == 1 and rig.token().refresh_token == "rft.configured"  # kept when not returned


async def test_the_refresh_token_is_renewed_before_it_runs_out_and_the_renewal_is_counted():
    rig = Rig(refresh_token_expires_at=NOW + timedelta(days=3), renewals_used=2)
    renew = rig.router.post("/oauth/renew_refresh_token/").respond(json={"data": {
        "refresh_token": "rft.renewed", "expires_in": "2592000", **OK}, "message": "success"})
    fans = rig.router.get("/fans/list/").respond(json=ok({"list": [], "has_more": False}))
    async with rig.client:
        await rig.adapter.fetch_fans(ACCOUNT, None)
        await rig.adapter.fetch_fans(ACCOUNT, None)  # renewed once, not again
    assert len(renew.calls) == 1
    assert form(renew.calls.last.request) == {"client_key": "awkey", "refresh_token": "rft.configured"}
    token = rig.token()
    assert (token.refresh_token, token.extra["renewals"], token.access_token) == ("rft.renewed", 3, "act.configured")
    assert timedelta(days=29) < token.refresh_expires_at - NOW < timedelta(days=31)
    assert len(fans.calls) == 2


async def test_no_renewal_is_attempted_past_the_limit_and_the_operator_is_warned(caplog):
    caplog.set_level(logging.WARNING, "siyu.douyin")
    rig = Rig(access_token_expires_at=None, refresh_token_expires_at=NOW + timedelta(days=3), renewals_used=5)
    rig.router.post("/oauth/refresh_token/").respond(json={"data": {"access_token": "act.9", "expires_in": 1296000,
                                                                    **OK}, "message": "success"})
    rig.router.get("/fans/list/").respond(json=ok({"list": [], "has_more": False}))
    async with rig.client:
        await rig.adapter.fetch_fans(ACCOUNT, None)
    assert "no refresh-token renewals left" in caplog.text and "authorise the app again" in caplog.text
    for secret in ("act.9", "rft.configured", "act.configured", "s3cret-value"):
        assert secret not in caplog.text


async def test_an_expired_refresh_token_asks_for_re_authorisation():
    rig = Rig(access_token_expires_at=None)
    rig.router.post("/oauth/refresh_token/").respond(json={"data": {"error_code": 10010,
                                                                    "description": "refresh_token过期"},
                                                           "message": "error"})
    async with rig.client:
        with pytest.raises(hub.PlatformConfigError) as caught:
            await rig.adapter.fetch_fans(ACCOUNT, None)
    assert caught.value.code == 10010 and "rft.configured" not in str(caught.value)


async def test_a_re_authorised_configuration_wins_over_the_stored_token():
    rig = Rig()
    rig.store.save("douyin", "ent", hub.platform.auth.Token("act.stale", NOW + timedelta(days=5), "rft.old",
                                                    NOW + timedelta(days=20), {"renewals": 4, "seed": "older"}))
    fans = rig.router.get("/fans/list/").respond(json=ok({"list": [], "has_more": False}))
    async with rig.client:
        await rig.adapter.fetch_fans(ACCOUNT, None)
    assert fans.calls.last.request.headers["access-token"] == "act.configured"
    assert rig.token().extra["renewals"] == 0


# -- renewal policy ----------------------------------------------------------------------------

def renewed(token="rft.renewed"):
    return {"data": {"refresh_token": token, "expires_in": "2592000", **OK}, "message": "success"}


def oauth_failed(code, description="nope"):
    return {"data": {"error_code": code, "description": description}, "message": "error"}


def no_fans():
    return ok({"list": [], "has_more": False})


async def test_an_unknown_refresh_expiry_spends_no_renewal_and_the_refresh_answer_tells_it():
    rig = Rig(access_token_expires_at=None, refresh_token_expires_at=None)
    rig.router.assert_all_called = False
    renew = rig.router.post("/oauth/renew_refresh_token/").respond(json=renewed())
    rig.router.post("/oauth/refresh_token/").respond(json={"data": {
        "access_token": "act.new", "expires_in": 1296000, "refresh_expires_in": "864000", **OK}, "message": "success"})
    rig.router.get("/fans/list/").respond(json=no_fans())
    async with rig.client:
        await rig.adapter.fetch_fans(ACCOUNT, None)
        learnt = rig.token()
        assert not renew.called and learnt.refresh_token == "rft.configured" and learnt.extra["renewals"] == 0
        assert timedelta(days=9) < learnt.refresh_expires_at - NOW < timedelta(days=11)
        await rig.adapter.fetch_fans(ACCOUNT, None)  # now known, 10 days left: inside the window
    token = rig.token()
    assert len(renew.calls) == 1 and token.refresh_token == "rft.renewed" and token.extra["renewals"] == 1


async def test_outside_the_window_no_renewal_is_spent():
    rig = Rig(refresh_token_expires_at=NOW + timedelta(days=17))
    rig.router.assert_all_called = False
    renew = rig.router.post("/oauth/renew_refresh_token/").respond(json=renewed())
    rig.router.get("/fans/list/").respond(json=no_fans())
    async with rig.client:
        await rig.adapter.fetch_fans(ACCOUNT, None)
    assert not renew.called and rig.token().extra["renewals"] == 0


@pytest.mark.parametrize(("refusal", "code"), [
    (httpx.Response(200, json=oauth_failed(10004, "权限不足")), "code 10004"),  # no renew_refresh_token scope
    (httpx.Response(404, text="404 page not found"), "HTTP 404"),
], ids=["no-scope-10004", "http-404"])
async def test_a_refused_renewal_is_a_warning_with_the_date_and_waits_a_day(refusal, code, caplog):
    caplog.set_level(logging.WARNING, "siyu.douyin")
    expiry = NOW + timedelta(days=3)
    rig = Rig(refresh_token_expires_at=expiry)
    renew = rig.router.post("/oauth/renew_refresh_token/").mock(return_value=refusal)
    fans = rig.router.get("/fans/list/").respond(json=ok({"list": [FAN], "has_more": False}))
    async with rig.client:
        page = await rig.adapter.fetch_fans(ACCOUNT, None)
        await rig.adapter.fetch_fans(ACCOUNT, None)  # not asked again on the next request
    assert len(page.items) == 1 and len(fans.calls) == 2 and len(renew.calls) == 1
    [warning] = [r for r in caplog.records if "could not be renewed" in r.getMessage()]
    text = warning.getMessage()
    assert warning.levelno == logging.WARNING and expiry.date().isoformat() in text
    assert "authorise the app again" in text and code in text
    token = rig.token()
    assert token.refresh_token == "rft.configured" and token.refresh_expires_at == expiry
    assert token.extra["renewals"] == 0 and "renewal_refused_at" in token.extra
    for secret in ("rft.configured", "act.configured", "s3cret-value"):
        assert secret not in caplog.text
    # another process (a new flow over the same store) does not ask again within the day either
    again = Rig(refresh_token_expires_at=expiry)
    again.store = rig.store
    again.client.auth = DouyinAuth(again.adapter, again.store, "ent")
    again.router.assert_all_called = False
    renew_again = again.router.post("/oauth/renew_refresh_token/").respond(json=renewed())
    again.router.get("/fans/list/").respond(json=no_fans())
    async with again.client:
        await again.adapter.fetch_fans(ACCOUNT, None)
    assert not renew_again.called


async def test_a_day_after_a_refusal_the_renewal_is_tried_again():
    rig = Rig()
    refused = NOW - timedelta(days=1, minutes=1)
    seed = DouyinAuth(rig.adapter, rig.store, "ent").initial_token().extra["seed"]
    rig.store.save("douyin", "ent", hub.Token("act.configured", NOW + timedelta(days=5), "rft.configured",
                                              NOW + timedelta(days=2), {"renewals": 1, "seed": seed,
                                                                        "renewal_refused_at": refused.isoformat()}))
    renew = rig.router.post("/oauth/renew_refresh_token/").respond(json=renewed())
    rig.router.get("/fans/list/").respond(json=no_fans())
    async with rig.client:
        await rig.adapter.fetch_fans(ACCOUNT, None)
    token = rig.token()
    assert len(renew.calls) == 1 and token.refresh_token == "rft.renewed" and token.extra["renewals"] == 2
    assert "renewal_refused_at" not in token.extra


async def test_douyin_saying_the_renewals_are_used_up_ends_them(caplog):
    caplog.set_level(logging.WARNING, "siyu.douyin")
    rig = Rig(refresh_token_expires_at=NOW + timedelta(days=3), renewals_used=2)
    renew = rig.router.post("/oauth/renew_refresh_token/").respond(json=oauth_failed(10020, "超过刷新次数限制"))
    rig.router.get("/fans/list/").respond(json=no_fans())
    async with rig.client:
        await rig.adapter.fetch_fans(ACCOUNT, None)
        await rig.adapter.fetch_fans(ACCOUNT, None)
    assert len(renew.calls) == 1 and rig.token().extra["renewals"] == 5
    assert "no refresh-token renewals left" in caplog.text


async def test_a_dead_refresh_token_on_renewal_is_an_error_not_a_warning():
    rig = Rig(refresh_token_expires_at=NOW + timedelta(days=3))
    rig.router.post("/oauth/renew_refresh_token/").respond(json=oauth_failed(10010, "refresh_token过期"))
    rig.router.assert_all_called = False
    async with rig.client:
        with pytest.raises(hub.PlatformConfigError) as caught:
            await rig.adapter.fetch_fans(ACCOUNT, None)
    assert caught.value.code == 10010 and "authorise the app again" in str(caught.value)


async def test_a_busy_answer_to_a_renewal_is_retried_with_the_request():
    rig = Rig(retry=RetryPolicy(attempts=3, initial_wait=0, max_wait=0, jitter=0),
              refresh_token_expires_at=NOW + timedelta(days=3))
    renew = rig.router.post("/oauth/renew_refresh_token/").mock(side_effect=[
        httpx.Response(200, json=failed(28001005, "系统繁忙")), httpx.Response(200, json=renewed())])
    fans = rig.router.get("/fans/list/").respond(json=no_fans())
    async with rig.client:
        await rig.adapter.fetch_fans(ACCOUNT, None)
    assert len(renew.calls) == 2 and len(fans.calls) == 1 and rig.token().refresh_token == "rft.renewed"
    assert "renewal_refused_at" not in rig.token().extra


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
