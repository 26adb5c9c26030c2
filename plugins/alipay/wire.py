"""Alipay's wire conventions as data and pure functions: the gateway envelope, RSA2 signing,
response and notify verification, and the error table.

Facts and their sources are in ``docs/platforms/alipay.md`` (``shared/platforms/
alipay-kuaishou-xiaohongshu.md`` part 1).  In short:

* Every API is a ``gateway.do`` method.  The common parameters (``app_id``, ``method``,
  ``format=json``, ``charset=utf-8``, ``sign_type=RSA2``, ``timestamp`` as ``yyyy-MM-dd HH:mm:ss``
  in Asia/Shanghai, ``version=1.0``, optional ``app_auth_token`` / ``auth_token``) travel in the
  query string with ``sign``; ``biz_content`` (a JSON string) and an API's text parameters in
  the form body.
* The string to sign is every parameter sent, ``sign_type`` included, ``sign`` and empty values
  excluded, sorted by key and joined ``k=v&…`` with raw (not URL-encoded) values; the signature is
  SHA256withRSA (PKCS#1 v1.5) over its UTF-8 bytes, in base64.
* An answer is ``{"<method with . → _>_response": {…}, "sign": "…"}``; the signed content is the
  raw text of the ``…_response`` value, byte for byte, found here with a quote-aware scan.  Errors
  raised before the method is resolved come as ``error_response`` (``sign`` may be absent).
  Success is ``code == "10000"``.
* A notify is a form POST; its string to verify drops ``sign`` and ``sign_type`` (rule V1: card
  open/delete, payment-style, app-auth) or only ``sign`` (rule V2: 生活号 gateway messages).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import hub
from schemas import SHANGHAI

__all__ = [
    "ERROR_CODES",
    "ERROR_RESPONSE",
    "METHODS",
    "SUCCESS",
    "TIMESTAMP_FORMAT",
    "GatewayReply",
    "MalformedResponse",
    "SignatureMismatch",
    "biz_json",
    "error_key",
    "load_private_key",
    "load_public_key",
    "notify_sign_content",
    "read_response",
    "response_key",
    "shanghai_timestamp",
    "sign",
    "sign_content",
    "top_level_members",
    "verify",
]

METHODS = {
    "token": "alipay.system.oauth.token",
    "form": "alipay.marketing.card.activateform.query",
    "open": "alipay.marketing.card.open",
    "query": "alipay.marketing.card.query",
    "update": "alipay.marketing.card.update",
    "activate_url": "alipay.marketing.card.activateurl.apply",
}
"""The gateway methods the adapter calls (all ``biz_content`` methods but the token exchange,
which takes top-level ``grant_type`` and ``code``)."""

SUCCESS = "10000"
ERROR_RESPONSE = "error_response"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

ERROR_CODES: dict[str, Any] = {
    # gateway codes (common error page 105806)
    "20000": hub.TransientError,  # Service Currently Unavailable: retry later
    "20001": hub.PlatformConfigError,  # Insufficient Token Permissions (app_auth_token / auth_token)
    "40001": hub.PermanentError,  # Missing Required Arguments
    "40002": hub.PermanentError,  # Invalid Arguments
    "40004": hub.PermanentError,  # Business Failed: the sub_code says why
    "40006": hub.PlatformConfigError,  # Insufficient Permissions: the app lacks the product
    # sub_codes that mean something else than their gateway code
    "isp.unknow-error": hub.TransientError,  # 服务暂不可用 (20000)
    "aop.unknow-error": hub.TransientError,  # 服务暂不可用 (20000)
    "aop.ACQ.SYSTEM_ERROR": hub.TransientError,  # 系统异常
    "ACQ.SYSTEM_ERROR": hub.TransientError,  # 系统异常 (40004)
    "SYSTEM_ERROR": hub.TransientError,  # 系统异常 (40004)
    "isv.invalid-signature": hub.PlatformConfigError,  # our signature does not verify: wrong key pair
    "isv.invalid-signature-type": hub.PlatformConfigError,
    "isv.missing-signature-config": hub.PlatformConfigError,  # no app public key uploaded
    "isv.invalid-app-id": hub.PlatformConfigError,
    "isv.not-support-app-auth": hub.PlatformConfigError,
    "isv.invalid-timestamp": hub.PlatformConfigError,  # this machine's clock is off
    "isv.code-invalid": hub.PermanentError,  # an auth_code unknown, expired or used already
    "aop.invalid-auth-token": hub.PermanentError,  # a user's token (activation): the user must retry
    "aop.auth-token-time-out": hub.PermanentError,
    "isv.insufficient-user-permissions": hub.PermanentError,  # the user did not grant the scope
}
"""Alipay gateway codes and sub_codes → hub errors; a sub_code listed here wins over its code
(:func:`error_key`).  Codes from the common error page (105806), through the research file, 1.7."""


class SignatureMismatch(Exception):
    """A response or notify whose signature does not verify; never trusted."""


class MalformedResponse(Exception):
    """An answer that is not the gateway's envelope."""


