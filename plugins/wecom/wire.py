"""The WeCom protocol as data and pure functions: paths, error codes, the callback crypto and XML.

Sources: ``shared/platforms/wecom-douyin.md`` part A (A0 conventions, A1 tokens, A4 callbacks,
A5 the 公众号 member card, A6 error codes and limits) and ``docs/platforms/wecom.md``.

- Every answer carries ``errcode`` (0 = OK) and ``errmsg``, checked even on HTTP 200
  (:func:`envelope_error`).
- Error tables: :data:`ERROR_CODES` for the corp API, :data:`MP_ERROR_CODES` for the 公众号 that
  holds the member card (its own meanings: its 40001 is "invalid credential", WeCom's a wrong
  secret).  A code not listed is a :class:`hub.PermanentError` (never retried blindly).
- Callback crypto (WXBizMsgCrypt, A4): the AES key is ``base64decode(EncodingAESKey + "=")``
  (AES-256-CBC, IV = the first 16 key bytes); the plaintext is 16 random bytes, the message length
  (4 bytes big-endian), the message and the receive id (the corp id), padded PKCS#7-style to a
  multiple of **32** bytes; ``msg_signature`` is the hex SHA-1 of token, timestamp, nonce and
  ciphertext sorted and joined with no separator.  Failures raise :class:`CryptoError` with the
  sample library's code, never a key or plaintext.
- XML is read with expat, refusing any DTD (so no entity is ever expanded) and any element deeper
  than the flat ``<xml><Field>`` shape needs, before building anything: an unsigned body cannot
  make the parser work harder than one pass over its bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from typing import Any
import re
from xml.parsers import expat

import httpx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import hub

__all__ = [
    "BLOCK",
    "CAUSES",
    "ERROR_CODES",
    "MINUTE_BLOCK_SECONDS",
    "MP_CAUSE",
    "MP_CAUSES",
    "MP_ERROR_CODES",
    "MP_PATHS",
    "MP_TOKEN_CAUSE",
    "PATHS",
    "PER_CORP_PER_MINUTE",
    "CryptoError",
    "MsgCrypt",
    "XmlError",
    "corp_error",
    "envelope",
    "envelope_error",
    "is_aes_key",
    "message_xml",
    "pad",
    "parse_flat",
    "signature",
    "unpad",
]

# -- paths and limits ------------------------------------------------------------------------

PATHS = {
    "token": "/cgi-bin/gettoken",
    "follow_users": "/cgi-bin/externalcontact/get_follow_user_list",
    "batch": "/cgi-bin/externalcontact/batch/get_by_user",
    "detail": "/cgi-bin/externalcontact/get",
    "tags": "/cgi-bin/externalcontact/get_corp_tag_list",
    "mass_send": "/cgi-bin/externalcontact/add_msg_template",
    "welcome": "/cgi-bin/externalcontact/send_welcome_msg",
}
"""Every corp API path, relative to the account's base URL."""

MP_PATHS = {
    "token": "/cgi-bin/token",
    "update": "/card/membercard/updateuser",
}
"""The 公众号 paths, relative to the account's ``mp_base_url``."""

PER_CORP_PER_MINUTE = 10_000.0
"""Doc 90454 (2023-08-28): each API, per corp, 10,000 calls a minute (and 150,000 an hour)."""

MINUTE_BLOCK_SECONDS = 60.0
"""Doc 90454: going over a per-minute limit blocks the API for 60 s (per-hour limits: 60 min)."""

# -- error codes -----------------------------------------------------------------------------

