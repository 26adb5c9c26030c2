"""Alipay request signing, the service provider's ``app_auth_token``, and the shoppers' tokens.

Alipay has no access token for the app itself: every gateway call is signed with the app's RSA
private key (:class:`AlipaySigner`, the client's default auth).  The signature covers every
parameter sent, so it is computed last, on the request as it leaves: the flow stamps
``timestamp`` (a retry is signed again with a fresh one) and appends ``sign`` to the query.

A service provider (服务商) acting for a merchant adds the merchant's ``app_auth_token`` to every
call.  It is the account's second credential (``credentials = {"merchant": AppAuthToken}``):
taken from the configuration, effectively permanent (Alipay no longer expires app-auth tokens),
stored under ``"<account_id>#merchant"``, and signed with the rest of the parameters.

A shopper who fills the card's activation form authorises the app: Alipay hands the callback an
``auth_code`` (single-use, short-lived), which ``alipay.system.oauth.token`` exchanges for the
user's ``access_token`` (good for the form read and the card's opening).  Until it is used the
code is a secret: the stored callback keeps it sealed (:func:`seal_code`: AES-256-GCM under a
key derived from the app's private key, so the database alone cannot open it).  The user's token
lives in the account's token store (encrypted at rest when the deployment has a key), under the
activation (``<account>#activation:<hash of the code>``, so that a retried follow-up exchanges
the code once) and under the card holder (``<account>#card-user:<hash of the user>``, where the
card's opening finds it); :class:`UserTokens` keeps both and forgets them once the card is open.
Tokens never reach a log: :class:`hub.Token` prints only its expiry.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
from collections.abc import Generator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import hub
from plugins.alipay.wire import shanghai_timestamp, sign, sign_content

__all__ = ["AlipaySigner", "AppAuthToken", "UserTokens", "code_key", "open_code", "seal_code", "sign_request",
           "user_token"]

PLATFORM = "alipay"
USER_TOKEN_LIFE = 3600
"""Seconds a user's token is taken to live when Alipay's answer gives no ``expires_in``."""

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


# -- the shoppers' authorisation ------------------------------------------------------------------

def code_key(private_key: Any) -> bytes:
    """The AES-256 key that seals activation codes: HKDF-SHA256 over the app private key (DER)."""
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"siyu alipay auth_code").derive(der)


def seal_code(code: str, key: bytes, context: str) -> str:
    """``code`` encrypted (AES-256-GCM, a fresh nonce) and bound to ``context`` (the account)."""
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, code.encode("utf-8"), context.encode("utf-8"))
    return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def open_code(sealed: str, key: bytes, context: str) -> str:
    """The code :func:`seal_code` sealed.

    :raises ValueError: it was sealed under another key or context, or altered.
    """
    try:
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode("utf-8")).decode("utf-8")
    except (InvalidTag, binascii.Error, ValueError, UnicodeError):
        raise ValueError("the sealed auth_code does not open with this app's key") from None


def user_token(node: Mapping[str, Any]) -> hub.Token:
    """``alipay.system.oauth.token``'s answer as a token; ``extra`` keeps who the user is."""
    def seconds(name: str) -> int | None:
        try:
            return int(node[name]) if node.get(name) not in (None, "") else None
        except (TypeError, ValueError):
            return None

    life, refresh_life = seconds("expires_in"), seconds("re_expires_in")
    who = {k: str(node[k]) for k in ("open_id", "user_id") if node.get(k)}
    return hub.Token(access_token=str(node.get("access_token") or ""),
                     expires_at=hub.expires_in(life if life is not None else USER_TOKEN_LIFE),
                     refresh_token=str(node["refresh_token"]) if node.get("refresh_token") else None,
                     refresh_expires_at=hub.expires_in(refresh_life) if refresh_life is not None else None,
                     extra=who)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class UserTokens:
    """Shoppers' tokens in the account's token store (see the module docstring).

    :param store: the account's :class:`hub.TokenStore`.
    :param account_id: the account.
    """

    def __init__(self, store: Any, account_id: str) -> None:
        self.store, self.account_id = store, account_id

    def activation_key(self, code: str) -> str:
        """Where the token of the activation with ``code`` is kept."""
        return f"{self.account_id}#activation:{_digest(code)}"

    def holder_key(self, uid: str) -> str:
        """Where the token of the card holder ``uid`` is kept until the card is open."""
        return f"{self.account_id}#card-user:{_digest(uid)}"

    def slot(self, key: str) -> Any:
        """``key``'s token held exclusively (across processes with a database store)."""
        return self.store.slot(PLATFORM, key)

    async def load(self, key: str) -> hub.Token | None:
        return await asyncio.to_thread(self.store.load, PLATFORM, key)  # type: ignore[no-any-return]

    async def hold(self, uid: str, token: hub.Token, activation: str) -> None:
        """Keep ``token`` as card holder ``uid``'s (it came from the activation keyed ``activation``);
        the token of an earlier activation of the same holder is forgotten."""
        key = self.holder_key(uid)
        before = await self.load(key)
        await asyncio.to_thread(self.store.save, PLATFORM, key,
                                hub.Token(token.access_token, token.expires_at, token.refresh_token,
                                          token.refresh_expires_at, {**token.extra, "activation": activation}))
        if before is not None and before.extra.get("activation") not in (None, activation):
            await asyncio.to_thread(self.store.forget, PLATFORM, str(before.extra["activation"]))

    async def renew(self, uid: str, token: hub.Token) -> None:
        """Keep a refreshed ``token`` as the holder's (the activation it came from stays named)."""
        await asyncio.to_thread(self.store.save, PLATFORM, self.holder_key(uid), token)

    async def release(self, uid: str, token: hub.Token | None) -> None:
        """Forget the holder's token and its activation's: the card is open."""
        if token is not None and token.extra.get("activation"):
            await asyncio.to_thread(self.store.forget, PLATFORM, str(token.extra["activation"]))
        await asyncio.to_thread(self.store.forget, PLATFORM, self.holder_key(uid))