# -- keys ---------------------------------------------------------------------------------------

def _der(text: str) -> bytes | None:
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8) or the console's bare base64 (DER).

    :raises ValueError: without the key's content, when it does not parse as an RSA private key.
    """
    text = text.strip()
    key: Any = None
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        elif (der := _der(text)) is not None:
            key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key (PEM PKCS#1 or PKCS#8, or base64 DER)")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM (``PUBLIC KEY`` or ``RSA PUBLIC KEY``) or bare base64 (DER).

    :raises ValueError: without the key's content, when it does not parse as an RSA public key.
    """
    text = text.strip()
    key: Any = None
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        elif (der := _der(text)) is not None:
            key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnicodeEncodeError):
        key = None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key (PEM or base64 DER)")
    return key


# -- signing --------------------------------------------------------------------------------------

def shanghai_timestamp(now: datetime | None = None) -> str:
    """``timestamp`` as the gateway wants it: ``yyyy-MM-dd HH:mm:ss`` in Asia/Shanghai."""
    return (now or datetime.now(SHANGHAI)).astimezone(SHANGHAI).strftime(TIMESTAMP_FORMAT)


def biz_json(value: Mapping[str, Any]) -> str:
    """``biz_content`` text: compact, sorted keys, UTF-8 characters kept (the official SDK's form)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def sign_content(params: Mapping[str, str]) -> str:
    """The request's string to sign: every parameter but ``sign`` and empty ones, sorted, ``k=v&…``."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] not in ("", None))


def notify_sign_content(form: Mapping[str, str], rule: Literal["V1", "V2"]) -> str:
    """A notify's string to verify: V1 drops ``sign`` and ``sign_type``, V2 only ``sign``."""
    dropped = {"sign", "sign_type"} if rule == "V1" else {"sign"}
    return "&".join(f"{k}={form[k]}" for k in sorted(form) if k not in dropped and form[k] != "")


