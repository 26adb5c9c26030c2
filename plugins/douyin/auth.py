"""Douyin tokens: the enterprise account's user token (refreshed, its refresh token renewed) and
the app's ``client_token`` (a second credential).

User token (``act.…``), seeded from what an operator configured after authorising the app:

* ``POST /oauth/refresh_token/`` (form ``client_key``, ``grant_type=refresh_token``,
  ``refresh_token``) gives a new access token for 15 days and the refresh token's remaining life
  (``refresh_expires_in``, stored as ``Token.refresh_expires_at``); that expiry does not move.
* ``POST /oauth/renew_refresh_token/`` (form ``client_key``, ``refresh_token``; the app needs the
  ``renew_refresh_token`` scope) gives a new refresh token for 30 days and kills the old one.
  Douyin allows **5** renewals; after that the business user must authorise the app again.

The hub's :class:`hub.TokenAuth` refreshes the access token; :class:`DouyinAuth` adds the renewal
step in front of it, under this policy:

* a renewal is spent only when the refresh token's expiry is known and less than
  ``renew_within_days`` away, and renewals are left (counted in ``Token.extra["renewals"]``,
  persisted with every rotation); an unknown expiry is never renewed "to learn it": the next
  refresh answer tells it;
* a refused renewal (10004: the app lacks the ``renew_refresh_token`` scope; HTTP 404; any other
  refusal that retrying cannot cure) is a warning naming the date by which the business user must
  authorise the app again; the sync goes on with the current refresh token, and the renewal is not
  tried again for :data:`RENEWAL_RETRY_AFTER` (``Token.extra["renewal_refused_at"]``).  10020
  (renewals used up) sets the count to the limit; 10010 (the refresh token is dead) and faults
  that retrying may cure (busy, 5xx, throttling) are raised;
* a warning is logged once few renewals remain (``warn_renewals_left``).

App token (``clt.…``, for the 来客 member APIs): ``POST /oauth/client_token/`` with a JSON body
``{client_key, client_secret, grant_type: "client_credential"}``, valid 2 hours.  It is the
adapter's second credential ``"client"`` (stored under ``"<account_id>#client"``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

import hub
from hub import Token, TokenAuth, check_response, expires_in, response_json
from plugins.douyin.wire import REFRESH_TOKEN_EXPIRED, RENEWAL_LIMIT, RENEWAL_LIMIT_REACHED, as_int

__all__ = ["RENEWAL_RETRY_AFTER", "ClientTokenAuth", "DouyinAuth", "reauthorise_by", "renewals_left"]

log = logging.getLogger("siyu.douyin")

RENEWAL_RETRY_AFTER = timedelta(days=1)
"""After a refused renewal, the next attempt waits this long (a refusal is not retried per request)."""

def renewals_left(token: Token | None) -> int:
    """How many refresh-token renewals ``token`` has left."""
    used = int((token.extra if token else {}).get("renewals", 0))
    return max(0, RENEWAL_LIMIT - used)


def reauthorise_by(token: Token) -> str:
    """The date (UTC) by which the business user must authorise the app again, for a log line."""
    if token.refresh_expires_at is None:
        return "an unknown date"
    return f"{token.refresh_expires_at.astimezone(UTC).date().isoformat()} (UTC)"


def _refused_at(token: Token) -> datetime | None:
    """When a renewal was last refused (``Token.extra["renewal_refused_at"]``), if it was."""
    try:
        refused = datetime.fromisoformat(str(token.extra["renewal_refused_at"]))
    except (KeyError, ValueError):
        return None
    return refused if refused.tzinfo else refused.replace(tzinfo=UTC)


def _data(adapter: Any, response: httpx.Response, account_id: str) -> dict[str, Any]:
    check_response(adapter, response, account_id=account_id)
    body = response_json(response, platform=adapter.platform, account_id=account_id)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise hub.PermanentError("token answer without data", platform=adapter.platform, account_id=account_id,
                                 endpoint=response.request.url.path)
    return data


class DouyinAuth(hub.GrantTokenAuth):
    """The business account's user token, sent as the ``access-token`` header."""

    # -- the hub's override points ---------------------------------------------------------

    def grant_extra(self) -> dict[str, Any]:
        return {"renewals": self.adapter.config.renewals_used}

    def build_token_request(self, current: Token | None) -> httpx.Request:
        token = current or self.initial_token()
        config = self.adapter.config
        return self.adapter.client.build_request(
            "POST", config.refresh_token_path,
            data={"client_key": config.client_key, "grant_type": "refresh_token",
                  "refresh_token": token.refresh_token or ""},
        )

    def parse_token(self, response: httpx.Response, current: Token | None) -> Token:
        data = _data(self.adapter, response, self.account_id)
        previous = current or self.initial_token()
        try:
            lifetime = as_int(data.get("expires_in"))
            refresh_lifetime = as_int(data.get("refresh_expires_in"), default=-1)
            access = str(data["access_token"])
        except (KeyError, ValueError) as exc:
            raise hub.PermanentError(f"malformed token answer ({type(exc).__name__})", platform="douyin",
                                     account_id=self.account_id) from None
        token = Token(
            access_token=access,
            expires_at=expires_in(lifetime),
            refresh_token=str(data.get("refresh_token") or previous.refresh_token or ""),
            refresh_expires_at=expires_in(refresh_lifetime) if refresh_lifetime >= 0 else previous.refresh_expires_at,
            extra=dict(previous.extra),
        )
        self._warn_if_running_out(token)
        return token

    def apply(self, request: httpx.Request, token: Token) -> None:
        request.headers["access-token"] = token.access_token

    def needs_renewal(self, token: Token | None) -> bool:
        """Renew only inside ``renew_within_days`` of a known refresh-token expiry, while renewals
        are left, and not again within a day of a refused renewal.

        An unknown expiry is not renewed "to learn it": the refresh answer carries
        ``refresh_expires_in``, and the next refresh stores it.
        """
        if token is None or not token.refresh_token or renewals_left(token) == 0:
            return False
        if token.refresh_expires_at is None:
            return False
        now = datetime.now(UTC)
        refused = _refused_at(token)
        if refused is not None and now - refused < RENEWAL_RETRY_AFTER:
            return False
        window = timedelta(days=self.adapter.config.renew_within_days)
        return token.refresh_expires_at - now < window

    def build_renewal_request(self, token: Token) -> httpx.Request:
        config = self.adapter.config
        return self.adapter.client.build_request(
            "POST", config.renew_refresh_token_path,
            data={"client_key": config.client_key, "refresh_token": token.refresh_token or ""},
        )

    def parse_renewal(self, response: httpx.Response, token: Token) -> Token:
        data = _data(self.adapter, response, self.account_id)
        try:
            refresh = str(data["refresh_token"])
            lifetime = as_int(data.get("expires_in"))
        except (KeyError, ValueError) as exc:
            raise hub.PermanentError(f"malformed renewal answer ({type(exc).__name__})", platform="douyin",
                                     account_id=self.account_id) from None
        extra = {k: v for k, v in token.extra.items() if k != "renewal_refused_at"}
        extra["renewals"] = int(token.extra.get("renewals", 0)) + 1
        renewed = Token(access_token=token.access_token, expires_at=token.expires_at, refresh_token=refresh,
                        refresh_expires_at=expires_in(lifetime), extra=extra)
        log.info("douyin %s: refresh token renewed (%d of %d renewals left)", self.account_id,
                 renewals_left(renewed), RENEWAL_LIMIT)
        self._warn_if_running_out(renewed)
        return renewed

    def renewal_refused(self, error: hub.PlatformError, token: Token) -> Token:
        """A refused renewal is a warning while the refresh token still works (see the module
        docstring): the sync goes on, the warning names the date by which the business user must
        authorise the app again, and no renewal is tried for :data:`RENEWAL_RETRY_AFTER`."""
        if error.retryable or error.code == REFRESH_TOKEN_EXPIRED:
            raise error
        now = datetime.now(UTC)
        if error.code == RENEWAL_LIMIT_REACHED:  # Douyin counted more renewals than we did
            exhausted = replace(token, extra={**token.extra, "renewals": RENEWAL_LIMIT})
            self._warn_if_running_out(exhausted)
            return exhausted
        log.warning("douyin %s: the refresh token could not be renewed (%s); it still works until %s, by when "
                    "the business user must authorise the app again (no renewal is tried before %s)",
                    self.account_id, error, reauthorise_by(token),
                    (now + RENEWAL_RETRY_AFTER).isoformat(timespec="minutes"))
        return replace(token, extra={**token.extra, "renewal_refused_at": now.isoformat()})

    def _warn_if_running_out(self, token: Token) -> None:
        left = renewals_left(token)
        if left > self.adapter.config.warn_renewals_left:
            return
        until = reauthorise_by(token)
        if left == 0:
            log.warning("douyin %s: no refresh-token renewals left; the business user must authorise the app "
                        "again before %s", self.account_id, until)
        else:
            log.warning("douyin %s: only %d refresh-token renewal(s) left; plan re-authorisation (the current "
                        "refresh token expires %s)", self.account_id, left, until)


