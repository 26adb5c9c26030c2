"""Xiaohongshu tokens and request signing: one flow that keeps the shop's access token fresh and
signs every gateway call.

Tokens (doc 38 / 36).  The shop's main account authorises the app; the code is exchanged with
``oauth.getAccessToken`` (outside the hub: an operator configures the ``access_token`` and
``refresh_token`` it gave).  ``oauth.refreshToken`` (body ``refreshToken``) answers
``accessToken``, ``accessTokenExpiresAt``, ``refreshToken``, ``refreshTokenExpiresAt`` (absolute
**milliseconds**), ``sellerId`` and ``sellerName``.  The access token lives 7 days, the refresh
token 14.  While the access token has more than 30 minutes left, a refresh answers the **same**
tokens (with their expiries); within the last 30 minutes, or after expiry, it answers new ones.
Once the refresh token has expired, only a new authorisation helps.

So the flow:

* starts from the configured tokens with an unknown expiry, and refreshes first: the answer
  tells the real expiries (the same tokens come back when they still have time);
* refreshes again :attr:`XiaohongshuAuth.refresh_margin` (25 minutes, inside the platform's
  30-minute window) before the access token expires;
* refuses to send a refresh once the refresh token is known to be dead, and turns a refused
  refresh into a :class:`hub.PlatformConfigError` that says the shop must authorise the app
  again and when the refresh token expired (or expires);
* (the adapter warns, in the log once and in every page's notes, when the refresh token has less
  than ``warn_refresh_days`` left: :func:`refresh_warning`);
* puts ``appId``, ``version``, ``timestamp``, ``sign`` and ``accessToken`` into every request's
  JSON body (:meth:`XiaohongshuAuth.apply`), so that a retried request is signed afresh.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

import hub
from hub import Token, response_json
from plugins.xiaohongshu.wire import GATEWAY_PATH, METHODS, VERSION, as_int, request_sign, unwrap

__all__ = ["AUTHORIZE_URL", "XiaohongshuAuth", "reauthorise_hint", "refresh_warning", "signed_body"]

AUTHORIZE_URL = "https://ark.xiaohongshu.com/ark/authorization"
"""Where the shop's main account authorises the app (``?appId=…&redirectUri=…&state=…``)."""

def _millis(value: Any) -> datetime | None:
    millis = as_int(value, default=0)
    return datetime.fromtimestamp(millis / 1000, UTC) if millis > 0 else None


def signed_body(body: dict[str, Any], *, app_id: str, app_secret: str, access_token: str | None,
                timestamp: int | None = None) -> dict[str, Any]:
    """``body`` (holding ``method`` and business parameters) with the system parameters added:
    ``appId``, ``version``, ``timestamp`` (Unix seconds, a string as in the official example),
    ``sign`` and, for merchant calls, ``accessToken``.

    :param body: the business body; its ``method`` is signed.
    :param app_id: the app's id.
    :param app_secret: the app secret (goes into the digest only).
    :param access_token: the shop's token (unsigned), or ``None`` for a token call.
    :param timestamp: the Unix seconds to sign (now by default).
    """
    stamp = int(time.time()) if timestamp is None else timestamp
    method = str(body["method"])
    signed = {**body, "appId": app_id, "version": VERSION, "timestamp": str(stamp),
              "sign": request_sign(method, app_id, stamp, VERSION, app_secret)}
    if access_token is not None:
        signed["accessToken"] = access_token
    return signed


def reauthorise_hint(app_id: str, refresh_expires_at: datetime | None) -> str:
    """What an operator must do once the refresh token cannot be used, and since when."""
    now = datetime.now(UTC)
    if refresh_expires_at is None:
        when = "its refresh token's expiry is unknown (14 days after the authorisation that issued it)"
    elif refresh_expires_at <= now:
        when = f"the refresh token expired at {refresh_expires_at:%Y-%m-%d %H:%M} UTC"
    else:  # refused before its time: revoked, or the platform's clock is ahead of ours
        when = (f"the platform refused the refresh token now, although it was to expire at "
                f"{refresh_expires_at:%Y-%m-%d %H:%M} UTC")
    return (f"the shop's main account must authorise the app again ({AUTHORIZE_URL}?appId={app_id}) and the new "
            f"access_token and refresh_token be configured; {when}")


