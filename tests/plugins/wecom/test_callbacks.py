"""WeCom callbacks through the adapter: published vectors, rejections, contact-change events."""

from __future__ import annotations

import time

import httpx
import pytest
import respx

import hub
from hub.platform.tokens import MemoryTokenStore
from hub.platform.client import build_client
from plugins.wecom import WeComAdapter
from plugins.wecom.wire import MsgCrypt, envelope, message_xml
from schemas import Account, ContentType, Fan, FollowState, Message, from_epoch_seconds
from tests.plugins.wecom.test_crypto import TX_ECHO, TX_MSG

BASE = "https://qyapi.weixin.qq.com"
ACCOUNT = Account(platform="wecom", account_id="hq")
TX_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def adapter_for(router=None, **options):
    router = router or respx.Router()
    router.get(f"{BASE}/cgi-bin/gettoken").mock(
        return_value=httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "access_token": "T", "expires_in": 7200}))
    client = build_client(WeComAdapter, "hq", transport=httpx.MockTransport(router.async_handler))
    settings = {"corp_id": "wwCORP", "secret": "s", "token": "tok", "encoding_aes_key": KEY, **options}
    adapter = WeComAdapter(config=WeComAdapter.Config(**settings), client=client)
    client.adapter = adapter
    client.auth = WeComAdapter.auth_class(adapter, MemoryTokenStore(), "hq")
    return client, adapter


def tencent_adapter(**options):
    return adapter_for(corp_id="wx5823bf96d3bd56c7", token="QDG6eK", encoding_aes_key=TX_KEY,
                       callback_max_age=0, **options)


def query_of(vector):
    return {"msg_signature": vector["msg_signature"], "timestamp": vector["timestamp"], "nonce": vector["nonce"]}


def post_of(vector, to="wx5823bf96d3bd56c7"):
    return hub.WebhookRequest("POST", "/", query_of(vector), {}, envelope(to, vector["encrypted"], 218))


async def test_url_verification_answers_the_plaintext_only():
    client, adapter = tencent_adapter()
    request = hub.WebhookRequest("GET", "/", {**query_of(TX_ECHO), "echostr": TX_ECHO["encrypted"]}, {}, b"")
    async with client:
        result = await adapter.parse_webhook(ACCOUNT, request)
    assert (result.status_code, result.body, result.events, result.dedupe_key) == (200, b"1616140317555161061", (), None)


async def test_url_verification_survives_an_unescaped_plus():
    client, adapter = tencent_adapter()
    mangled = TX_ECHO["encrypted"].replace("+", " ")
    assert mangled != TX_ECHO["encrypted"]
    request = hub.WebhookRequest("GET", "/", {**query_of(TX_ECHO), "echostr": mangled}, {}, b"")
    async with client:
        assert (await adapter.parse_webhook(ACCOUNT, request)).body == b"1616140317555161061"


async def test_the_published_message_is_accepted_and_keyed_by_its_msgid():
    client, adapter = tencent_adapter()
    async with client:
        result = await adapter.parse_webhook(ACCOUNT, post_of(TX_MSG))
    assert result.dedupe_key == "msg:4561255354251345929" and result.events == [] and result.status_code == 200


@pytest.mark.parametrize("change, status", [
    ({"nonce": "1372623148"}, 401),
    ({"msg_signature": "0" * 40}, 401),
])
async def test_bad_signatures_are_rejected(change, status):
    client, adapter = tencent_adapter()
    async with client:
        with pytest.raises(hub.WebhookRejected) as info:
            await adapter.parse_webhook(ACCOUNT, post_of({**TX_MSG, **change}))
    assert info.value.status_code == status


async def test_another_receive_id_is_rejected():
    client, adapter = adapter_for(corp_id="wwSOMEONEELSE", token="QDG6eK", encoding_aes_key=TX_KEY, callback_max_age=0)
    async with client:
        with pytest.raises(hub.WebhookRejected) as info:
            await adapter.parse_webhook(ACCOUNT, post_of(TX_MSG))
    assert info.value.status_code == 400 and "-40005" in str(info.value)


async def test_a_stale_callback_is_rejected_when_an_age_limit_is_set():
    client, adapter = tencent_adapter()
    adapter.config = adapter.config.model_copy(update={"callback_max_age": 300})
    async with client:
        with pytest.raises(hub.WebhookRejected) as info:
            await adapter.parse_webhook(ACCOUNT, post_of(TX_MSG))
    assert info.value.status_code == 403


async def test_unconfigured_callbacks_and_entity_bodies_are_refused():
    client, adapter = adapter_for(token=None, encoding_aes_key=None)
    async with client:
        with pytest.raises(hub.WebhookRejected) as info:
            await adapter.parse_webhook(ACCOUNT, post_of(TX_MSG))
        assert info.value.status_code == 403
    client, adapter = tencent_adapter()
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>'
    async with client:
        with pytest.raises(hub.WebhookRejected):
            await adapter.parse_webhook(ACCOUNT, hub.WebhookRequest("POST", "/", query_of(TX_MSG), {}, bomb))


