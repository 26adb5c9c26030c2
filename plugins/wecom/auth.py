"""WeCom's tokens: the corp token for every corp API call, and the 公众号 token for member cards.

Both travel as the ``access_token`` query parameter and come back as ``access_token`` plus
``expires_in`` (normally 7200 s).  Each is a :class:`hub.TokenAuth`, so the hub caches it per
account, refreshes it ahead of expiry (5 minutes, or a tenth of its life when that is shorter, so
that a short-lived token is not fetched for every call) and once, however many requests wait.

- :class:`WeComAuth` (the adapter's ``auth_class``): ``GET /cgi-bin/gettoken?corpid=&corpsecret=``.
- :class:`WeComMpAuth`, the account's **second credential** ``"mp"`` (``credentials = {"mp": …}``
  on the adapter, ``auth=self.credential("mp")`` on the 公众号 requests):
  ``GET {mp_base_url}/cgi-bin/token?grant_type=client_credential&appid=&secret=``.  It is stored
  apart (``"<account id>#mp"``) with its own lock, and its answers map through its own table
  (:data:`plugins.wecom.wire.MP_ERROR_CODES`): a 公众号 rejection refreshes only the 公众号 token.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

import hub
from hub import Token, TokenAuth, expires_in, response_json
from plugins.wecom.wire import (
    MP_CAUSE,
    MP_CAUSES,
    MP_ERROR_CODES,
    MP_PATHS,
    MP_TOKEN_CAUSE,
    PATHS,
    envelope_error,
)

__all__ = ["MP_KEYS", "WeComAuth", "WeComMpAuth", "missing_mp_error", "missing_mp_keys", "mp_url"]

MP_KEYS = ("mp_app_id", "mp_app_secret", "card_id")
"""The options an account needs to push member cards."""


def mp_url(config: Any, key: str) -> str:
    """The absolute URL of a 公众号 endpoint (``"token"`` or ``"update"``) for this account."""
    return f"{str(config.mp_base_url).rstrip('/')}{MP_PATHS[key]}"


def missing_mp_keys(config: Any) -> list[str]:
    """The member-card options this account lacks (empty when it can push)."""
    return [key for key in MP_KEYS if not getattr(config, key)]


def missing_mp_error(missing: list[str], account_id: str) -> hub.PlatformConfigError:
    """The error of an account that lacks some member-card options."""
    return hub.PlatformConfigError(
        f"member-card push-back needs {', '.join(missing)} (the 公众号 holding the card) in this account",
        platform="wecom", account_id=account_id)


class _QueryTokenAuth(TokenAuth):
    """A token fetched by GET, answered as ``access_token`` + ``expires_in``, sent in the query."""

    what: ClassVar[str] = "the token endpoint"

    def is_fresh(self, token: Token | None) -> bool:
        if token is None:
            return False
        margin = self.refresh_margin
        lifetime = token.extra.get("lifetime")
        if isinstance(lifetime, int | float):
            margin = min(margin, timedelta(seconds=lifetime / 10))
        return token.expires_at - margin > datetime.now(UTC)

    def parse_token(self, response: httpx.Response, current: Token | None) -> Token:
        body = response_json(response, platform=self.platform, account_id=self.account_id)
        try:
            value, lifetime = str(body["access_token"]), int(body["expires_in"])
            if not value:
                raise ValueError("empty access_token")
            return Token(access_token=value, expires_at=expires_in(lifetime), extra={"lifetime": lifetime})
        except (KeyError, TypeError, ValueError):
            raise hub.PermanentError(f"{self.what} answered without access_token/expires_in", platform=self.platform,
                                     account_id=self.account_id, endpoint=response.request.url.path) from None

    def apply(self, request: httpx.Request, token: Token) -> None:
        request.url = request.url.copy_merge_params({"access_token": token.access_token})


class WeComAuth(_QueryTokenAuth):
    """The corp token: ``GET /cgi-bin/gettoken?corpid=&corpsecret=`` → ``access_token``."""

    what = "gettoken"

    def build_token_request(self, current: Token | None) -> httpx.Request:
        config: Any = self.adapter.config
        return self.adapter.client.build_request("GET", PATHS["token"], params={
            "corpid": config.corp_id, "corpsecret": config.secret.get_secret_value()})


class WeComMpAuth(_QueryTokenAuth):
    """The 公众号 token: ``GET {mp_base_url}/cgi-bin/token?grant_type=client_credential&appid=&secret=``.

    :raises hub.PlatformConfigError: the account lacks ``mp_app_id``/``mp_app_secret``/``card_id``.
    """

    what = "the 公众号 token endpoint"
    error_codes: ClassVar[Mapping[Any, hub.ErrorEntry] | None] = MP_ERROR_CODES

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None:
        code = envelope_error(response_json(response, platform=self.platform, account_id=self.account_id))
        if code is None:
            return None
        if response.request.url.path.endswith(MP_PATHS["token"]):
            return code, MP_TOKEN_CAUSE
        return code, MP_CAUSES.get(code, MP_CAUSE)

    def check_token_response(self, response: httpx.Response) -> None:
        """Every code the token endpoint answers is permanent: its 40001 is a wrong secret, not a
        token to refresh (the research file documents none of its codes)."""
        try:
            self.check(response)
        except hub.TokenExpired as exc:
            raise hub.PermanentError(MP_TOKEN_CAUSE, platform=self.platform, account_id=self.account_id,
                                     code=exc.code, endpoint=exc.endpoint) from None

    def build_token_request(self, current: Token | None) -> httpx.Request:
        config: Any = self.adapter.config
        missing = missing_mp_keys(config)
        if missing:
            raise missing_mp_error(missing, self.account_id)
        return self.adapter.client.build_request("GET", mp_url(config, "token"), params={
            "grant_type": "client_credential", "appid": config.mp_app_id,
            "secret": config.mp_app_secret.get_secret_value()})