class XiaohongshuAuth(hub.GrantTokenAuth):
    """The shop's access token, sent (unsigned) in each request's body, and the request signature."""

    refresh_margin = timedelta(minutes=25)
    """Refresh this long before expiry: inside the platform's last 30 minutes, where a refresh
    gives new tokens (before that it gives the same ones back)."""

    # -- the hub's override points ---------------------------------------------------------

    def build_token_request(self, current: Token | None) -> httpx.Request:
        token = current or self.initial_token()
        config = self.adapter.config
        if token.refresh_expires_at is not None and token.refresh_expires_at <= datetime.now(UTC):
            raise hub.PlatformConfigError(reauthorise_hint(config.app_id, token.refresh_expires_at),
                                          platform=self.platform, account_id=self.account_id)
        body = signed_body({"method": METHODS["refresh_token"], "refreshToken": token.refresh_token or ""},
                           app_id=config.app_id, app_secret=config.app_secret.get_secret_value(), access_token=None)
        return self.adapter.client.build_request("POST", GATEWAY_PATH, json=body)

    def check_token_response(self, response: httpx.Response) -> None:
        """A refused refresh that retrying cannot mend means the grant is over: say so, and when."""
        try:
            self.check(response)
        except hub.PlatformError as exc:
            if exc.retryable:
                raise
            current = self._token
            expiry = current.refresh_expires_at if current is not None else None
            raise hub.PlatformConfigError(
                f"refreshing the access token was refused ({exc.code}); "
                + reauthorise_hint(self.adapter.config.app_id, expiry),
                platform=self.platform, account_id=self.account_id) from None

    def parse_token(self, response: httpx.Response, current: Token | None) -> Token:
        previous = current or self.initial_token()
        data = unwrap(response_json(response, platform=self.platform, account_id=self.account_id))
        try:
            access = str(data["accessToken"])
            expires_at = _millis(data["accessTokenExpiresAt"])
            refresh_expires_at = _millis(data.get("refreshTokenExpiresAt"))
        except (KeyError, ValueError) as exc:
            raise hub.PermanentError(f"malformed token answer ({type(exc).__name__})", platform=self.platform,
                                     account_id=self.account_id) from None
        if not access or expires_at is None:
            raise hub.PermanentError("token answer without accessToken or its expiry", platform=self.platform,
                                     account_id=self.account_id)
        extra = dict(previous.extra)
        if data.get("sellerId"):
            extra["seller_id"] = str(data["sellerId"])
        token = Token(access_token=access, expires_at=expires_at,
                      refresh_token=str(data.get("refreshToken") or previous.refresh_token or ""),
                      refresh_expires_at=refresh_expires_at or previous.refresh_expires_at, extra=extra)
        return token

    def apply(self, request: httpx.Request, token: Token) -> None:
        """Sign the request and put the access token in its JSON body (re-encoded)."""
        config = self.adapter.config
        body = json.loads(request.content or b"{}")
        signed = signed_body({k: v for k, v in body.items() if k not in ("accessToken", "sign", "timestamp")},
                             app_id=config.app_id, app_secret=config.app_secret.get_secret_value(),
                             access_token=token.access_token)
        content = json.dumps(signed, ensure_ascii=False, separators=(",", ":")).encode()
        request.stream = httpx.ByteStream(content)
        request._content = content  # noqa: SLF001 - httpx keeps the read body here
        request.headers["Content-Length"] = str(len(content))


def refresh_warning(token: Token, days: float, account_id: str) -> str | None:
    """The warning due when ``token``'s refresh token has less than ``days`` left, else ``None``."""
    expiry = token.refresh_expires_at
    if expiry is None or expiry - datetime.now(UTC) > timedelta(days=days):
        return None
    return (f"xiaohongshu {account_id}: the refresh token expires at {expiry:%Y-%m-%d %H:%M} UTC; unless a refresh "
            f"gives a new one before then, the shop must authorise the app again")
