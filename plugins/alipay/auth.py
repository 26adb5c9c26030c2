"""Alipay request signing, and the service provider's ``app_auth_token``.

Alipay has no access token for the app itself: every gateway call is signed with the app's RSA
private key (:class:`AlipaySigner`, the client's default auth).  The signature covers every
parameter sent, so it is computed last, on the request as it leaves: the flow stamps
``timestamp`` (a retry is signed again with a fresh one) and appends ``sign`` to the query.

A service provider (服务商) acting for a merchant adds the merchant's ``app_auth_token`` to every
call.  It is the account's second credential (``credentials = {"merchant": AppAuthToken}``):
taken from the configuration, effectively permanent (Alipay no longer expires app-auth tokens),
stored under ``"<account_id>#merchant"``, and signed with the rest of the parameters.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx

import hub
from plugins.alipay.wire import shanghai_timestamp, sign, sign_content

__all__ = ["AlipaySigner", "AppAuthToken", "sign_request"]

FOREVER = datetime(9999, 1, 1, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"


def sign_request(request: httpx.Request, key: Any, extra: dict[str, str] | None = None) -> None:
    """Stamp ``timestamp`` (and ``extra``) into ``request``'s query and append ``sign``.

    The string signed is the query's and the form body's parameters together
    (:func:`plugins.alipay.wire.sign_content`); the body is left byte for byte as it is.

    :param request: a request built with the common parameters in ``params`` and ``biz_content``
        (or an API's text parameters) in a form body.
    :param key: the app's RSA private key.
    :param extra: parameters to add before signing (``app_auth_token``).
    """
    query = {k: v for k, v in request.url.params.items() if k != "sign"}
    query.update(extra or {})
    query["timestamp"] = shanghai_timestamp()
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith(FORM):
        form = dict(parse_qsl(request.content.decode("utf-8"), keep_blank_values=True))
    signature = sign(sign_content({**form, **query}), key)
    request.url = request.url.copy_with(params={**query, "sign": signature})


class AlipaySigner(httpx.Auth):
    """Signs every gateway request with the app's private key (RSA2).

    Built by the hub like a token flow: ``AlipaySigner(adapter, store, account_id)``.
    """

    requires_request_body = True

    def __init__(self, adapter: Any, store: Any = None, account_id: str = "", *, credential: str | None = None) -> None:
        self.adapter = adapter
        self.account_id = account_id

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sign_request(request, self.adapter.private_key)
        yield request


class AppAuthToken(hub.TokenAuth):
    """A merchant's ``app_auth_token`` (service provider mode), signed with every request."""

    requires_request_body = True

    def initial_token(self) -> hub.Token | None:
        token = self.adapter.config.app_auth_token
        if token is None:
            return None
        return hub.Token(access_token=token.get_secret_value(), expires_at=FOREVER)

    def reconcile(self, stored: hub.Token | None) -> hub.Token | None:
        """The configured token wins: it is the operator's, and Alipay does not rotate it."""
        return self.initial_token()

    def build_token_request(self, current: hub.Token | None) -> httpx.Request:
        raise hub.PlatformConfigError(
            "app_auth_token is missing or was refused: have the merchant authorise the app again and "
            "configure the new token", platform="alipay", account_id=self.account_id)

    def apply(self, request: httpx.Request, token: hub.Token) -> None:
        sign_request(request, self.adapter.private_key, {"app_auth_token": token.access_token})
