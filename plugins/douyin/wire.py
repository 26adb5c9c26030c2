"""Douyin's wire conventions as data and pure functions: paths, the response envelope, the error
table (with each code's cause in our words), the OAuth codes the token flows act on, and the
callback signature.

Facts and their sources are in ``docs/platforms/douyin.md`` (and ``shared/platforms/wecom-douyin.md``
part B).  In short:

* OpenAPI answers ``{"data": {…, "error_code": 0, "description": ""}, "extra": {"error_code": 0,
  "sub_error_code": 0, …}}``; OAuth answers ``{"data": {…, "error_code": 0}, "message": "success"}``.
  A call succeeded only when ``data.error_code`` is 0 **and** any ``extra`` code is 0.  Codes (and
  other numbers) sometimes arrive as strings (``"0"``, ``"86400"``), so they are parsed leniently.
* Two families of codes are in use: the new ``28xxxxxx`` and the old ``2100xxx``/``2190xxx``, plus
  the OAuth endpoints' ``100xx`` and a few ``extra.sub_error_code`` values.
* A callback carries ``X-Douyin-Signature`` = lowercase hex SHA-1 of the client secret followed by
  the raw body bytes, with no separator.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import hub
from hub import as_int

__all__ = [
    "CAUSES",
    "ERROR_CODES",
    "FANS_CAP",
    "MEMBER_BATCH",
    "MSG_ID_HEADER",
    "NO_PERMISSION",
    "PATHS",
    "REFRESH_TOKEN_EXPIRED",
    "RENEWAL_LIMIT",
    "RENEWAL_LIMIT_REACHED",
    "SIGNATURE_HEADER",
    "MAX_DEPTH",
    "as_bool",
    "as_int",
    "cause",
    "envelope_error",
    "json_depth",
    "loads_bounded",
    "sign_body",
    "signature_matches",
]

SIGNATURE_HEADER = "x-douyin-signature"
MSG_ID_HEADER = "msg-id"

PATHS = {
    "refresh_token": "/oauth/refresh_token/",
    "renew_refresh_token": "/oauth/renew_refresh_token/",
    "client_token": "/oauth/client_token/",
    "fans_list": "/fans/list/",
    "im_send": "/im/send/msg/",
    "member_update": "/goodlife/v1/member/user/update/",
}
"""The documented paths (each one an account option too: ``<key>_path``, see the docs)."""

FANS_CAP = 5000
"""The fans list returns at most this many fans of an account (documented limit)."""

MEMBER_BATCH = 5
"""``goodlife/v1/member/user/update`` takes at most this many members per call."""

RENEWAL_LIMIT = 5
"""How many times Douyin lets a refresh token be renewed before re-authorisation."""

NO_PERMISSION = 10004
"""OAuth 权限不足: from ``/oauth/renew_refresh_token/``, the app lacks the ``renew_refresh_token`` scope."""

REFRESH_TOKEN_EXPIRED = 10010
"""OAuth refresh_token过期: the business user must authorise the app again."""

RENEWAL_LIMIT_REACHED = 10020
"""OAuth 超过刷新次数限制: no renewal left (from ``client_token``: more than 500 calls in 5 minutes)."""

ERROR_CODES: dict[int, Any] = {
    # general OpenAPI codes, new family (状态码排查工具, "通用状态码(新)")
    28001005: hub.TransientError,  # 系统繁忙
    28001006: hub.TransientError,  # 网络调用错误
    28001007: hub.PermanentError,  # 参数不合法
    28001008: hub.TokenExpired,  # access_token 过期
    28001012: hub.PlatformConfigError,  # 用户未授权该 OpenAPI
    28001014: hub.PlatformConfigError,  # 应用未授权任何能力
    28001015: hub.PlatformConfigError,  # access_token 和 open_id 不匹配
    28001016: hub.PlatformConfigError,  # 应用已被封禁或下线
    28001017: hub.PermanentError,  # 未知 URI (a wrong path, e.g. a missing trailing slash)
    28001018: hub.PlatformConfigError,  # 应用未获得该能力
    28001019: hub.PlatformConfigError,  # 能力已被封禁或下线
    28001020: hub.PlatformConfigError,  # 用户未绑定该测试应用
    28001021: hub.PlatformConfigError,  # 测试应用已过期
    28001042: hub.PlatformConfigError,  # isv_token 无此 scope 权限
    28001045: hub.PermanentError,  # 用户已注销
    28001046: hub.PermanentError,  # 用户已被封禁
    28001047: hub.PermanentError,  # 用户为私密用户
    28001052: hub.RateLimited,  # 风险控制: lower the frequency
    28001056: hub.PlatformConfigError,  # 该能力 API 已下线
    28003017: hub.PlatformConfigError,  # quota 已用完: retrying does not help until it resets
    28003018: hub.RateLimited,  # 请求频率过高
    28004020: hub.PlatformConfigError,  # 授权场景不支持的 scope
    # general OpenAPI codes, old family ("通用状态码(旧)")
    2100004: hub.TransientError,  # 系统繁忙
    2100005: hub.PermanentError,  # 参数不合法
    2100007: hub.PlatformConfigError,  # 无权限操作
    2100009: hub.PermanentError,  # 用户被禁封使用该操作
    2190001: hub.PlatformConfigError,  # quota 已用完
    2190002: hub.TokenExpired,  # access_token 无效: refresh once, then give up
    2190004: hub.PlatformConfigError,  # 应用未获得该能力
    2190008: hub.TokenExpired,  # access_token 过期
    # OAuth endpoints (/oauth/refresh_token/, /oauth/renew_refresh_token/, /oauth/client_token/)
    10002: hub.PermanentError,  # 参数错误
    10003: hub.PlatformConfigError,  # client_key 不存在
    10004: hub.PlatformConfigError,  # 权限不足 (e.g. no renew_refresh_token scope)
    10005: hub.PermanentError,  # 缺少参数
    10008: hub.TokenExpired,  # access_token 过期 (cited by SDK docs)
    10010: hub.PlatformConfigError,  # refresh_token 过期: the operator must re-authorise
    10013: hub.PlatformConfigError,  # client_key / client_secret 错误
    10020: hub.PlatformConfigError,  # 超过刷新次数限制 (client_token: see auth.ClientTokenAuth)
    # extra.sub_error_code values that stand alone
    11002: hub.TokenExpired,  # AccessToken 非法
    12001: hub.RateLimited,  # 访问过于频繁
}
"""Douyin body codes → hub errors.  Every code comes from the research file, part B1/B6."""

CAUSES: dict[int, str] = {
    28001005: "Douyin is busy",
    28001006: "a network call inside Douyin failed",
    28001007: "a request parameter is not valid",
    28001008: "the access token has expired",
    28001012: "the business user has not authorised this OpenAPI",
    28001014: "the app has no capability granted",
    28001015: "the access token and open_id do not match (check open_id)",
    28001016: "the app is banned or offline",
    28001017: "unknown URI (check the path option, with its trailing slash)",
    28001018: "the app lacks this capability",
    28001019: "the capability is banned or offline",
    28001020: "the user is not bound to this test app",
    28001021: "the test app has expired",
    28001042: "the token lacks this scope",
    28001045: "the user has closed the Douyin account",
    28001046: "the user is banned",
    28001047: "the user is private",
    28001052: "risk control: lower the call frequency",
    28001056: "this API is offline",
    28003017: "the app's quota is used up",
    28003018: "over the call frequency limit",
    28004020: "the scope is not supported in this authorisation scene",
    2100004: "Douyin is busy",
    2100005: "a request parameter is not valid",
    2100007: "no permission for this operation",
    2100009: "the user is banned from this operation",
    2190001: "the app's quota is used up",
    2190002: "the access token is not valid",
    2190004: "the app lacks this capability",
    2190008: "the access token has expired",
    10002: "a request parameter is wrong",
    10003: "the client_key does not exist (check client_key)",
    NO_PERMISSION: "permission denied (for a renewal: the app lacks the renew_refresh_token scope)",
    10005: "a request parameter is missing",
    10008: "the access token has expired",
    REFRESH_TOKEN_EXPIRED: "the refresh token has expired: the business user must authorise the app again",
    10013: "client_key or client_secret is wrong",
    RENEWAL_LIMIT_REACHED: "over the refresh limit (renewals used up, or client_token requested too often)",
    11002: "the access token is not valid",
    12001: "over the call frequency limit",
}
"""What each code of :data:`ERROR_CODES` means, in our words (a hub error carries these)."""


def cause(code: int, description: str = "") -> str:
    """The cause of ``code`` in our words; Douyin's own ``description`` for a code we do not know."""
    return CAUSES.get(code) or description or "Douyin refused the call"


