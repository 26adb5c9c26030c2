"""Xiaohongshu pushes: the header signature verified before anything is parsed, the documented
body or a 4xx, the documented acknowledgement, duplicates stored once, nothing half-stored."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
import sqlalchemy as sa

import hub
from hub.config import parse_settings
from hub.plugins import load_plugins
from hub.webhooks.receiver import create_app
from plugins.xiaohongshu import XiaohongshuAdapter
from schemas import Account
from schemas.tables import WebhookEventRow

APP = "app-push"
SECRET = "push-secret-0123"
SELLER = "5f00000000aaaaaaaaaaaaaa"
PATH = "/webhooks/xiaohongshu/shop"
ACCOUNT = Account(platform="xiaohongshu", account_id="shop")
ACK = {"success": True, "error_code": 0, "error_msg": ""}
STATUS = {"msgTag": "msg_fulfillment_status_change", "sellerId": SELLER,
          "data": json.dumps({"orderId": "P700000000000000001", "orderStatus": 4, "updateTime": 1_700_000_000_000})}


def adapter(**overrides) -> XiaohongshuAdapter:
    options = {"app_id": APP, "app_secret": SECRET, "access_token": "t", "refresh_token": "r", "seller_id": SELLER,
               **overrides}
    made = XiaohongshuAdapter(config=XiaohongshuAdapter.Config(**options), client=None)  # type: ignore[arg-type]
    made.account_id = "shop"
    return made


def sign(path: str, query: dict[str, str], stamp: str, secret: str = SECRET, app_key: str = APP) -> str:
    params = {**query, "app-key": app_key, "timestamp": stamp}
    text = path + "?" + "&".join(f"{k}={params[k]}" for k in sorted(params)) + secret
    return hashlib.md5(text.encode()).hexdigest()


def push(body: bytes | list, *, path: str = PATH, query: dict[str, str] | None = None, secret: str = SECRET,
         app_key: str = APP, signed_path: str | None = None, method: str = "POST", headers: bool = True):
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    stamp = "1700000000"
    head = {"content-type": "application/json"}
    if headers:
        head.update({"app-key": app_key, "timestamp": stamp,
                     "sign": sign(signed_path or path, query or {}, stamp, secret, app_key)})
    return hub.WebhookRequest(method=method, path=path, query=query or {}, headers=head, body=raw)


async def parse(request, **overrides) -> hub.WebhookResult:
    return await adapter(**overrides).parse_webhook(ACCOUNT, request)


# -- straight to the adapter ---------------------------------------------------------------------

async def test_a_signed_push_is_acknowledged_and_kept_as_a_raw_event_for_the_next_sync():
    private = {**STATUS, "msgTag": "msg_fulfillment_receiver_change",
               "data": json.dumps({"orderId": "P2", "receiverPhone": "13800138000", "receiverName": "张三",
                                   "updateTime": 1})}
    result = await parse(push([STATUS, private], query={"shop": "1"}))
    assert (result.status_code, json.loads(result.body), result.media_type) == (200, ACK, "application/json")
    assert result.events == () and result.dedupe_key.startswith("sha256:")
    assert result.raw["orders_changed"] == ["P2", "P700000000000000001"]
    assert result.raw["messages"][1]["data"] == {"orderId": "P2", "updateTime": 1}
    assert "13800138000" not in json.dumps(result.raw, ensure_ascii=False)


@pytest.mark.parametrize("change", [
    {"secret": "wrong-secret"}, {"app_key": "another-app"}, {"headers": False}, {"signed_path": "/elsewhere"},
])
async def test_a_bad_signature_is_rejected_before_the_body_is_read(change):
    with pytest.raises(hub.WebhookRejected) as caught:
        await parse(push(b"not even JSON", **change))
    assert caught.value.status_code == 401  # a 400 would mean the body was parsed first


async def test_a_changed_query_or_timestamp_breaks_the_signature():
    good = push([STATUS], query={"a": "1"})
    for tampered in (hub.WebhookRequest("POST", PATH, {"a": "2"}, good.headers, good.body),
                     hub.WebhookRequest("POST", PATH, good.query, {**good.headers, "timestamp": "1700000001"},
                                        good.body)):
        with pytest.raises(hub.WebhookRejected):
            await parse(tampered)


async def test_the_signed_path_is_configurable_for_a_proxy_in_front_of_the_hub():
    request = push([STATUS], signed_path="/xhs/push")
    with pytest.raises(hub.WebhookRejected):
        await parse(request)
    assert (await parse(request, push_sign_path="/xhs/push")).status_code == 200


@pytest.mark.parametrize("body", [
    b"not JSON", b"{}", b"[]", json.dumps({"msgTag": "x"}).encode(),
    json.dumps([{"msgTag": "msg_item_create", "sellerId": SELLER}]).encode(),
    json.dumps([{**STATUS, "extra": 1}]).encode(),
    json.dumps([{**STATUS, "data": {"orderId": "P1"}}]).encode(),  # data must be a JSON *string*
    json.dumps([{**STATUS, "data": "not json"}]).encode(),
    json.dumps([{**STATUS, "data": "[1]"}]).encode(),
    json.dumps([{**STATUS, "sellerId": "5f0000000000000000000000"}]).encode(),  # another shop
])
async def test_a_body_that_is_not_the_documented_array_is_a_400(body):
    with pytest.raises(hub.WebhookRejected) as caught:
        await parse(push(body))
    assert caught.value.status_code == 400


async def test_the_seller_learnt_from_the_token_answer_is_checked_when_none_is_configured():
    made = adapter(seller_id=None)
    ok = await made.parse_webhook(ACCOUNT, push([{**STATUS, "sellerId": "any"}]))
    assert ok.status_code == 200  # not known yet: not checked
    made.token_store.save("xiaohongshu", "shop", hub.Token("t", hub.expires_in(60), extra={"seller_id": SELLER}))
    with pytest.raises(hub.WebhookRejected):
        await made.parse_webhook(ACCOUNT, push([{**STATUS, "sellerId": "any"}]))


async def test_the_console_check_is_acknowledged_and_stores_nothing():
    for request in (push(b'{"test":true}'), push(b'{"test": true}', headers=False)):
        result = await parse(request)
        assert json.loads(result.body) == ACK and result.raw == {} and result.dedupe_key is None
    with pytest.raises(hub.WebhookRejected):
        await parse(push(b'{"test": true}', headers=False), accept_unsigned_test_push=False)


async def test_only_post_is_accepted():
    with pytest.raises(hub.WebhookRejected) as caught:
        await parse(push([STATUS], method="GET"))
    assert caught.value.status_code == 405


async def test_the_body_is_not_signed_so_a_push_only_marks_orders_for_the_next_sync():
    """The platform signs path, query and headers only: a changed order id verifies.  That is
    why a push never becomes a record; the sync reads the order from the API."""
    good = push([STATUS])
    changed = good.body.replace(b"P700000000000000001", b"P700000000000000002")
    result = await parse(hub.WebhookRequest("POST", PATH, {}, good.headers, changed))
    assert result.events == () and result.raw["orders_changed"] == ["P700000000000000002"]


# -- through the hub's receiver ------------------------------------------------------------------

@pytest.fixture
def receiver(database_url, engine):
    host = load_plugins()
    account = {"platform": "xiaohongshu", "id": "shop", "app_id": APP, "app_secret": SECRET, "access_token": "t",
               "refresh_token": "r", "seller_id": SELLER}
    settings = parse_settings({"database": {"url": database_url},
                               "security": {"phone_key": "test-phone-key-0123456789abcdef"},
                               "accounts": [account]}, host)
    return create_app(host, settings, engine, apply_pending_on_start=False)


def stored(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(WebhookEventRow.__table__)).mappings()]


async def test_through_the_receiver_duplicates_and_bad_pushes_store_nothing_twice_or_half(receiver, engine):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver), base_url="http://hub") as client:

        async def deliver(request) -> httpx.Response:
            return await client.post(PATH, params=dict(request.query), headers=dict(request.headers),
                                     content=request.body)

        good = push([STATUS, {**STATUS, "data": json.dumps({"orderId": "P9", "orderStatus": 7, "updateTime": 2})}])
        first, again = await deliver(good), await deliver(good)
        whitespace = hub.WebhookRequest("POST", PATH, {}, good.headers,
                                        json.dumps(json.loads(good.body), indent=2).encode())
        reformatted = await deliver(whitespace)
        forged = await deliver(push([STATUS], secret="nope"))
        half_bad = await deliver(push([STATUS, {**STATUS, "data": "oops"}]))
        test = await deliver(push(b'{"test": true}', headers=False))
    assert [first.status_code, again.status_code, reformatted.status_code] == [200, 200, 200]
    assert first.json() == again.json() == test.json() == ACK
    assert (forged.status_code, half_bad.status_code) == (401, 400)
    [event] = stored(engine)  # once, whatever the formatting; nothing of the bad ones
    assert event["payload"]["raw"]["orders_changed"] == ["P700000000000000001", "P9"]
    assert event["payload"]["records"] == []