def change_event(change, staff="amy", customer="wmA", at=1700000500, **extra):
    crypt = MsgCrypt("tok", KEY, "wwCORP")
    event = {"ToUserName": "wwCORP", "FromUserName": "sys", "CreateTime": at, "MsgType": "event",
             "Event": "change_external_contact", "ChangeType": change, "UserID": staff, "ExternalUserID": customer,
             **extra}
    encrypted = crypt.encrypt(message_xml(event))
    timestamp, nonce = str(int(time.time())), "12345"
    query = {"msg_signature": crypt.sign(timestamp, nonce, encrypted), "timestamp": timestamp, "nonce": nonce}
    return hub.WebhookRequest("POST", "/", query, {}, envelope("wwCORP", encrypted, 1000002))


def detail_router(*answers):
    router = respx.Router()
    router.post(f"{BASE}/cgi-bin/externalcontact/get_corp_tag_list").mock(return_value=httpx.Response(
        200, json={"errcode": 0, "errmsg": "ok", "tag_group": [{"group_id": "g", "group_name": "G",
                                                                 "tag": [{"id": "t1", "name": "VIP"}]}]}))
    route = router.get(f"{BASE}/cgi-bin/externalcontact/get").mock(
        side_effect=[httpx.Response(200, json=a) for a in answers])
    return router, route


def detail(*staff):
    return {"errcode": 0, "errmsg": "ok", "next_cursor": "",
            "external_contact": {"external_userid": "wmA", "name": "阿明", "type": 1, "gender": 1, "unionid": "oU"},
            "follow_user": [{"userid": s, "createtime": 1700000000, "tag_id": [], "tags": [
                {"tag_id": "t1", "tag_name": "VIP", "group_name": "G", "type": 1}], "remark_mobiles": []} for s in staff]}


async def test_an_add_event_reads_the_customer_and_keeps_the_welcome_code():
    router, route = detail_router(detail("amy", "bob"))
    client, adapter = adapter_for(router)
    async with client:
        result = await adapter.parse_webhook(ACCOUNT, change_event("add_external_contact", WelcomeCode="WC1", State="s1"))
    fan, note = result.events
    assert route.calls[0].request.url.params["external_userid"] == "wmA"
    assert isinstance(fan, Fan) and [f.staff_id for f in fan.follows] == ["amy", "bob"] and fan.tags == ["VIP"]
    assert fan.union_id == "oU" and fan.follow_state is FollowState.FOLLOWING
    assert isinstance(note, Message) and note.content_type is ContentType.EVENT
    assert note.body == {"ChangeType": "add_external_contact", "UserID": "amy", "State": "s1", "WelcomeCode": "WC1"}
    assert result.dedupe_key.startswith("evt:") and result.body == b""


async def test_a_deleted_relation_is_marked_ended_and_the_others_stay():
    router, _ = detail_router(detail("bob"))  # the platform no longer lists amy
    client, adapter = adapter_for(router)
    async with client:
        result = await adapter.parse_webhook(ACCOUNT, change_event("del_follow_user", staff="amy"))
    fan = result.events[0]
    by_staff = {f.staff_id: f for f in fan.follows}
    assert by_staff["amy"].ended_at == from_epoch_seconds(1700000500) and by_staff["bob"].ended_at is None
    assert fan.follow_state is FollowState.FOLLOWING


async def test_the_last_relation_ending_marks_the_fan_unfollowed_without_blanking_it():
    router, _ = detail_router({"errcode": 84061, "errmsg": "not external contact"})
    client, adapter = adapter_for(router)
    async with client:
        result = await adapter.parse_webhook(ACCOUNT, change_event("del_external_contact", Source="DELETE_BY_TRANSFER"))
    fan, note = result.events
    assert fan.follow_state is FollowState.UNFOLLOWED and fan.unfollowed_at == from_epoch_seconds(1700000500)
    assert [(f.staff_id, f.ended_at is not None) for f in fan.follows] == [("amy", True)]
    assert "nickname" not in fan.model_fields_set  # the stored name is not overwritten
    assert note.body["Source"] == "DELETE_BY_TRANSFER"


async def test_transfer_fail_changes_no_fan():
    client, adapter = adapter_for()
    async with client:
        result = await adapter.parse_webhook(ACCOUNT, change_event("transfer_fail", FailReason="customer_refused"))
    [note] = result.events
    assert isinstance(note, Message) and note.body["FailReason"] == "customer_refused"


async def test_the_same_event_delivered_twice_has_one_dedupe_key():
    router, _ = detail_router(detail("amy"), detail("amy"))
    client, adapter = adapter_for(router)
    request = change_event("edit_external_contact")
    async with client:
        first = await adapter.parse_webhook(ACCOUNT, request)
        again = await adapter.parse_webhook(ACCOUNT, request)
    assert first.dedupe_key == again.dedupe_key