def as_bool(value: Any) -> bool:
    """A flag Douyin may send as ``true``, ``"true"``, ``1`` or ``"1"``."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def _code(section: Any, key: str) -> int:
    if not isinstance(section, Mapping):
        return 0
    try:
        return as_int(section.get(key))
    except ValueError:
        return -1  # a code we cannot read is not a success


def envelope_error(body: Any) -> tuple[int, str] | None:
    """The ``(code, description)`` of a failed Douyin answer, or ``None`` when it succeeded.

    ``data.error_code`` is looked at first, then ``extra.error_code``, then
    ``extra.sub_error_code`` (which some endpoints set alone).

    :param body: the parsed JSON body.
    """
    if not isinstance(body, Mapping):
        return (-1, "the answer is not a JSON object")
    data, extra = body.get("data"), body.get("extra")
    for section, key, text in ((data, "error_code", "description"), (extra, "error_code", "description"),
                               (extra, "sub_error_code", "sub_description")):
        code = _code(section, key)
        if code != 0:
            assert isinstance(section, Mapping)
            return code, str(section.get(text) or "")
    return None


def sign_body(client_secret: str, body: bytes) -> str:
    """``X-Douyin-Signature`` for ``body``: hex SHA-1 of the secret's UTF-8 bytes then the body."""
    return hashlib.sha1(client_secret.encode() + body).hexdigest()


def signature_matches(client_secret: str, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` signs ``body``, compared in constant time (hex case ignored)."""
    if not signature:
        return False
    given = signature.strip().lower().encode("ascii", "replace")
    return hmac.compare_digest(sign_body(client_secret, body).encode(), given)


MAX_DEPTH = 32
"""The deepest nesting of objects and arrays read from a callback; Douyin's events nest 4 deep."""


def json_depth(text: bytes | str, stop: int = MAX_DEPTH) -> int:
    """The deepest ``{``/``[`` nesting in ``text`` outside strings, scanning no further than ``stop + 1``.

    A linear scan with no recursion, so a hostile body costs one pass over its bytes.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop:
                    return deepest
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return deepest


def loads_bounded(text: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` refusing (``ValueError``) text nested deeper than ``max_depth`` before parsing it."""
    if json_depth(text, max_depth) > max_depth:
        raise ValueError(f"JSON nested deeper than {max_depth}")
    return json.loads(text)
