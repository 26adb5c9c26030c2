"""Douyin tokens over respx: the refresh, the renewal policy and refused renewals, a re-authorisation."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import pytest

import hub
from hub.platform.retry import RetryPolicy
from plugins.douyin.auth import DouyinAuth
from tests.plugins.douyin.rig import ACCOUNT, FAN, NOW, OK, Rig, failed, form, ok


# -- refresh ----------------------------------------------------------------------------------

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
    rig.store.save("douyin", "ent", hub.Token("act.stale", NOW + timedelta(days=5), "rft.old",
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


