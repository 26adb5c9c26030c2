"""Kuaishou tokens and request signing: one ``httpx.Auth`` that does both.

The shop's authorisation gives an access token (48 hours) and a refresh token (about 180 days).
``POST /oauth2/refresh_token`` (form ``grant_type=refresh_token``, ``refresh_token``, ``app_id``,
``app_secret``) returns a new access token **and a new refresh token**: the old refresh token dies
within 5 minutes and the new one keeps the old one's expiry.  So every rotation is persisted
before the new token is used (the hub's :class:`hub.TokenAuth` saves it first), and when the
refresh token nears its end a warning names the date by which the shop must authorise the app
again.  A refresh token that is past its expiry, or that Kuaishou refuses, ends the account's sync
with a :class:`hub.PlatformConfigError` saying so.

Every API request is signed here, after the token is put on it: :meth:`KuaishouAuth.apply` adds
``access_token`` to the request's parameters (query string for GET, form body for POST) and the
``sign`` over all of them (:func:`plugins.kuaishou.wire.sign`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

import hub
from hub import Token, expires_in, response_json
from plugins.kuaishou.wire import REFRESH_TOKEN_PATH, as_int, sign

__all__ = ["ACCESS_TOKEN_LIFETIME", "REAUTHORISE_CODES", "KuaishouAuth", "reauthorise_message"]

log = logging.getLogger("siyu.kuaishou")

ACCESS_TOKEN_LIFETIME = 172800
"""Seconds an access token lives when the answer does not say (48 hours)."""

REAUTHORISE_CODES = frozenset({100200102, 100200105, 100200113})
"""Refresh answers after which only a new authorisation helps: access_denied (refresh token
discarded, authorisation revoked), invalid_grant, refresh_token 过期."""

def _day(moment: datetime | None) -> str:
    return moment.astimezone(UTC).date().isoformat() if moment else "an unknown date"


def reauthorise_message(refresh_expires_at: datetime | None, *, refused: bool) -> str:
    """The one-line error that ends an account's sync when its refresh token is finished."""
    if refused:
        return (f"Kuaishou refused the refresh token (its expiry: {_day(refresh_expires_at)}): the shop must "
                "authorise the app again, then put the new access_token and refresh_token in siyu.toml")
    return (f"the refresh token expired on {_day(refresh_expires_at)}: the shop must authorise the app again, "
            "then put the new access_token and refresh_token in siyu.toml")


class KuaishouAuth(hub.GrantTokenAuth):
    """The shop's access token, refreshed with a rotating refresh token; signs every request."""

    refresh_margin = timedelta(minutes=30)

    # -- the token ---------------------------------------------------------------------------

    def build_token_request(self, current: Token | None) -> httpx.Request:
        token = current or self.initial_token()
        if token.refresh_expires_at is not None and token.refresh_expires_at <= datetime.now(UTC):
            raise hub.PlatformConfigError(reauthorise_message(token.refresh_expires_at, refused=False),
                                          platform=self.platform, account_id=self.account_id)
        config = self.adapter.config
        return self.adapter.client.build_request(
            "POST", REFRESH_TOKEN_PATH,
            data={"grant_type": "refresh_token", "refresh_token": token.refresh_token or "",
                  "app_id": config.app_key, "app_secret": config.app_secret.get_secret_value()},
        )

    def check_token_response(self, response: httpx.Response) -> None:
        try:
            self.check(response)
        except hub.PlatformError as exc:
            if exc.code in REAUTHORISE_CODES:
                current = self._token or self.initial_token()
                raise hub.PlatformConfigError(reauthorise_message(current.refresh_expires_at, refused=True),
                                              platform=self.platform, account_id=self.account_id,
                                              code=exc.code) from None
            raise

    def parse_token(self, response: httpx.Response, current: Token | None) -> Token:
        body = response_json(response, platform=self.platform, account_id=self.account_id)
        previous = current or self.initial_token()
        try:
            access = str(body["access_token"])
            refresh = str(body["refresh_token"])
            lifetime = as_int(body.get("expires_in"), default=ACCESS_TOKEN_LIFETIME)
            refresh_lifetime = as_int(body.get("refresh_token_expires_in"), default=-1)
        except (KeyError, TypeError, ValueError) as exc:
            raise hub.PermanentError(f"malformed refresh answer ({type(exc).__name__})", platform=self.platform,
                                     account_id=self.account_id, endpoint=REFRESH_TOKEN_PATH) from None
        # the new refresh token inherits the old one's expiry: never extend a known one
        candidates = [t for t in (previous.refresh_expires_at,
                                  expires_in(refresh_lifetime) if refresh_lifetime >= 0 else None) if t]
        token = Token(access_token=access, expires_at=expires_in(lifetime), refresh_token=refresh,
                      refresh_expires_at=min(candidates) if candidates else None, extra=dict(previous.extra))
        log.info("kuaishou %s: access token refreshed; the refresh token rotated (expires %s)",
                 self.account_id, _day(token.refresh_expires_at))
        self._warn_if_running_out(token)
        return token

    def _warn_if_running_out(self, token: Token) -> None:
        if token.refresh_expires_at is None:
            return
        left = token.refresh_expires_at - datetime.now(UTC)
        if left < timedelta(days=self.adapter.config.refresh_warn_days):
            log.warning("kuaishou %s: the refresh token expires on %s (in %d day(s)); the shop must authorise the "
                        "app again before then", self.account_id, _day(token.refresh_expires_at),
                        max(0, left.days))

    # -- signing -----------------------------------------------------------------------------

    def apply(self, request: httpx.Request, token: Token) -> None:
        """Add ``access_token`` and ``sign`` to the request's parameters (query or form body),
        with a fresh ``timestamp`` (the request may be a retry)."""
        if request.method == "GET":
            params = self._signed(request.url.params.multi_items(), token)
            request.url = request.url.copy_with(query=urlencode(params).encode("ascii"))
            return
        form = self._signed(parse_qsl(request.content.decode("utf-8"), keep_blank_values=True), token)
        body = urlencode(form).encode("utf-8")
        request.stream = httpx.ByteStream(body)
        request._content = body  # noqa: SLF001 - httpx keeps the read body here
        request.headers["Content-Length"] = str(len(body))
        request.headers["Content-Type"] = "application/x-www-form-urlencoded"

    def _signed(self, pairs: Any, token: Token) -> dict[str, str]:
        config = self.adapter.config
        params = {k: v for k, v in pairs if k not in ("access_token", "sign")}
        if "timestamp" in params:
            params["timestamp"] = str(self.adapter.now_ms())
        params["access_token"] = token.access_token
        params["sign"] = sign(params, config.sign_secret.get_secret_value(), params.get("signMethod", config.sign_method))
        return params
