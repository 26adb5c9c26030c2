"""Kuaishou 快手电商 (kwaixiaodian) wire conventions as data and pure functions.

Facts and their sources are in ``docs/platforms/kuaishou.md`` (and
``shared/platforms/alipay-kuaishou-xiaohongshu.md`` part 2).  In short:

* A call's path is its method with dots turned into slashes (``open.order.cursor.list`` →
  ``/open/order/cursor/list``); the parameters are form-encoded: ``appkey``, ``method``,
  ``version=1``, ``param`` (the business parameters as ONE JSON string), ``access_token``,
  ``timestamp`` (epoch milliseconds), ``signMethod`` and ``sign``.
* The signature covers every parameter but ``sign``, sorted by key and joined ``k=v`` with ``&``,
  followed by ``&signSecret=<sign secret>``: MD5 as lowercase hex, or HMAC-SHA256 keyed with the
  sign secret (over the same string) as Base64.
* Answers are ``{"result": 1, "data": …}`` on success; anything else is a failure with
  ``error_msg``.  Throttling, signature, token and scope failures are documented by their
  message only, so :func:`envelope_error` matches those messages and reports them under the
  symbolic codes of :data:`MESSAGE_CODES`.
* Pushes are base64 of AES/CBC/PKCS5 ciphertext with a zero IV, keyed with the Base64-decoded
  per-app message key; the plaintext is UTF-8 JSON whose ``info`` is a JSON string again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Literal

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import hub
from hub import as_int

__all__ = [
    "ACK",
    "API_VERSION",
    "CAUSES",
    "DECRYPT_METHOD",
    "ERROR_CODES",
    "MESSAGE_CODES",
    "NOMORE",
    "ORDER_LIST_METHOD",
    "PATHS",
    "REFRESH_TOKEN_PATH",
    "SIGNED_ALWAYS",
    "SignMethod",
    "as_int",
    "decrypt_push",
    "encode_param",
    "encrypt_push",
    "envelope_error",
    "message_key_bytes",
    "method_path",
    "sign",
    "string_to_sign",
]

SignMethod = Literal["MD5", "HMAC_SHA256"]

API_VERSION = "1"
ORDER_LIST_METHOD = "open.order.cursor.list"
DECRYPT_METHOD = "open.security.instant.decrypt.batch"
REFRESH_TOKEN_PATH = "/oauth2/refresh_token"

PATHS = {
    "access_token": "/oauth2/access_token",  # the code exchange (done once, outside the hub)
    "refresh_token": REFRESH_TOKEN_PATH,
    "order_list": "/open/order/cursor/list",  # method_path(ORDER_LIST_METHOD)
    "decrypt": "/open/security/instant/decrypt/batch",  # method_path(DECRYPT_METHOD)
}
"""The documented paths the plugin uses."""
NOMORE = "nomore"
"""The ``cursor`` value of the last page of ``open.order.cursor.list``."""

ACK = b'{"result":1}'
"""The acknowledgement a push must get (HTTP 200) within 3 seconds."""

SIGNED_ALWAYS = ("access_token", "appkey", "method")
"""Parameters the signature always covers (the others when present; ``sign`` never)."""

# -- the error table -----------------------------------------------------------------------

MSG_TOKEN_EXPIRED = "msg:token-expired"
MSG_AUTH_FAILED = "msg:auth-failed"
MSG_SCOPE = "msg:scope-missing"
MSG_SIGNATURE = "msg:signature-failed"
MSG_QPS = "msg:qps-limit"
MSG_QUOTA = "msg:daily-quota"

MESSAGE_CODES: tuple[tuple[str, str], ...] = (
    # (text the documented message contains, lower-cased; the symbolic code we report)
    ("exceed qps limit", MSG_QPS),  # "Exceed qps limit, KEY [apiId:…;appkey:…], MAX_QPS [300.0]"
    ("exceed quota limit", MSG_QUOTA),  # "Exceed quota limit, KEY [appkey:…]" and "[1017] exceed quota limit,…"
    ("token过期", MSG_TOKEN_EXPIRED),  # "TOKEN过期" (FAQ K0004)
    ("鉴权失败", MSG_AUTH_FAILED),  # "鉴权失败" (FAQ K0004)
    ("token中无scope权限", MSG_SCOPE),  # FAQ K0003
    ("验签失败", MSG_SIGNATURE),  # FAQ K1004
)
"""Failures the documentation gives by message only (no numeric ``result``), matched in
``error_msg`` before the numeric code is looked up."""

QPS_BLOCK_SECONDS = 1.0
"""QPS limits are per second: wait one second."""

ERROR_CODES: dict[Any, Any] = {
    # numeric ``result`` codes documented for the merchant API
    21: hub.PermanentError,  # order operation reject
    24: hub.PlatformConfigError,  # AUTHORIZATION_REVOKED: the shop revoked the app
    26: hub.PlatformConfigError,  # 主账号不存在: the wrong kind of token for this API
    1800608: hub.PlatformConfigError,  # 暂无站外分销推广权限
    # OAuth endpoints (/oauth2/access_token, /oauth2/refresh_token)
    100200100: hub.PermanentError,  # invalid_request
    100200101: hub.PlatformConfigError,  # unauthorized_client: app_id / app_secret wrong
    # access_denied: "any token error in the authorisation and the API calls after it": on an API call the
    # token is refreshed once; on the refresh itself it means re-authorise (see auth.REAUTHORISE_CODES)
    100200102: hub.TokenExpired,
    100200103: hub.PermanentError,  # unsupported_response_type
    100200104: hub.PermanentError,  # unsupported_grant_type
    100200105: hub.PlatformConfigError,  # invalid_grant (documented for a wrong code; re-authorise)
    100200106: hub.PlatformConfigError,  # invalid_scope
    100200107: hub.PermanentError,  # invalid_openid
    100200500: hub.TransientError,  # server_error
    # documented by message only (see MESSAGE_CODES)
    MSG_TOKEN_EXPIRED: hub.TokenExpired,  # refreshed once, then re-sent
    MSG_AUTH_FAILED: hub.TokenExpired,  # 鉴权失败 is listed with TOKEN过期: refresh once, then give up
    MSG_SCOPE: hub.PlatformConfigError,  # the shop did not grant the scope (e.g. merchant_order)
    MSG_SIGNATURE: hub.PlatformConfigError,  # sign_secret or sign_method wrong: an operator must act
    MSG_QPS: (hub.RateLimited, QPS_BLOCK_SECONDS),
    MSG_QUOTA: hub.PlatformConfigError,  # a daily quota: retrying today does not help
}
"""Kuaishou failures → hub errors; anything else is a :class:`hub.PermanentError`."""


CAUSES: dict[Any, str] = {
    21: "Kuaishou rejected the order operation",
    24: "the shop revoked the app's authorisation (AUTHORIZATION_REVOKED): authorise again",
    26: "the main account does not exist: the wrong kind of token for this API",
    1800608: "no permission for off-site distribution",
    100200100: "a required request parameter is missing",
    100200101: "the app is not valid (check app_key and app_secret)",
    100200102: "the token was refused (access_denied: invalid, already used, or the authorisation revoked)",
    100200103: "wrong response_type",
    100200104: "wrong grant_type",
    100200105: "the grant was refused (invalid_grant)",
    100200106: "the scope was refused, or the user cancelled the authorisation",
    100200107: "the open id is not valid",
    100200500: "Kuaishou had an internal error",
    MSG_TOKEN_EXPIRED: "access token expired",
    MSG_AUTH_FAILED: "authentication failed",
    MSG_SCOPE: "the shop did not grant the scope this call needs",
    MSG_SIGNATURE: "signature check failed: check sign_secret and sign_method",
    MSG_QPS: "QPS limit exceeded",
    MSG_QUOTA: "daily call quota exhausted",
}
"""What each code of :data:`ERROR_CODES` means, in our words (a hub error carries these)."""


def envelope_error(body: Any) -> tuple[Any, str] | None:
    """The failure in a Kuaishou answer as ``(code, message)``, or ``None`` for success.

    Success is ``result == 1``.  A failure documented only by its message is reported under its
    symbolic code from :data:`MESSAGE_CODES`.  The message is ours (:data:`CAUSES`) for every
    known code (the platform's throttle texts name keys and ids); Kuaishou's own, cut to 200
    characters, for an unknown one.
    """
    if not isinstance(body, Mapping):
        return ("malformed", "answer is not a JSON object")
    result = body.get("result")
    try:
        code = as_int(result, default=-1)
    except (TypeError, ValueError):
        code = -1
    if code == 1:
        return None
    message = str(body.get("error_msg") or body.get("error") or body.get("msg") or "")
    lowered = message.lower()
    for needle, symbolic in MESSAGE_CODES:
        if needle.lower() in lowered:
            return (symbolic, CAUSES[symbolic])
    if result is None:
        return ("no-result", message[:200] or "answer without result")
    return (code, CAUSES.get(code) or message[:200] or "Kuaishou refused the call")


# -- requests ------------------------------------------------------------------------------


def method_path(method: str) -> str:
    """The URL path of an API method: ``open.order.cursor.list`` → ``/open/order/cursor/list``."""
    return "/" + method.replace(".", "/")


def encode_param(business: Mapping[str, Any]) -> str:
    """The ``param`` JSON string: keys sorted, compact, Unicode kept (what is sent is signed)."""
    return json.dumps(business, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def string_to_sign(params: Mapping[str, str], sign_secret: str) -> str:
    """Every parameter but ``sign`` (and empty ones), sorted by key, ``k=v`` joined with ``&``,
    then ``&signSecret=<sign_secret>``."""
    pairs = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] is not None)
    return f"{pairs}&signSecret={sign_secret}"


def sign(params: Mapping[str, str], sign_secret: str, method: SignMethod) -> str:
    """The ``sign`` of ``params``: MD5 lowercase hex, or HMAC-SHA256 (key = sign secret) Base64."""
    text = string_to_sign(params, sign_secret).encode("utf-8")
    if method == "MD5":
        return hashlib.md5(text).hexdigest()  # noqa: S324 - the platform's documented algorithm
    if method == "HMAC_SHA256":
        return base64.b64encode(hmac.new(sign_secret.encode("utf-8"), text, hashlib.sha256).digest()).decode()
    raise ValueError(f"unknown signMethod {method!r}")


# -- pushes --------------------------------------------------------------------------------

ZERO_IV = bytes(16)


def message_key_bytes(message_key: str) -> bytes:
    """The AES key in a Base64 message key.

    :raises ValueError: it is not Base64 of 16, 24 or 32 bytes (the value is never repeated).
    """
    try:
        key = base64.b64decode(message_key, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("message_key is not Base64") from None
    if len(key) not in (16, 24, 32):
        raise ValueError("message_key does not decode to an AES key (16, 24 or 32 bytes)")
    return key


def decrypt_push(body: bytes, message_key: str) -> bytes:
    """The plaintext of a push body (Base64 of AES/CBC/PKCS5, zero IV).

    :raises ValueError: the body is not Base64, not whole blocks, or its padding is wrong (the
        message never includes the key or the body).
    """
    try:
        ciphertext = base64.b64decode(body.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("push body is not Base64") from None
    if not ciphertext or len(ciphertext) % 16:
        raise ValueError("push body is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(message_key_bytes(message_key)), modes.CBC(ZERO_IV)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise ValueError("push body does not decrypt (bad padding: wrong key or altered body)") from None


def encrypt_push(plaintext: bytes, message_key: str) -> bytes:
    """A push body as the platform builds it (the sandbox and tests use it)."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(message_key_bytes(message_key)), modes.CBC(ZERO_IV)).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize())