def sign(content: str, key: rsa.RSAPrivateKey) -> str:
    """RSA2: SHA256withRSA, PKCS#1 v1.5, over the UTF-8 bytes of ``content``; base64."""
    return base64.b64encode(key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify(content: bytes, signature: str, key: rsa.RSAPublicKey) -> bool:
    """Whether ``signature`` (base64) is RSA2 over ``content`` under ``key``."""
    try:
        raw = base64.b64decode("".join(signature.split()), validate=True)
        key.verify(raw, content, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# -- responses ------------------------------------------------------------------------------------

def response_key(method: str) -> str:
    """The envelope key of ``method``'s answer: ``alipay.marketing.card.query`` →
    ``alipay_marketing_card_query_response``."""
    return method.replace(".", "_") + "_response"


def _string_end(text: str, i: int) -> int:
    """The index just past the JSON string that opens at ``text[i] == '"'``."""
    i += 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    raise MalformedResponse("unterminated string")


def _value_end(text: str, i: int) -> int:
    """The index just past the JSON value that starts at ``text[i]`` (quote- and escape-aware)."""
    c = text[i]
    if c == '"':
        return _string_end(text, i)
    if c in "{[":
        depth = 0
        while i < len(text):
            c = text[i]
            if c == '"':
                i = _string_end(text, i)
                continue
            if c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        raise MalformedResponse("unbalanced brackets")
    j = i
    while j < len(text) and text[j] not in ",}] \t\r\n":
        j += 1
    if j == i:
        raise MalformedResponse("a value is missing")
    return j


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def top_level_members(text: str) -> dict[str, str]:
    """The raw text of each member of the top-level JSON object in ``text``, by key.

    A scan that respects strings and escapes, so a ``{``, ``}`` or ``"`` inside a string value
    never ends a member early; the text of each value is returned exactly as it appears.

    :raises MalformedResponse: when ``text`` is not one JSON object.
    """
    members: dict[str, str] = {}
    i = _skip(text, 0)
    if i >= len(text) or text[i] != "{":
        raise MalformedResponse("not a JSON object")
    i = _skip(text, i + 1)
    if i < len(text) and text[i] == "}":
        return members
    while i < len(text):
        if text[i] != '"':
            raise MalformedResponse("a key is not a string")
        end = _string_end(text, i)
        key = json.loads(text[i:end])
        i = _skip(text, end)
        if i >= len(text) or text[i] != ":":
            raise MalformedResponse("a key without a value")
        start = _skip(text, i + 1)
        if start >= len(text):
            raise MalformedResponse("a value is missing")
        stop = _value_end(text, start)
        members[key] = text[start:stop]
        i = _skip(text, stop)
        if i < len(text) and text[i] == ",":
            i = _skip(text, i + 1)
            continue
        if i < len(text) and text[i] == "}":
            if _skip(text, i + 1) != len(text):
                raise MalformedResponse("text after the object")
            return members
        raise MalformedResponse("a member is not followed by ',' or '}'")
    raise MalformedResponse("unterminated object")


@dataclass(frozen=True)
class GatewayReply:
    """A verified (or, for a failure without a signature, merely read) gateway answer.

    :param node: the parsed ``…_response`` (or ``error_response``) object.
    :param verified: whether its signature was checked and held.
    """

    node: dict[str, Any]
    verified: bool

    @property
    def code(self) -> str:
        return str(self.node.get("code") or "")

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS

    @property
    def sub_code(self) -> str:
        return str(self.node.get("sub_code") or "")

    def describe(self) -> str:
        """``code sub_code: sub_msg`` (Alipay's words; no request data)."""
        text = self.node.get("sub_msg") or self.node.get("msg") or ""
        return " ".join(p for p in (self.code, self.sub_code) if p) + (f": {text}" if text else "")


def read_response(body: bytes, method: str, key: rsa.RSAPublicKey) -> GatewayReply:
    """Find ``method``'s answer in ``body`` and verify its signature with Alipay's public ``key``.

    A success must carry a ``sign`` that verifies over the raw ``…_response`` text.  A failure
    (or an ``error_response``) without a ``sign`` is returned unverified: it is an error anyway
    and nothing in it is used but its codes.

    :raises SignatureMismatch: a ``sign`` that does not verify, or a success without one.
    :raises MalformedResponse: the body is not the gateway's envelope.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedResponse("not UTF-8") from None
    members = top_level_members(text)
    name = response_key(method)
    raw = members.get(name)
    if raw is None:
        raw = members.get(ERROR_RESPONSE)
        if raw is None:
            raise MalformedResponse("no response node")
    try:
        node = json.loads(raw)
        signature = json.loads(members["sign"]) if "sign" in members else ""
    except ValueError:
        raise MalformedResponse("a node that is not JSON") from None
    if not isinstance(node, dict) or not isinstance(signature, str):
        raise MalformedResponse("the response node is not an object")
    reply = GatewayReply(node=node, verified=bool(signature))
    if not signature:
        if reply.ok:
            raise SignatureMismatch("a successful answer without a signature")
        return reply
    if not verify(raw.encode("utf-8"), signature, key):
        raise SignatureMismatch("the answer's signature does not verify")
    return reply


def error_key(reply: GatewayReply) -> str:
    """The key of ``reply`` in :data:`ERROR_CODES`: its sub_code when listed, else its code."""
    return reply.sub_code if reply.sub_code in ERROR_CODES else reply.code