ERROR_CODES: dict[int, hub.ErrorEntry] = {
    # the token is invalid, expired or missing: refresh once and re-send
    40014: hub.TokenExpired,
    42001: hub.TokenExpired,
    41001: hub.TokenExpired,
    # configuration or permission: an operator must act, re-fetching a token cannot help
    40001: hub.PlatformConfigError,
    40013: hub.PlatformConfigError,
    48002: hub.PlatformConfigError,
    60011: hub.PlatformConfigError,
    60020: hub.PlatformConfigError,
    84074: hub.PlatformConfigError,
    2000002: hub.PlatformConfigError,
    # system busy
    -1: hub.TransientError,
    # frequency (45009) and concurrency (45033) limits
    45009: (hub.RateLimited, MINUTE_BLOCK_SECONDS),
    45033: hub.RateLimited,  # no documented block time: the hub backs off exponentially
    # a bad request: do not retry
    40003: hub.PermanentError,
    40058: hub.PermanentError,
    40096: hub.PermanentError,
    60111: hub.PermanentError,
    81013: hub.PermanentError,
    84061: hub.PermanentError,
}
"""Corp API ``errcode`` → hub error class, or ``(RateLimited, block_seconds)`` (A1, A6)."""

CAUSES: dict[int, str] = {
    -1: "WeCom is busy",
    40001: "the app secret is wrong (check `secret`)",
    40003: "a UserID is not valid",
    40013: "the corp id is wrong (check `corp_id`)",
    40014: "the access_token is not valid",
    40058: "a request parameter is not valid",
    40096: "an external_userid is not valid",
    41001: "the access_token is missing",
    42001: "the access_token has expired",
    45009: "over the API's frequency limit",
    45033: "over the API's concurrency limit",
    48002: "the app has no permission for this API (add it under 客户联系 → 可调用接口的应用)",
    60011: "the app may not see this member, department or tag",
    60020: "this server's IP is not in the app's trusted IPs (企业可信IP)",
    60111: "the UserID does not exist",
    81013: "every recipient is invalid",
    84061: "there is no relation with this external contact",
    84074: "the app has no external-contact permission",
    2000002: "the CorpId is not valid",
}
"""What each corp code means, in our words: the platform's ``errmsg`` can carry the caller's IP."""

MP_ERROR_CODES: dict[int, hub.ErrorEntry] = {
    40001: hub.TokenExpired,  # 公众号: "invalid credential", the token is not (or no longer) valid
    40014: hub.TokenExpired,
    42001: hub.TokenExpired,
}
"""公众号 ``errcode`` on ``updateuser`` → hub error.  The research file (A1) supports only the
refresh codes (wechatpy refreshes on 40001/40014/42001 in 公众号 [M]); every other code is a
:class:`hub.PermanentError`, and so is every code from the 公众号 token endpoint."""

MP_CAUSES: dict[int, str] = {
    40001: "the 公众号 access_token is not valid",
    40014: "the 公众号 access_token is not valid",
    42001: "the 公众号 access_token has expired",
}
"""What each 公众号 code means, in our words."""

MP_TOKEN_CAUSE = "the 公众号 refused to issue an access_token (check mp_app_id and mp_app_secret)"
"""Any refusal by the 公众号 token endpoint: the research file documents none of its codes."""

MP_CAUSE = "the 公众号 refused the member-card update"
"""Any other 公众号 code."""


def envelope_error(body: Any) -> int | None:
    """The non-zero ``errcode`` of an answer, or ``None`` when it succeeded (or has none)."""
    if not isinstance(body, dict):
        return None
    code = body.get("errcode", 0)
    return None if code in (0, None) else code  # type: ignore[no-any-return]


def corp_error(response: httpx.Response, platform: str) -> tuple[int, str] | None:
    """The corp API's ``(errcode, cause in our words)`` in ``response``, or ``None``."""
    code = envelope_error(hub.response_json(response, platform=platform))
    return None if code is None else (code, CAUSES.get(code, "WeCom refused the call"))


# -- callback crypto (WXBizMsgCrypt) -----------------------------------------------------------

BLOCK = 32
"""WeCom pads to 32-byte blocks (PKCS#7 style, pad value 1..32)."""

