"""Each WeCom request pinned (method, path, query, body) with respx, and the error table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx

import hub
from hub.platform.tokens import MemoryTokenStore
from hub.platform.errormap import error_for_code
from hub.platform.client import build_client
from plugins.wecom import WeComAdapter
from plugins.wecom.auth import WeComAuth, WeComMpAuth
from plugins.wecom.wire import CAUSES, ERROR_CODES, MP_ERROR_CODES
from schemas import Account, ContentType, Direction, FollowState, Gender, Message, from_epoch_seconds

BASE = "https://qyapi.weixin.qq.com"
ACCOUNT = Account(platform="wecom", account_id="hq")
TOKEN_OK = {"errcode": 0, "errmsg": "ok", "access_token": "TOK1", "expires_in": 7200}


def open_wecom(router: respx.Router, **options):
    client = build_client(WeComAdapter, "hq", transport=httpx.MockTransport(router.async_handler))
    config = WeComAdapter.Config(corp_id="ww123", secret="s3cret", **options)
    adapter = WeComAdapter(config=config, client=client)
    client.adapter = adapter
    client.auth = WeComAdapter.auth_class(adapter, MemoryTokenStore(), "hq")
    return client, adapter


def contact(uid, **extra):
    return {"external_userid": uid, "name": f"name-{uid}", "avatar": "https://a/x.png", "type": 1, "gender": 2, **extra}


def follow(userid, createtime=1700000000, **extra):
    return {"userid": userid, "remark": "r", "description": "", "createtime": createtime, "remark_corp_name": "",
            "remark_mobiles": [], "oper_userid": userid, "add_way": 1, "state": "", **extra}


def ok(**body):
    return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", **body})


def test_rate_limits_and_base_url_are_the_documented_ones():
    assert WeComAdapter.default_base_url == BASE
    assert set(WeComAdapter.rate_limits.values()) == {(10_000.0, 60.0)}


async def test_customers_page_pins_every_request_and_maps_one_fan_per_customer():
    router = respx.Router()
    token = router.get(f"{BASE}/cgi-bin/gettoken").mock(return_value=httpx.Response(200, json=TOKEN_OK))
    users = router.get(f"{BASE}/cgi-bin/externalcontact/get_follow_user_list").mock(
        return_value=ok(follow_user=["zoe", "amy", "bob"]))
    tags = router.post(f"{BASE}/cgi-bin/externalcontact/get_corp_tag_list").mock(return_value=ok(tag_group=[
        {"group_id": "g1", "group_name": "等级", "tag": [{"id": "t1", "name": "VIP"}, {"id": "t2", "name": "新客"}]}]))
    batch = router.post(f"{BASE}/cgi-bin/externalcontact/batch/get_by_user").mock(return_value=ok(
        external_contact_list=[
            {"external_contact": contact("wmA", unionid="oU1"), "follow_info": follow("amy", tag_id=["t1"],
                                                                                      remark_mobiles=["138-0013-8000"])},
            {"external_contact": contact("wmA", unionid="oU1"), "follow_info": follow("bob", 1700000100, tag_id=["t2"])},
            {"external_contact": contact("wmB"), "follow_info": follow("bob", remark_mobiles=["0755-1", "13912345678"])},
        ],
        next_cursor="NEXT1"))
    client, adapter = open_wecom(router, complete_follows=False, chunk_size=2, page_size=100)
    async with client:
        page = await adapter.fetch_fans(ACCOUNT, None)
    # gettoken: GET with corpid + corpsecret in the query, nothing else
    assert dict(token.calls[0].request.url.params) == {"corpid": "ww123", "corpsecret": "s3cret"}
    assert users.calls[0].request.method == "GET"
    assert dict(users.calls[0].request.url.params) == {"access_token": "TOK1"}
    assert tags.call_count == 0  # a page writes no tag names: tags stay on each relation
    request = batch.calls[0].request
    assert dict(request.url.params) == {"access_token": "TOK1"}
    assert json.loads(request.content) == {"userid_list": ["amy", "bob"], "cursor": "", "limit": 100}
    assert json.loads(page.next_cursor) == {"u": "amy", "c": "NEXT1"}
    a, b = page.items
    assert (a.platform_uid, a.union_id, a.nickname, a.gender, a.follow_state) == (
        "wmA", "oU1", "name-wmA", Gender.FEMALE, FollowState.FOLLOWING)
    assert [(f.staff_id, f.tag_ids, f.ended_at) for f in a.follows] == [("amy", ["t1"], None), ("bob", ["t2"], None)]
    assert [f.followed_at for f in a.follows] == [from_epoch_seconds(1700000000), from_epoch_seconds(1700000100)]
    # a page holds some of a customer's relations: what sums up all of them is not written
    assert {"tags", "phone", "followed_at"}.isdisjoint(a.model_fields_set)
    assert a.other_phones == ["+8613800138000"]
    assert b.other_phones == ["+8613912345678"] and b.union_id is None  # the invalid landline is skipped


async def test_resuming_mid_chunk_and_moving_to_the_next_chunk():
    router = respx.Router()
    router.get(f"{BASE}/cgi-bin/gettoken").mock(return_value=httpx.Response(200, json=TOKEN_OK))
    router.get(f"{BASE}/cgi-bin/externalcontact/get_follow_user_list").mock(
        return_value=ok(follow_user=["amy", "bob", "cat"]))
    router.post(f"{BASE}/cgi-bin/externalcontact/get_corp_tag_list").mock(return_value=ok(tag_group=[]))
    batch = router.post(f"{BASE}/cgi-bin/externalcontact/batch/get_by_user").mock(side_effect=[
        ok(external_contact_list=[], next_cursor=""), ok(external_contact_list=[], next_cursor="")])
    client, adapter = open_wecom(router, chunk_size=2)
    async with client:
        page = await adapter.fetch_fans(ACCOUNT, json.dumps({"u": "amy", "c": "MID"}))
        assert json.loads(page.next_cursor) == {"u": "cat", "c": ""}
        last = await adapter.fetch_fans(ACCOUNT, page.next_cursor)
    assert json.loads(batch.calls[0].request.content)["cursor"] == "MID"
    assert json.loads(batch.calls[1].request.content)["userid_list"] == ["cat"]
    assert last.next_cursor is None


async def test_complete_follows_reads_each_customer_with_get_and_pages_past_500():
    router = respx.Router()
    router.get(f"{BASE}/cgi-bin/gettoken").mock(return_value=httpx.Response(200, json=TOKEN_OK))
    router.get(f"{BASE}/cgi-bin/externalcontact/get_follow_user_list").mock(return_value=ok(follow_user=["amy"]))
    router.post(f"{BASE}/cgi-bin/externalcontact/get_corp_tag_list").mock(return_value=ok(tag_group=[]))
    router.post(f"{BASE}/cgi-bin/externalcontact/batch/get_by_user").mock(return_value=ok(
        external_contact_list=[{"external_contact": contact("wmA"), "follow_info": follow("amy")}], next_cursor=""))
    detail = router.get(f"{BASE}/cgi-bin/externalcontact/get").mock(side_effect=[
        ok(external_contact=contact("wmA"), follow_user=[follow("amy", tags=[
            {"group_name": "g", "tag_name": "老客", "tag_id": "t9", "type": 1}])], next_cursor="C2"),
        ok(external_contact=contact("wmA"), follow_user=[follow("zed")], next_cursor=""),
    ])
    client, adapter = open_wecom(router, complete_follows=True)
    async with client:
        page = await adapter.fetch_fans(ACCOUNT, None)
    assert [dict(c.request.url.params) for c in detail.calls] == [
        {"external_userid": "wmA", "access_token": "TOK1"},
        {"external_userid": "wmA", "cursor": "C2", "access_token": "TOK1"}]
    [fan] = page.items
    assert [f.staff_id for f in fan.follows] == ["amy", "zed"] and fan.tags == ["老客"]


async def test_mass_send_creates_a_task_and_says_so():
    router = respx.Router()
    router.get(f"{BASE}/cgi-bin/gettoken").mock(return_value=httpx.Response(200, json=TOKEN_OK))
    send = router.post(f"{BASE}/cgi-bin/externalcontact/add_msg_template").mock(
        return_value=ok(fail_list=[], msgid="msgGCAAAXtWyujaWJHDDGi0mAcAAAAA"))
    client, adapter = open_wecom(router)
    message = Message(platform="wecom", account_id="hq", platform_msg_id="out-1", fan_uid="wmA",
                      direction=Direction.OUTBOUND, content_type=ContentType.TEXT,
                      body={"content": "会员日快乐", "sender": "amy"}, sent_at=from_epoch_seconds(1700000000))
    async with client:
        result = await adapter.send_message(ACCOUNT, message)
    assert json.loads(send.calls[0].request.content) == {
        "chat_type": "single", "external_userid": ["wmA"], "text": {"content": "会员日快乐"}, "sender": "amy"}
    assert result.accepted and result.reference == "msgGCAAAXtWyujaWJHDDGi0mAcAAAAA"
    assert "confirms it in the WeCom client" in result.detail


async def test_mass_send_to_an_invalid_customer_is_not_accepted():
    router = respx.Router()
    router.get(f"{BASE}/cgi-bin/gettoken").mock(return_value=httpx.Response(200, json=TOKEN_OK))
    router.post(f"{BASE}/cgi-bin/externalcontact/add_msg_template").mock(return_value=ok(fail_list=["wmA"], msgid="m"))
    client, adapter = open_wecom(router)
    message = Message(platform="wecom", account_id="hq", platform_msg_id="out-2", fan_uid="wmA",
                      direction=Direction.OUTBOUND, content_type=ContentType.TEXT, body={"content": "x"},
                      sent_at=from_epoch_seconds(1700000000))
    async with client:
        result = await adapter.send_message(ACCOUNT, message)
    assert not result.accepted and "1 recipient(s) in fail_list" in result.detail


async def test_welcome_message_uses_the_welcome_code():
    router = respx.Router()
    router.get(f"{BASE}/cgi-bin/gettoken").mock(return_value=httpx.Response(200, json=TOKEN_OK))
    welcome = router.post(f"{BASE}/cgi-bin/externalcontact/send_welcome_msg").mock(return_value=ok())
    client, adapter = open_wecom(router)
    message = Message(platform="wecom", account_id="hq", platform_msg_id="w-1", fan_uid="wmA",
                      direction=Direction.OUTBOUND, content_type=ContentType.TEXT,
                      body={"content": "欢迎", "welcome_code": "CALLBACK_CODE"}, sent_at=from_epoch_seconds(1))
    async with client:
        result = await adapter.send_message(ACCOUNT, message)
    assert json.loads(welcome.calls[0].request.content) == {"welcome_code": "CALLBACK_CODE", "text": {"content": "欢迎"}}
    assert result.accepted


@pytest.mark.parametrize("code", [40014, 42001, 41001])
async def test_token_codes_refresh_once_and_resend(code):
    router = respx.Router()
    token = router.get(f"{BASE}/cgi-bin/gettoken").mock(side_effect=[
        httpx.Response(200, json=TOKEN_OK), httpx.Response(200, json={**TOKEN_OK, "access_token": "TOK2"})])
    answers = iter([httpx.Response(200, json={"errcode": code, "errmsg": "token problem"}), ok(follow_user=["amy"])])
    sent = []

    def users(request):
        sent.append(request.url.params["access_token"])  # the request is re-sent, so read it now
        return next(answers)

    router.get(f"{BASE}/cgi-bin/externalcontact/get_follow_user_list").mock(side_effect=users)
    client, adapter = open_wecom(router)
    async with client:
        assert await adapter.follow_users() == ["amy"]
    assert token.call_count == 2
    assert sent == ["TOK1", "TOK2"]


@pytest.mark.parametrize("code", [40001, 40013, 60020, 48002])
async def test_configuration_codes_name_the_cause_and_are_not_retried(code):
    router = respx.Router()
    token = router.get(f"{BASE}/cgi-bin/gettoken").mock(
        return_value=httpx.Response(200, json={"errcode": code, "errmsg": "from ip: 10.1.2.3, hint: [x]"}))
    client, adapter = open_wecom(router)
    async with client:
        with pytest.raises(hub.PlatformConfigError) as info:
            await adapter.follow_users()
    assert token.call_count == 1 and not info.value.retryable
    assert CAUSES[code] in str(info.value) and "10.1.2.3" not in str(info.value) and "s3cret" not in str(info.value)


async def test_rate_limit_code_carries_the_documented_block_and_busy_is_transient():
    router = respx.Router()
    router.get(f"{BASE}/cgi-bin/gettoken").mock(return_value=httpx.Response(200, json=TOKEN_OK))
    router.get(f"{BASE}/cgi-bin/externalcontact/get_follow_user_list").mock(side_effect=[
        httpx.Response(200, json={"errcode": 45009, "errmsg": "api freq out of limit"}),
        httpx.Response(200, json={"errcode": -1, "errmsg": "system busy"})])
    client, adapter = open_wecom(router)
    async with client:
        with pytest.raises(hub.RateLimited) as limited:
            await adapter.follow_users()
    # a 45009 holds the whole account for its 60 s block: the next call goes through another one
    client, adapter = open_wecom(router)
    async with client:
        with pytest.raises(hub.TransientError):
            await adapter.follow_users()
    assert limited.value.retry_after == 60.0


@pytest.mark.parametrize("code, expected", [
    (40014, hub.TokenExpired), (42001, hub.TokenExpired), (41001, hub.TokenExpired),
    (40001, hub.PlatformConfigError), (40013, hub.PlatformConfigError), (60020, hub.PlatformConfigError),
    (48002, hub.PlatformConfigError), (-1, hub.TransientError), (45009, hub.RateLimited),
    (45033, hub.RateLimited), (84061, hub.PermanentError), (99999, hub.PermanentError),
])
def test_error_table(code, expected):
    error = error_for_code(ERROR_CODES, code, "m", platform="wecom")
    assert type(error) is expected
    assert code in CAUSES or code == 99999


def test_config_keeps_secrets_out_of_its_repr():
    config = WeComAdapter.Config(corp_id="ww1", secret="s3cret", token="tok", encoding_aes_key="A" * 43)
    assert "s3cret" not in repr(config) and "A" * 43 not in repr(config)


@pytest.mark.parametrize("code, expected", [
    (40001, hub.TokenExpired), (40014, hub.TokenExpired), (42001, hub.TokenExpired),
    (-1, hub.PermanentError), (45009, hub.PermanentError), (40058, hub.PermanentError),
])
def test_the_mp_credential_has_its_own_error_table(code, expected):
    """The 公众号's 40001 is "invalid credential" (refresh), the corp's a wrong secret (config)."""
    assert WeComMpAuth.error_codes is MP_ERROR_CODES and all(isinstance(k, int) for k in MP_ERROR_CODES)
    assert type(error_for_code(MP_ERROR_CODES, code, "m", platform="wecom")) is expected
    assert type(error_for_code(ERROR_CODES, 40001, "m", platform="wecom")) is hub.PlatformConfigError


def test_a_short_lived_token_is_refreshed_a_tenth_of_its_life_ahead():
    auth = WeComAuth(object(), MemoryTokenStore(), "hq")  # type: ignore[arg-type]
    now = datetime.now(UTC)

    def token(left, lifetime):
        return hub.Token(access_token="T", expires_at=now + timedelta(seconds=left), extra={"lifetime": lifetime})

    assert auth.is_fresh(token(1.5, 2)) and not auth.is_fresh(token(0.1, 2))  # margin 0.2 s
    assert auth.is_fresh(token(400, 7200)) and not auth.is_fresh(token(200, 7200))  # margin 5 min
    assert not auth.is_fresh(hub.Token(access_token="T", expires_at=now + timedelta(seconds=200)))
