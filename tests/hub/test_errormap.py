"""Platform faults map onto the hub's errors at one boundary, from each plugin's table."""

import httpx
import pytest

import hub
from hub.platform.errormap import check_response, error_for_code, parse_retry_after
from hub.errors import PlatformError
from hub.plugins import load_plugins

ALL_TABLES = [
    (name, code, entry)
    for name, info in sorted(load_plugins().platforms.items())
    for code, entry in info.adapter.error_codes.items()
]


@pytest.mark.parametrize(("platform", "code", "entry"), ALL_TABLES, ids=[f"{p}:{c}" for p, c, _ in ALL_TABLES])
def test_every_installed_error_table_lands_in_the_hierarchy(platform, code, entry):
    cls, block = entry if isinstance(entry, tuple) else (entry, None)
    assert issubclass(cls, PlatformError)
    error = error_for_code({code: entry}, code, "msg", platform=platform, account_id="a", endpoint="/x")
    assert type(error) is cls and error.code == code and error.platform == platform
    if block is not None:
        assert issubclass(cls, hub.RateLimited) and error.retry_after == block > 0


def test_the_walk_covers_at_least_the_test_platform():
    assert {p for p, _, _ in ALL_TABLES} >= {"testplat"}


class Coded(hub.Adapter):
    platform = "coded"
    error_codes = {7: hub.TokenExpired, 8: (hub.RateLimited, 60.0), 9: hub.TransientError}

    def error_code(self, response):
        body = response.json()
        return None if body.get("code", 0) == 0 else (body["code"], body.get("msg", ""))


def respond(status=200, json=None, headers=None, content=None):
    request = httpx.Request("GET", "https://api.example/v1/things?access_token=SECRET")
    kw = {"json": json} if content is None else {"content": content}
    return httpx.Response(status, headers=headers, request=request, **kw)


ADAPTER = Coded(config=Coded.Config(), client=None)


@pytest.mark.parametrize(
    ("response", "expected", "retry_after"),
    [
        (respond(json={"code": 7}), hub.TokenExpired, None),
        (respond(json={"code": 8}), hub.RateLimited, 60.0),
        (respond(json={"code": 8}, headers={"Retry-After": "3"}), hub.RateLimited, 3.0),
        (respond(json={"code": 9}), hub.TransientError, None),
        (respond(json={"code": 12345}), hub.PermanentError, None),
        (respond(429, json={}, headers={"Retry-After": "5"}), hub.RateLimited, 5.0),
        (respond(503, content=b"<html>"), hub.TransientError, None),
        (respond(401, json={}), hub.TokenExpired, None),
        (respond(403, json={}), hub.PlatformConfigError, None),
        (respond(404, json={}), hub.PermanentError, None),
    ],
)
def test_check_response_maps_status_then_body_code(response, expected, retry_after):
    with pytest.raises(expected) as info:
        check_response(ADAPTER, response, account_id="hq")
    assert info.value.endpoint == "/v1/things" and info.value.account_id == "hq"
    assert "SECRET" not in str(info.value)
    if expected is hub.RateLimited:
        assert info.value.retry_after == retry_after


def test_a_successful_response_passes():
    check_response(ADAPTER, respond(json={"code": 0, "data": []}))


def test_retryability_is_decided_by_the_class():
    assert hub.TransientError("x").retryable and hub.RateLimited("x").retryable
    assert not hub.PermanentError("x").retryable and not hub.PlatformConfigError("x").retryable
    assert not hub.TokenExpired("x").retryable  # the token flow refreshes it, once


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("0", 0.0), (None, None), ("soon", None), ("-3", 0.0)])
def test_retry_after_header(header, seconds):
    assert parse_retry_after(header) == seconds


class Enveloped(hub.Adapter):
    """Reads its code with hub.response_json, as the plugins do: a body that is not JSON raises."""

    platform = "enveloped"
    error_codes = {7: hub.TokenExpired}

    def error_code(self, response):
        body = hub.response_json(response, platform=self.platform)
        return None if body.get("code", 0) == 0 else (body["code"], "")


@pytest.mark.parametrize(("status", "expected", "message"), [
    (401, hub.TokenExpired, "HTTP 401"),      # an HTML error page: the status decides
    (404, hub.PermanentError, "HTTP 404"),
    (200, hub.PermanentError, "not valid JSON"),  # a success that is not the platform's body
])
def test_a_body_that_is_not_the_platforms_leaves_an_error_status_to_decide(status, expected, message):
    adapter = Enveloped(config=Enveloped.Config(), client=None)
    with pytest.raises(expected, match=message):
        check_response(adapter, respond(status, content=b"<html>not here</html>"), account_id="a")
