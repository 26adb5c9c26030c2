"""The token flow: cached per account in the database, refreshed once under concurrency and
once when the platform rejects a token mid-flight; rotated refresh tokens persisted first."""

import asyncio
from datetime import timedelta

import httpx
import pytest
import respx

import hub
from hub.platform.auth import TokenAuth
from hub.platform.tokens import MemoryTokenStore, Token, expires_in
from hub.storage.tokens import DatabaseTokenStore
from hub.platform.errormap import response_json
from hub.platform.client import build_client
from schemas.tables import utcnow
from siyu_testplatform.adapter import TestplatAdapter


def open_testplat(transport, store):
    client = build_client(TestplatAdapter, "hq", base_url="https://tp.example", transport=transport)
    adapter = TestplatAdapter(config=TestplatAdapter.Config(client_id="id", client_secret="sec"), client=client)
    client.adapter = adapter
    client.auth = TestplatAdapter.auth_class(adapter, store, "hq")
    return client


def ok_page():
    return httpx.Response(200, json={"code": 0, "data": {"fans": [], "next_cursor": ""}})


async def test_fifty_concurrent_requests_on_an_expired_token_fetch_exactly_one():
    router = respx.Router(assert_all_called=True)
    token_route = router.post("https://tp.example/oauth/token").mock(
        side_effect=lambda request: httpx.Response(200, json={"code": 0, "access_token": "fresh", "expires_in": 7200})
    )
    fans = router.get("https://tp.example/v1/fans").mock(return_value=ok_page())
    store = MemoryTokenStore()
    store.save("testplat", "hq", Token("stale", utcnow() - timedelta(seconds=1)))
    async with open_testplat(httpx.MockTransport(router.async_handler), store) as client:
        await asyncio.gather(*(client.get("/v1/fans") for _ in range(50)))
    assert token_route.call_count == 1
    assert client.calls == 51  # the token request counts as a call too
    assert fans.call_count == 50
    assert all(call.request.headers["Authorization"] == "Bearer fresh" for call in fans.calls)
    # the token request is a form POST carrying the app's credentials, pinned exactly
    assert token_route.calls[0].request.content == b"client_id=id&client_secret=sec"
    assert store.load("testplat", "hq").access_token == "fresh"


async def test_a_token_rejected_mid_flight_is_refreshed_once_and_the_request_resent():
    router = respx.Router()
    router.post("https://tp.example/oauth/token").mock(side_effect=[
        httpx.Response(200, json={"code": 0, "access_token": "second", "expires_in": 7200}),
    ])
    sent = []
    answers = iter([httpx.Response(200, json={"code": 1001, "message": "access token expired"}), ok_page()])

    def fans(request):
        sent.append(request.headers["Authorization"])
        return next(answers)

    router.get("https://tp.example/v1/fans").mock(side_effect=fans)
    store = MemoryTokenStore()
    store.save("testplat", "hq", Token("first", expires_in(3600)))
    async with open_testplat(httpx.MockTransport(router.async_handler), store) as client:
        response = await client.get("/v1/fans")
        assert response.json()["code"] == 0
        assert client.auth.refreshes == 1
    assert sent == ["Bearer first", "Bearer second"]


async def test_bad_credentials_are_a_config_error_not_retried():
    router = respx.Router()
    route = router.post("https://tp.example/oauth/token").mock(
        return_value=httpx.Response(200, json={"code": 4003, "message": "bad credentials"}))
    async with open_testplat(httpx.MockTransport(router.async_handler), MemoryTokenStore()) as client:
        with pytest.raises(hub.PlatformConfigError, match="bad credentials"):
            await client.get("/v1/fans")
    assert route.call_count == 1


class RotatingAuth(TokenAuth):
    """Each refresh returns a new refresh token; the old one dies at once."""

    def build_token_request(self, current):
        return httpx.Request("POST", "https://rot.example/refresh", json={"refresh_token": current.refresh_token})

    def parse_token(self, response, current):
        body = response_json(response, platform="rot")
        return Token(body["access_token"], expires_in(7200), refresh_token=body["refresh_token"])


async def test_a_rotated_refresh_token_is_persisted_before_the_new_access_token_is_used(database_url):
    from hub.storage import database as storage

    engine = storage.open_database(database_url)
    store = DatabaseTokenStore(engine)
    store.save("rot", "hq", Token("old-access", utcnow() - timedelta(minutes=1), refresh_token="rt-1"))
    seen_in_store = []

    def handler(request):
        if request.url.path == "/refresh":
            assert request.content == b'{"refresh_token":"rt-1"}'
            return httpx.Response(200, json={"access_token": "new-access", "refresh_token": "rt-2"})
        seen_in_store.append(store.load("rot", "hq").refresh_token)
        return httpx.Response(200, json={})

    class Rot(hub.Adapter):
        platform = "rot"

    auth = RotatingAuth(Rot(config=Rot.Config(), client=None), store, "hq")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth) as client:
        await client.get("https://rot.example/things")
    assert seen_in_store == ["rt-2"]
    saved = store.load("rot", "hq")
    assert saved.access_token == "new-access" and saved.expires_at > utcnow()
    engine.dispose()


def test_tokens_never_print():
    token = Token("very-secret-access", expires_in(60), refresh_token="very-secret-refresh")
    assert "very-secret" not in repr(token) and "very-secret" not in str(token)