SIGNATURE_ERROR = -40001
AES_KEY_ERROR = -40004
RECEIVE_ID_ERROR = -40005
DECRYPT_ERROR = -40007
BUFFER_ERROR = -40008
BASE64_ERROR = -40010


class CryptoError(ValueError):
    """A callback failed verification or decryption; ``code`` is the sample library's code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """The ``msg_signature`` of a callback.

    :param token: the callback Token configured for the app.
    :param timestamp: the ``timestamp`` query parameter, as sent.
    :param nonce: the ``nonce`` query parameter, as sent.
    :param encrypted: the ``Encrypt`` element's text (or the URL-decoded ``echostr``).
    """
    joined = "".join(sorted([token, timestamp, nonce, encrypted]))
    return hashlib.sha1(joined.encode()).hexdigest()


def pad(data: bytes, block: int = BLOCK) -> bytes:
    """Append ``n`` bytes of value ``n`` (1..block) so that the length is a multiple of ``block``."""
    n = block - len(data) % block
    return data + bytes([n]) * n


def unpad(data: bytes, block: int = BLOCK) -> bytes:
    """Remove the padding :func:`pad` added; a malformed pad is a :class:`CryptoError`."""
    if not data or len(data) % 16:
        raise CryptoError("ciphertext length is not a whole number of AES blocks", BUFFER_ERROR)
    n = data[-1]
    if not 1 <= n <= block or data[-n:] != bytes([n]) * n:
        raise CryptoError("bad padding", DECRYPT_ERROR)
    return data[:-n]


class MsgCrypt:
    """Sign, verify, encrypt and decrypt the callbacks of one app.

    :param token: the callback Token (≤ 32 characters).
    :param encoding_aes_key: the 43-character EncodingAESKey.
    :param receive_id: the corp id (self-built app) that every plaintext must end with.
    """

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise CryptoError("EncodingAESKey must be 43 characters", AES_KEY_ERROR)
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error:
            raise CryptoError("EncodingAESKey is not base64", AES_KEY_ERROR) from None
        if len(key) != 32:  # pragma: no cover - 43 base64 characters always give 32 bytes
            raise CryptoError("EncodingAESKey does not decode to 32 bytes", AES_KEY_ERROR)
        self.token = token
        self.receive_id = receive_id
        self._key = key
        self._iv = key[:16]

    def __repr__(self) -> str:
        return f"MsgCrypt(receive_id={self.receive_id!r})"

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._iv))

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        """:func:`signature` under this app's token."""
        return signature(self.token, timestamp, nonce, encrypted)

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        """Raise :class:`CryptoError` unless ``msg_signature`` signs the other three."""
        expected = self.sign(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected, (msg_signature or "").lower()):
            raise CryptoError("msg_signature does not match", SIGNATURE_ERROR)

    def decrypt(self, encrypted: str) -> bytes:
        """The message inside ``encrypted`` (base64), after checking its receive id.

        :raises CryptoError: bad base64, bad length or padding, or another receive id.
        """
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("ciphertext is not base64", BASE64_ERROR) from None
        if not raw or len(raw) % 16:
            raise CryptoError("ciphertext length is not a whole number of AES blocks", BUFFER_ERROR)
        decryptor = self._cipher().decryptor()
        plain = unpad(decryptor.update(raw) + decryptor.finalize())
        if len(plain) < 20:
            raise CryptoError("plaintext too short", BUFFER_ERROR)
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise CryptoError("message length exceeds the plaintext", BUFFER_ERROR)
        message, receive_id = plain[20:20 + length], plain[20 + length:]
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise CryptoError("receive id does not match the corp id", RECEIVE_ID_ERROR)
        return message

    def encrypt(self, message: bytes, *, random_prefix: bytes | None = None) -> str:
        """``message`` encrypted for this app, base64-encoded.

        :param message: the XML (or echo) bytes.
        :param random_prefix: 16 bytes; random when not given (tests pin it for fixed vectors).
        """
        prefix = os.urandom(16) if random_prefix is None else random_prefix
        if len(prefix) != 16:
            raise ValueError("random_prefix must be 16 bytes")
        plain = prefix + struct.pack(">I", len(message)) + message + self.receive_id.encode()
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(pad(plain)) + encryptor.finalize()).decode()

    def decrypt_verified(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> bytes:
        """:meth:`verify` then :meth:`decrypt`: nothing is decrypted before the signature holds."""
        self.verify(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)


# -- callback XML ------------------------------------------------------------------------------


class XmlError(ValueError):
    """The XML is malformed, has a DTD or entities, or is not a flat ``<xml>`` document."""


MAX_XML_DEPTH = 3
"""``<xml>`` (1), a field (2), a field's own child such as ``<ScheduleList><Item>`` (3); deeper is refused."""


def parse_flat(data: bytes | str, *, max_depth: int = MAX_XML_DEPTH) -> dict[str, str]:
    """The children of a flat ``<xml>`` document as ``{tag: text}``.

    Nested elements (e.g. ``<ScheduleList>``) are kept as their direct text only.  The parse stops
    at the first DTD, entity declaration or element deeper than ``max_depth``.

    :raises XmlError: malformed XML, any DTD or entity, nesting too deep, or a root other than ``<xml>``.
    """
    fields: dict[str, str] = {}
    texts: list[str] = []
    state = {"depth": 0, "tag": "", "open": False}

    def start(tag: str, attrs: object) -> None:
        state["depth"] += 1
        depth = state["depth"]
        if depth > max_depth:
            raise XmlError("the XML nests deeper than a callback does")
        if depth == 1 and tag != "xml":
            raise XmlError("the root element is not <xml>")
        if depth == 2:
            state["tag"], state["open"] = tag, True
            texts.clear()
        elif depth == 3:
            state["open"] = False  # a field's own children: keep only the text before them

    def end(tag: str) -> None:
        if state["depth"] == 2:
            fields[str(state["tag"])] = "".join(texts)
            state["open"] = False
        state["depth"] -= 1

    def text(chars: str) -> None:
        if state["depth"] == 2 and state["open"]:
            texts.append(chars)

    def forbidden(*args: object) -> None:
        raise XmlError("the XML declares a DTD or entities")

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = forbidden
    parser.EntityDeclHandler = forbidden
    parser.ExternalEntityRefHandler = forbidden
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise XmlError(f"unreadable XML ({expat.ErrorString(exc.code)})") from None
    except (ValueError, UnicodeError, OverflowError) as exc:
        if isinstance(exc, XmlError):
            raise
        raise XmlError(f"unreadable XML ({type(exc).__name__})") from None
    return fields


_AES_KEY = re.compile(r"[A-Za-z0-9+/]{43}")


def is_aes_key(value: str) -> bool:
    """Whether ``value`` has the EncodingAESKey's form: 43 base64 characters (32 bytes)."""
    return _AES_KEY.fullmatch(value) is not None


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def message_xml(fields: dict[str, str | int]) -> bytes:
    """A flat ``<xml>`` message; strings go in CDATA, integers as text (as WeCom writes them)."""
    parts = ["<xml>"]
    for tag, value in fields.items():
        text = str(value) if isinstance(value, int) else _cdata(value)
        parts.append(f"<{tag}>{text}</{tag}>")
    parts.append("</xml>")
    return "".join(parts).encode()


def envelope(to_user: str, encrypted: str, agent_id: str | int) -> bytes:
    """The POST body of an encrypted callback: ``ToUserName``, ``Encrypt``, ``AgentID``."""
    return (f"<xml><ToUserName>{_cdata(to_user)}</ToUserName><Encrypt>{_cdata(encrypted)}</Encrypt>"
            f"<AgentID>{_cdata(str(agent_id))}</AgentID></xml>").encode()