class ClientTokenAuth(TokenAuth):
    """The app's ``client_token``, for APIs that want the app rather than the user (来客 members)."""

    def build_token_request(self, current: Token | None) -> httpx.Request:
        config = self.adapter.config
        return self.adapter.client.build_request(
            "POST", config.client_token_path,
            json={"client_key": config.client_key, "client_secret": config.client_secret.get_secret_value(),
                  "grant_type": "client_credential"},
        )

    def check_token_response(self, response: httpx.Response) -> None:
        try:
            self.check(response)
        except hub.PlatformConfigError as exc:
            if exc.code == RENEWAL_LIMIT_REACHED:  # for client_token: more than 500 calls in 5 minutes
                raise hub.RateLimited("client_token requested too often", retry_after=300.0, code=exc.code,
                                      platform="douyin", account_id=self.account_id) from None
            raise

    def parse_token(self, response: httpx.Response, current: Token | None) -> Token:
        data = _data(self.adapter, response, self.account_id)
        try:
            return Token(access_token=str(data["access_token"]), expires_at=expires_in(as_int(data.get("expires_in"))))
        except (KeyError, ValueError) as exc:
            raise hub.PermanentError(f"malformed client_token answer ({type(exc).__name__})", platform="douyin",
                                     account_id=self.account_id) from None

    def apply(self, request: httpx.Request, token: Token) -> None:
        request.headers["access-token"] = token.access_token
