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


async def parse_and_complete(adapter, request):
    """What a contact change becomes: the stored note, then (after the answer) the fan the follow-up reads."""
    result = await adapter.parse_webhook(ACCOUNT, request)
    fans = await adapter.complete_webhook(ACCOUNT, result.follow_up) if result.follow_up is not None else []
    return result, [*fans, *result.events]


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
        result, (fan, note) = await parse_and_complete(
            adapter, change_event("add_external_contact", WelcomeCode="WC1", State="s1"))
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
        _, (fan, _note) = await parse_and_complete(adapter, change_event("del_follow_user", staff="amy"))
    by_staff = {f.staff_id: f for f in fan.follows}
    assert by_staff["amy"].ended_at == from_epoch_seconds(1700000500) and by_staff["bob"].ended_at is None
    assert fan.follow_state is FollowState.FOLLOWING


async def test_the_last_relation_ending_marks_the_fan_unfollowed_without_blanking_it():
    router, _ = detail_router({"errcode": 84061, "errmsg": "not external contact"})
    client, adapter = adapter_for(router)
    async with client:
        _, (fan, note) = await parse_and_complete(
            adapter, change_event("del_external_contact", Source="DELETE_BY_TRANSFER"))
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


# -- store before calling out; unsigned work bounded; key formats -----------------------------

FAST = {"attempts": 2, "initial_wait": 0.01, "max_wait": 0.02, "jitter": 0.0}


def receiver_app(database_url, engine, handler, **options):
    from hub.config import parse_settings
    from hub.plugins import load_plugins
    from hub.webhooks.receiver import create_app

    host = load_plugins()
    raw = {"database": {"url": database_url}, "security": {"phone_key": "test-phone-key-0123456789abcdef"},
           "retry": FAST, "accounts": [{"platform": "wecom", "id": "hq", "corp_id": "wwCORP", "secret": "s",
                                         "token": "tok", "encoding_aes_key": KEY, "callback_max_age": 300}]}
    settings = parse_settings(raw, host)
    return create_app(host, settings, engine, transport=httpx.MockTransport(handler),
                      **{"apply_pending_on_start": False, **options})


class Upstream:
    """The corp API as a mock: counts calls to externalcontact/get, down until told otherwise."""

    def __init__(self) -> None:
        self.down = True
        self.customer_reads = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/gettoken"):
            return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "access_token": "T", "expires_in": 7200})
        if path.endswith("/externalcontact/get"):
            self.customer_reads += 1
        if self.down:
            return httpx.Response(500, text="down")
        if path.endswith("/get_corp_tag_list"):
            return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "tag_group": []})
        return httpx.Response(200, json=detail("amy"))


async def post_to(app, request, times=1):
    statuses = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
        for _ in range(times):
            response = await client.post("/webhooks/wecom/hq", params=dict(request.query), content=request.body)
            statuses.append(response.status_code)
    return statuses


def event_rows(engine):
    import sqlalchemy as sa

    from schemas.tables import WebhookEventRow

    table = WebhookEventRow.__table__
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table)).mappings()]


async def test_a_contact_change_is_stored_when_the_api_is_down_and_completed_later(database_url, engine):
    import sqlalchemy as sa

    from hub.webhooks.process import process_pending
    from schemas.tables import FanRow

    upstream = Upstream()
    app = receiver_app(database_url, engine, upstream)
    assert await post_to(app, change_event("add_external_contact", WelcomeCode="WC1")) == [200]
    await app.state.receiver.aclose()
    [event] = event_rows(engine)
    assert event["status"] == "received" and event["error"].startswith("follow-up:")  # kept, not lost
    upstream.down = False
    receiver = app.state.receiver
    summary = await process_pending(receiver.host, receiver.settings, engine, transport=httpx.MockTransport(upstream))
    assert summary["processed"] == 1
    [event] = event_rows(engine)
    assert event["status"] == "processed"
    with engine.connect() as conn:
        fan = conn.execute(sa.select(FanRow.__table__).where(FanRow.__table__.c.platform_uid == "wmA")).mappings().one()
    assert fan["follow_state"] == "following"


async def test_replays_inside_the_window_cost_no_upstream_call(database_url, engine):
    upstream = Upstream()
    upstream.down = False
    app = receiver_app(database_url, engine, upstream)
    request = change_event("edit_external_contact")
    statuses = await post_to(app, request, times=50)
    await app.state.receiver.aclose()
    assert statuses == [200] * 50
    assert upstream.customer_reads == 1 and len(event_rows(engine)) == 1


def nested_xml(size: int = 840 * 1024) -> bytes:
    depth = size // 7
    return b"<xml>" + b"<a>" * depth + b"</a>" * depth + b"</xml>"


def test_deep_xml_is_refused_at_the_depth_limit_without_reading_on():
    from plugins.wecom.wire import MAX_XML_DEPTH, XmlError, parse_flat

    # past the limit the body is not XML at all: a parser that read on would call it unreadable
    body = b"<xml>" + b"<a>" * (MAX_XML_DEPTH + 1) + b"<<&& not xml" + nested_xml()
    with pytest.raises(XmlError, match="nests deeper"):
        parse_flat(body)


async def test_unsigned_nested_bodies_are_parsed_off_the_server_loop(database_url, engine, monkeypatch):
    import asyncio
    import threading

    import plugins.wecom.webhooks as wecom_webhooks

    parsed_on: list[bool] = []  # per parse: whether it ran on the event loop's thread
    loop_thread = threading.get_ident()
    parse = wecom_webhooks.parse_flat

    def watched(data, **kwargs):
        parsed_on.append(threading.get_ident() == loop_thread)
        return parse(data, **kwargs)

    monkeypatch.setattr(wecom_webhooks, "parse_flat", watched)
    app = receiver_app(database_url, engine, Upstream())
    body = nested_xml()
    query = {"msg_signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "1"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
        gate = asyncio.Semaphore(8)

        async def one():
            async with gate:
                return (await client.post("/webhooks/wecom/hq", params=query, content=body)).status_code

        statuses = await asyncio.gather(*(one() for _ in range(40)))
    await app.state.receiver.aclose()
    assert set(statuses) <= {400, 401} and event_rows(engine) == []
    assert len(parsed_on) == 40 and not any(parsed_on), "a large unverified body was parsed on the event loop"


@pytest.mark.parametrize("key", ["A" * 41, "A" * 44, "A" * 42 + "!", "A" * 42 + "="])
def test_a_malformed_encoding_aes_key_is_a_config_error(key):
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="43 base64"):
        WeComAdapter.Config(corp_id="wwCORP", secret="s", token="tok", encoding_aes_key=key)


def test_serve_completes_a_pending_contact_change_once_the_api_is_back(database_url, engine):
    from starlette.testclient import TestClient

    upstream = Upstream()
    app = receiver_app(database_url, engine, upstream, retry_pending_every=0.2)
    request = change_event("add_external_contact")
    with TestClient(app) as client:
        assert client.post("/webhooks/wecom/hq", params=dict(request.query), content=request.body).status_code == 200
        assert [e["status"] for e in event_rows(engine)] == ["received"]
        upstream.down = False
        deadline = time.monotonic() + 10
        while event_rows(engine)[0]["status"] != "processed" and time.monotonic() < deadline:
            time.sleep(0.1)
    assert [e["status"] for e in event_rows(engine)] == ["processed"]
