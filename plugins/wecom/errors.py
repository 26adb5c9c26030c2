"""WeCom's body codes (``errcode``) mapped onto the hub's errors, with the cause in our words.

Codes come from the global error-code page (doc 90313, as transcribed in WxJava's
``WxCpErrorMsgEnum``) and the frequency-limit page (doc 90454); see
``shared/platforms/wecom-douyin.md`` A1 and A6.  A code not listed here is a
:class:`hub.PermanentError` (never retried blindly).

The 公众号 (member-card push-back) shares the ``errcode`` format but not the meanings: its 40001
is "invalid credential" (a token to refresh), WeCom's is a wrong secret.  So its codes are keyed
apart, ``"mp:<errcode>"`` for API calls and ``"mp-token:<errcode>"`` for its token endpoint
(see :meth:`plugins.wecom.adapter.WeComAdapter.error_code`).  The research file supports only the
refresh codes (A1: wechatpy refreshes on 40001/40014/42001 in 公众号 [M]); every other 公众号 code,
and every token-endpoint code, is a :class:`hub.PermanentError`.
"""

from __future__ import annotations

from typing import Any

import hub

__all__ = ["CAUSES", "ERROR_CODES", "MINUTE_BLOCK_SECONDS", "MP_CAUSE", "MP_TOKEN_CAUSE", "mp_key"]

MINUTE_BLOCK_SECONDS = 60.0
"""Doc 90454: going over a per-minute limit blocks the API for 60 s (per-hour limits: 60 min)."""



def mp_key(code: Any, *, token_endpoint: bool = False) -> str:
    """The table key of a 公众号 ``errcode``: ``"mp:<code>"``, or ``"mp-token:<code>"``."""
    return f"{'mp-token' if token_endpoint else 'mp'}:{code}"


ERROR_CODES: dict[int | str, Any] = {
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
    # 公众号 (api.weixin.qq.com) calls: the token is invalid ("invalid credential") or expired
    "mp:40001": hub.TokenExpired,
    "mp:40014": hub.TokenExpired,
    "mp:42001": hub.TokenExpired,
}
"""``errcode`` → hub error class, or ``(RateLimited, block_seconds)``."""

CAUSES: dict[int | str, str] = {
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
    "mp:40001": "the 公众号 access_token is not valid",
    "mp:40014": "the 公众号 access_token is not valid",
    "mp:42001": "the 公众号 access_token has expired",
}
"""What each code means, said without echoing the platform's message (which may carry an IP)."""

MP_TOKEN_CAUSE = "the 公众号 refused to issue an access_token (check mp_app_id and mp_app_secret)"
"""Any refusal by ``cgi-bin/token``: the research file documents none of its codes."""

MP_CAUSE = "the 公众号 refused the member-card update"
"""Any other 公众号 code."""
