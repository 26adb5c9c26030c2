"""The per-account HTTP client: base URL, User-Agent, error mapping, faults, quiet logs."""

import logging

import httpx
import pytest
import respx

import hub
from hub.platform.client import build_client
from hub.platform.retry import RetryPolicy
from siyu_testplatform.adapter import TestplatAdapter


def client_with(router, base_url=None):
    client = build_client(TestplatAdapter, "hq", base_url=base_url, transport=httpx.MockTransport(router.async_handler))
    client.adapter = TestplatAdapter(config=TestplatAdapter.Config(client_id="i", client_secret="s"), client=client)
    return client


async def test_base_url_user_agent_and_a_clean_log(caplog):
    router = respx.Router(assert_all_called=True)
    route = router.get("https://override.example/v1/fans").respond(json={"code": 0})
    caplog.set_level(logging.INFO)  # everything a `siyu serve` log would show, httpx's own loggers included
    async with client_with(router, "https://override.example") as client:
        await client.get("/v1/fans", params={"access_token": "TOPSECRET", "mobile": "13800138000"})
    assert route.calls[0].request.headers["User-Agent"] == f"siyu-hub/{hub.__version__}"
    assert "GET /v1/fans 200" in caplog.text
    assert "TOPSECRET" not in caplog.text and "13800138000" not in caplog.text


async def test_without_base_url_the_platform_default_is_used():
    router = respx.Router(assert_all_called=True)
    router.get(f"{TestplatAdapter.default_base_url}/ping").respond(json={"code": 0})
    async with client_with(router) as client:
        await client.get("/ping")


@pytest.mark.parametrize(
    ("effect", "expected", "message"),
    [
        (httpx.ConnectTimeout("slow"), hub.TransientError, "timed out"),
        (httpx.ReadTimeout("slow"), hub.TransientError, "timed out"),
        (httpx.ConnectError("refused"), hub.TransientError, "connection failed"),
        (httpx.Response(200, json={"code": 4003, "message": "bad credentials"}), hub.PlatformConfigError, "bad credentials"),
        (httpx.Response(200, content=b"<html>oops"), hub.PermanentError, "not valid JSON"),
        (httpx.Response(502, content=b"<html>bad gateway"), hub.TransientError, "HTTP 502"),
    ],
)
async def test_faults_arrive_as_hub_errors_naming_platform_and_endpoint(effect, expected, message):
    router = respx.Router()
    router.get("https://p.example/v1/fans").mock(side_effect=[effect])
    async with client_with(router, "https://p.example") as client:
        with pytest.raises(expected, match=message) as info:
            await client.get("/v1/fans")
    assert info.value.platform == "testplat" and info.value.endpoint == "/v1/fans"


async def test_each_request_is_retried_on_its_own_and_a_rate_limit_holds_the_whole_account():
    import asyncio
    import time

    from hub.platform.retry import RetryPolicy

    sent: list[tuple[str, float]] = []

    def handler(request):
        sent.append((request.url.path, time.monotonic()))
        if len(sent) == 1:
            return httpx.Response(200, json={"code": 1002, "message": "over the limit"})  # testplat: 1 s block
        if request.url.path == "/flaky" and sum(1 for p, _ in sent if p == "/flaky") == 1:
            return httpx.Response(503, content=b"busy")
        return httpx.Response(200, json={"code": 0})

    policy = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.01, jitter=0, max_retry_after=0.4)
    client = build_client(TestplatAdapter, "hq", base_url="https://p.example", retry=policy,
                          transport=httpx.MockTransport(handler))
    client.adapter = TestplatAdapter(config=TestplatAdapter.Config(client_id="i", client_secret="s"), client=client)
    async with client:
        first = asyncio.ensure_future(client.get("/limited"))
        await asyncio.sleep(0.1)  # the limit was answered: the account is held for 0.4 s
        others = [client.get(f"/other{i}") for i in range(3)] + [client.get("/flaky")]
        await asyncio.gather(first, *others)
    started = sent[0][1]
    assert [p for p, _ in sent].count("/limited") == 2 and [p for p, _ in sent].count("/flaky") == 2
    assert all(p == "/limited" or at - started >= 0.38 for p, at in sent[1:]), sent
    assert client.retries.by_reason == {"RateLimited": 1, "TransientError": 1}
    assert client.calls == 7



async def test_a_request_that_succeeds_leaves_nothing_for_the_cycle_collector():
    """A sync sends a request a page, and the collector runs rarely during a sync
    (hub.sync.tuning): a response left in a reference cycle would hold its body and parsed JSON
    until then, and the retry machinery's objects would pile up.  Only the reference counts free
    what a successful request used."""
    import gc
    import weakref

    def platform(request: httpx.Request) -> httpx.Response:  # keeps no record of its calls, unlike a router
        return httpx.Response(200, json={"code": 0, "data": {"fans": [{"uid": "u1"}] * 100}})

    client = build_client(TestplatAdapter, "hq", base_url="https://p.example", transport=httpx.MockTransport(platform),
                          retry=RetryPolicy(attempts=3))
    client.adapter = TestplatAdapter(config=TestplatAdapter.Config(client_id="i", client_secret="s"), client=client)
    gc.disable()
    try:
        async with client:
            await client.get("/v1/fans")  # the connection and the client's lazy parts, once
            gc.collect()
            for _ in range(20):
                response = await client.get("/v1/fans")
                assert hub.response_json(response, platform="testplat")["data"]["fans"][0] == {"uid": "u1"}
            assert response.is_closed
            freed = weakref.ref(response)
            del response
            assert freed() is None
            assert gc.collect() == 0
    finally:
        gc.enable()
